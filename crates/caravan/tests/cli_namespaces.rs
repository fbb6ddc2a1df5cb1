//! `caravan namespace apply|list|status|inspect|delete` against a real
//! agent, as a user runs them (the real binary, its streams and exit
//! code): Nomad's columns and texts, `-json` as the API's JSON, jobs run
//! into a namespace the CLI created, and ACLs deciding what a token lists.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::cli::{assert_kv, caravan, caravan_with, header_cells, line_with, Run};
use common::jobs::{marker, ProcessReaper, SERVER_AND_CLIENT};
use common::Agent;
use serde_json::Value;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the file");
    path.display().to_string()
}

/// A raw_exec service job, with no namespace of its own: `-namespace`
/// decides where it goes.
fn sleep_job(id: &str, marker: &str) -> String {
    format!(
        r#"job "{id}" {{
  group "g" {{
    task "t" {{
      driver = "raw_exec"
      kill_timeout = "2s"
      env {{
        CARAVAN_TEST_MARKER = "{marker}"
      }}
      config {{
        command = "/bin/sh"
        args    = ["-c", "sleep 600 & wait"]
      }}
    }}
  }}
}}
"#
    )
}

/// The first cell of each data row of a `Name  Description` table.
fn listed_names(run: &Run) -> Vec<String> {
    let stdout = run.ok();
    let mut lines = stdout.lines();
    let header = lines.next().unwrap_or_default();
    assert_eq!(header_cells(header), ["Name", "Description"], "{run:#?}");
    lines
        .map(|line| {
            line.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn namespaces_round_trip_and_jobs_run_into_them() {
    let tag = marker("cli-namespaces");
    let _reaper = ProcessReaper(tag.clone());
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    let dir = tempfile::tempdir().expect("tempdir");

    let list = caravan(&agent, &["namespace", "list"]);
    assert_eq!(listed_names(&list), ["default"]);
    assert_eq!(
        line_with(list.ok(), "default"),
        "default  Default shared namespace"
    );

    // A specification file (HCL's JSON form); flags beside it are ignored
    // with Nomad's warning.
    let spec = write(
        dir.path(),
        "team.json",
        r#"{"name": "team", "description": "the team",
            "capabilities": {"enabled_task_drivers": ["raw_exec"]},
            "meta": {"owner": "ops"}}"#,
    );
    let applied = caravan(&agent, &["namespace", "apply", "-quota", "q", &spec]);
    assert_eq!(
        applied.ok(),
        "Successfully applied namespace \"team\"!\n",
        "{applied:#?}"
    );
    assert!(
        applied
            .stderr
            .contains("Flags are ignored when a file is specified!"),
        "{applied:#?}"
    );
    // By name: what the flags set changes, the rest (meta, capabilities)
    // is kept.
    let renamed = caravan(
        &agent,
        &["namespace", "apply", "-description", "our team", "team"],
    );
    assert_eq!(renamed.ok(), "Successfully applied namespace \"team\"!\n");
    // The API's JSON with -json, field names in any case.
    let api_spec = write(
        dir.path(),
        "team2.json",
        r#"{"Name": "team2", "description": "second"}"#,
    );
    let second = caravan(&agent, &["namespace", "apply", "-json", &api_spec]);
    assert_eq!(second.ok(), "Successfully applied namespace \"team2\"!\n");

    let list = caravan(&agent, &["namespace", "list"]);
    assert_eq!(listed_names(&list), ["default", "team", "team2"]);
    assert_eq!(line_with(list.ok(), "team "), "team     our team");
    // -json is the API's JSON, newest first as Nomad's api package sorts.
    let mut api = agent.get("/v1/namespaces").json();
    let api_list = api.as_array_mut().expect("a list");
    api_list.sort_by_key(|namespace| std::cmp::Reverse(namespace["CreateIndex"].as_u64()));
    assert_eq!(caravan(&agent, &["namespace", "list", "-json"]).json(), api);
    let names = caravan(
        &agent,
        &["namespace", "list", "-t", "{{range .}}{{.Name}} {{end}}"],
    );
    assert_eq!(names.ok(), "team2 team default \n");

    let status = caravan(&agent, &["namespace", "status", "team"]);
    let text = status.ok();
    assert_kv(text, "Name", "team");
    assert_kv(text, "Description", "our team");
    assert_kv(text, "Quota", "<none>");
    assert_kv(text, "Enabled Drivers", "raw_exec");
    assert_kv(text, "Disabled Drivers", "<none>");
    assert_kv(text, "Enabled Network Modes", "*");
    assert!(text.ends_with("\n\nMetadata\nowner = ops\n"), "{status:#?}");
    let team_api = agent.get("/v1/namespace/team").json();
    assert_eq!(
        caravan(&agent, &["namespace", "status", "-json", "team"]).json(),
        team_api
    );
    // A prefix: the exact name among several, or the only match.
    let exact = caravan(&agent, &["namespace", "status", "-t", "{{.Name}}", "team"]);
    assert_eq!(exact.ok(), "team\n");
    let only = caravan(&agent, &["namespace", "status", "-t", "{{.Name}}", "team2"]);
    assert_eq!(only.ok(), "team2\n");
    let ambiguous = caravan(&agent, &["namespace", "status", "te"]);
    let stderr = ambiguous.failed();
    assert!(
        stderr.starts_with("Prefix matched multiple namespaces\n\nName   Description\nteam   our team\nteam2  second"),
        "{ambiguous:#?}"
    );
    let missing = caravan(&agent, &["namespace", "status", "nope"]);
    assert_eq!(
        missing.failed(),
        "Error retrieving namespaces: Namespace \"nope\" matched no namespaces\n"
    );

    // inspect: the JSON itself, or -t.
    assert_eq!(
        caravan(&agent, &["namespace", "inspect", "team"]).json(),
        team_api
    );
    let described = caravan(
        &agent,
        &["namespace", "inspect", "-t", "{{.Meta.owner}}", "team"],
    );
    assert_eq!(described.ok(), "ops\n");

    // The server's refusals, in Nomad's words.
    let default = caravan(&agent, &["namespace", "delete", "default"]);
    let stderr = default.failed();
    assert!(
        stderr.starts_with("Error deleting namespace: Unexpected response code: 500 (")
            && stderr.contains("can not delete default namespace"),
        "{default:#?}"
    );
    let invalid = caravan(&agent, &["namespace", "apply", "a_b"]);
    assert!(
        invalid.failed().starts_with(
            "Error applying namespace: Unexpected response code: 500 (Invalid namespace \"a_b\": 1 error occurred:\n\t* invalid name \"a_b\""
        ),
        "{invalid:#?}"
    );

    // A job run into the namespace apply created; into a missing one, not.
    let job = write(dir.path(), "app.hcl", &sleep_job("app", &tag));
    let run = caravan(
        &agent,
        &["job", "run", "-detach", "-namespace", "team", &job],
    );
    assert!(
        run.ok().starts_with("Job registration successful\n"),
        "{run:#?}"
    );
    assert_eq!(
        agent.get("/v1/job/app?namespace=team").json()["Namespace"],
        "team"
    );
    assert_eq!(agent.get("/v1/job/app").status, 404);
    let nowhere = caravan(
        &agent,
        &["job", "run", "-detach", "-namespace", "missing", &job],
    );
    assert_eq!(
        nowhere.failed(),
        "Error submitting job: Unexpected response code: 500 (job \"app\" is in nonexistent namespace \"missing\")\n"
    );

    // Live work keeps the namespace; once the job is purged and its
    // allocation stopped it goes.
    let live = caravan(&agent, &["namespace", "delete", "team"]);
    assert!(
        live.failed()
            .contains("namespace \"team\" has non-terminal jobs in regions: [global]"),
        "{live:#?}"
    );
    let stop = caravan(
        &agent,
        &[
            "job",
            "stop",
            "-purge",
            "-detach",
            "-namespace",
            "team",
            "app",
        ],
    );
    stop.ok();
    let deadline = Instant::now() + Duration::from_secs(60);
    let deleted = loop {
        let attempt = caravan(&agent, &["namespace", "delete", "team"]);
        if attempt.code == 0 {
            break attempt;
        }
        assert!(
            attempt.stderr.contains("non-terminal allocations"),
            "{attempt:#?}"
        );
        assert!(Instant::now() < deadline, "never deletable: {attempt:#?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(deleted.ok(), "Successfully deleted namespace \"team\"!\n");
    let list = caravan(&agent, &["namespace", "list"]);
    assert_eq!(listed_names(&list), ["default", "team2"]);
}

#[test]
fn a_token_lists_only_the_namespaces_its_policies_name() {
    let agent = Agent::start(&["-dev", "-acl-enabled"], "");
    let management = common::acl::bootstrap(&agent);
    let address = agent.url("");
    let as_management = [
        ("NOMAD_ADDR", address.as_str()),
        ("NOMAD_TOKEN", management.as_str()),
    ];
    for name in ["team", "other"] {
        let applied = caravan_with(&as_management, &["namespace", "apply", name]);
        assert_eq!(
            applied.ok(),
            format!("Successfully applied namespace \"{name}\"!\n")
        );
    }
    let everything = caravan_with(&as_management, &["namespace", "list"]);
    assert_eq!(listed_names(&everything), ["default", "other", "team"]);

    common::acl::create_policy(
        &agent,
        &management,
        "team-read",
        "namespace \"team\" {\n  policy = \"read\"\n}\n",
    );
    let token = common::acl::create_token(&agent, &management, &["team-read"]);
    let secret = token["SecretID"].as_str().expect("SecretID");
    let as_reader = [("NOMAD_ADDR", address.as_str()), ("NOMAD_TOKEN", secret)];
    let list = caravan_with(&as_reader, &["namespace", "list"]);
    assert_eq!(listed_names(&list), ["team"]);
    let json: Value = caravan_with(&as_reader, &["namespace", "list", "-json"]).json();
    assert_eq!(json.as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(json[0]["Name"], "team");
    let status = caravan_with(&as_reader, &["namespace", "status", "team"]);
    assert_kv(status.ok(), "Name", "team");
    // Namespaces it has nothing in are not there for it.
    let hidden = caravan_with(&as_reader, &["namespace", "status", "other"]);
    assert_eq!(
        hidden.failed(),
        "Error retrieving namespaces: Namespace \"other\" matched no namespaces\n"
    );
    // Writing needs a management token: refused at the lookup where the
    // token cannot read, at the write where it can.
    let lookup = caravan_with(&as_reader, &["namespace", "apply", "other"]);
    assert_eq!(
        lookup.failed(),
        "Error looking up namespace: Unexpected response code: 403 (Permission denied)\n"
    );
    let write = caravan_with(
        &as_reader,
        &["namespace", "apply", "-description", "x", "team"],
    );
    assert_eq!(
        write.failed(),
        "Error applying namespace: Unexpected response code: 403 (Permission denied)\n"
    );
    let delete = caravan_with(&as_reader, &["namespace", "delete", "team"]);
    assert_eq!(
        delete.failed(),
        "Error deleting namespace: Unexpected response code: 403 (Permission denied)\n"
    );
    // No token at all: nothing to list.
    let anonymous = caravan(&agent, &["namespace", "list"]);
    assert_eq!(anonymous.ok(), "No namespaces found\n");
}

#[test]
fn usage_errors_and_the_group() {
    // Usage errors stop before any call: an address nothing listens on
    // proves none is made.
    let nowhere = [("NOMAD_ADDR", "http://127.0.0.1:1")];
    let extra = caravan_with(&nowhere, &["namespace", "apply", "a", "b"]);
    let stderr = extra.failed();
    assert!(
        stderr.contains("This command takes one argument: <input>")
            && stderr.contains("For additional help try 'caravan namespace apply -help'"),
        "{extra:#?}"
    );
    let none = caravan_with(&nowhere, &["namespace", "status"]);
    assert!(
        none.failed()
            .contains("This command takes one argument: <namespace>"),
        "{none:#?}"
    );
    let list = caravan_with(&nowhere, &["namespace", "list", "x"]);
    assert!(
        list.failed().contains("This command takes no arguments"),
        "{list:#?}"
    );
    let help = caravan_with(&nowhere, &["namespace", "inspect", "-help"]);
    assert_eq!(help.code, 0, "{help:#?}");
    assert!(
        help.stderr
            .starts_with("Usage: caravan namespace inspect [options] <namespace>"),
        "{help:#?}"
    );
    let group = caravan_with(&nowhere, &["namespace"]);
    assert_eq!(group.code, 0, "{group:#?}");
    for line in [
        "Create or update a namespace",
        "List namespaces",
        "Display a namespace's status",
        "Inspect a namespace",
        "Delete a namespace",
    ] {
        assert!(group.stderr.contains(line), "{line}: {group:#?}");
    }
    let down = caravan_with(&nowhere, &["namespace", "list"]);
    assert!(
        down.failed().starts_with("Error retrieving namespaces: "),
        "{down:#?}"
    );
}
