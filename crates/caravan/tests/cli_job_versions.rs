//! `caravan job history`, `job eval`, `job deployments` and `eval delete`
//! against a real agent, as a user runs them: the real binary, its stdout,
//! stderr and exit code.

mod common;

use common::cli::{caravan, cluster, wait_output};
use common::jobs::{marker, ProcessReaper};

fn job_file(dir: &std::path::Path, id: &str, command: &str, args: &str, tag: &str) -> String {
    let path = dir.join(format!("{id}.nomad.hcl"));
    std::fs::write(
        &path,
        format!(
            "job \"{id}\" {{\n  type = \"{kind}\"\n  group \"g\" {{\n    task \"t\" {{\n      driver = \"raw_exec\"\n      env {{\n        CARAVAN_TEST_MARKER = \"{tag}\"\n      }}\n      config {{\n        command = \"{command}\"\n        args = [{args}]\n      }}\n    }}\n  }}\n}}\n",
            kind = if command == "/bin/true" { "batch" } else { "service" },
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn history_eval_and_deployments_of_a_job() {
    let tag = marker("cli-history");
    let _reaper = ProcessReaper(tag.clone());
    let (agent, _node) = cluster();
    let dir = tempfile::tempdir().unwrap();
    let first = job_file(dir.path(), "hist", "/bin/sleep", "\"600\"", &tag);
    caravan(&agent, &["job", "run", "-detach", &first]).ok();
    let second = job_file(dir.path(), "hist", "/bin/sleep", "\"601\"", &tag);
    caravan(&agent, &["job", "run", "-detach", &second]).ok();

    let history = caravan(&agent, &["job", "history", "hist"]);
    let text = history.ok();
    let versions: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("Version "))
        .collect();
    assert_eq!(versions, ["Version     = 1", "Version     = 0"], "{text}");
    assert!(text.contains("Submit Date = "), "{text}");
    let one = caravan(&agent, &["job", "history", "-version", "0", "hist"]);
    assert_eq!(one.ok().matches("Version ").count(), 1, "{one:#?}");
    let json = caravan(&agent, &["job", "history", "-json", "hi"]).json();
    assert_eq!(json.as_array().map(Vec::len), Some(2), "{json}");
    let missing = caravan(&agent, &["job", "history", "-version", "9", "hist"]);
    assert!(
        missing.failed().contains("has no version 9"),
        "{missing:#?}"
    );

    let eval = caravan(&agent, &["job", "eval", "hist"]);
    let text = eval.ok();
    assert!(text.contains("Monitoring evaluation"), "{text}");
    assert!(text.contains("finished with status \"complete\""), "{text}");
    let detached = caravan(
        &agent,
        &["job", "eval", "-detach", "-force-reschedule", "hist"],
    );
    assert!(
        detached.ok().starts_with("Created eval ID: \""),
        "{detached:#?}"
    );

    let deployments = caravan(&agent, &["job", "deployments", "hist"]);
    assert_eq!(deployments.ok(), "No deployments found\n");
    let json = caravan(&agent, &["job", "deployments", "-json", "hist"]).json();
    assert_eq!(json, serde_json::json!([]));
    let unknown = caravan(&agent, &["job", "deployments", "nope"]);
    assert!(
        unknown.failed().contains("No job(s) with prefix or ID"),
        "{unknown:#?}"
    );
}

#[test]
fn eval_delete_removes_finished_evaluations_only() {
    let tag = marker("cli-eval-delete");
    let _reaper = ProcessReaper(tag.clone());
    let (agent, _node) = cluster();
    let dir = tempfile::tempdir().unwrap();
    let done = job_file(dir.path(), "done", "/bin/true", "", &tag);
    caravan(&agent, &["job", "run", "-detach", &done]).ok();
    wait_output(
        &agent,
        &["job", "status", "done"],
        "the batch job to finish",
        |run| run.stdout.contains("complete") && run.stdout.contains("dead"),
    );
    let listed = caravan(
        &agent,
        &[
            "eval",
            "list",
            "-job",
            "done",
            "-t",
            "{{range .}}{{.ID}} {{end}}",
        ],
    );
    let ids: Vec<String> = listed.ok().split_whitespace().map(str::to_string).collect();
    assert_eq!(ids.len(), 1, "{listed:#?}");

    // Neither an ID nor a filter, or both: usage errors.
    let neither = caravan(&agent, &["eval", "delete"]);
    assert!(
        neither
            .failed()
            .contains("Either an evaluation ID or -filter"),
        "{neither:#?}"
    );
    let both = caravan(&agent, &["eval", "delete", "-filter", "true", &ids[0]]);
    assert!(
        both.failed().contains("cannot be used together"),
        "{both:#?}"
    );

    let deleted = caravan(&agent, &["eval", "delete", &ids[0]]);
    assert_eq!(deleted.ok(), "Successfully deleted 1 evaluation\n");
    let gone = caravan(&agent, &["eval", "status", &ids[0]]);
    assert!(
        gone.failed().contains("No evaluation(s) with prefix or id"),
        "{gone:#?}"
    );

    // A filter asks first; with no answer nothing goes.
    let asked = caravan(&agent, &["eval", "delete", "-filter", "JobID == \"done\""]);
    assert!(
        asked.failed().contains("Failed to parse answer: EOF"),
        "{asked:#?}"
    );
}
