//! The `caravan job ...` commands and `caravan status`, run as a user runs
//! them: the real binary against a real `-dev` agent (whose client runs
//! raw_exec tasks), asserting what is printed and the exit codes.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{caravan, caravan_with, Run};
use common::jobs::{marker, ProcessReaper};
use common::{Agent, BINARY};

/// An address nothing listens on.
const NOWHERE: &str = "http://127.0.0.1:1";

/// `caravan args...` in `dir`, with exactly `env` as `NOMAD_*` and `stdin`
/// as its input (nothing when `None`).
fn caravan_in(dir: &Path, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Run {
    let mut command = Command::new(BINARY);
    command.args(args).current_dir(dir);
    for (name, _) in std::env::vars() {
        if name.starts_with("NOMAD_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command.stdin(match stdin {
        Some(_) => Stdio::piped(),
        None => Stdio::null(),
    });
    let mut child = command.spawn().expect("caravan runs");
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input.write_all(text.as_bytes()).expect("stdin written");
    }
    let output = child.wait_with_output().expect("caravan exits");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A `-dev` agent whose client node is ready to take allocations.
fn dev_agent() -> Agent {
    let agent = Agent::dev();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let nodes = agent.get("/v1/nodes").json();
        let ready = nodes
            .as_array()
            .is_some_and(|nodes| nodes.iter().any(|node| node["Status"] == "ready"));
        if ready {
            return agent;
        }
        assert!(Instant::now() < deadline, "no ready node: {nodes}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A service job `id` running `/bin/sleep 600` under raw_exec, its
/// processes carrying `marker`. Declares `label` (put in the job's meta).
fn sleep_job(id: &str, marker: &str) -> String {
    format!(
        r#"variable "label" {{
  type    = string
  default = "none"
}}

job "{id}" {{
  datacenters = ["*"]
  meta {{
    label = var.label
  }}
  group "g" {{
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sleep"
        args    = ["600"]
      }}
      env {{
        CARAVAN_TEST_MARKER = "{marker}"
      }}
      kill_timeout = "1s"
      resources {{
        cpu    = 50
        memory = 32
      }}
    }}
  }}
}}
"#
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("job file written");
    path.display().to_string()
}

/// The words of each line of a table (columns are space-aligned).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// `key = value` of a `job status` header.
fn header_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(" = ")?;
        (name.trim_end() == key).then(|| value.trim())
    })
}

/// Runs `job status <id>` until its allocation table shows `status`
/// (bounded: the task has to be started by the client).
fn wait_alloc_status(agent: &Agent, id: &str, status: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = caravan(agent, &["job", "status", id]).ok().to_string();
        let allocations = text.split("\nAllocations\n").nth(1).unwrap_or("");
        if allocations
            .lines()
            .skip(1)
            .any(|line| words(line).contains(&status))
        {
            return text;
        }
        assert!(Instant::now() < deadline, "no {status} allocation:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn init_writes_the_example_and_run_output_needs_no_agent() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = [("NOMAD_ADDR", NOWHERE)];
    let init = caravan_in(dir.path(), &nowhere, &["job", "init"], None);
    assert_eq!(
        init.ok().trim(),
        "Example job file written to example.nomad.hcl"
    );
    let written = std::fs::read_to_string(dir.path().join("example.nomad.hcl")).unwrap();
    assert!(written.contains("job \"example\""), "{written}");

    let again = caravan_in(dir.path(), &nowhere, &["init"], None);
    assert!(
        again
            .failed()
            .contains("Job 'example.nomad.hcl' already exists"),
        "{again:#?}"
    );

    let short = caravan_in(
        dir.path(),
        &nowhere,
        &["job", "init", "-short", "s.hcl"],
        None,
    );
    assert_eq!(short.ok().trim(), "Example job file written to s.hcl");
    let short_text = std::fs::read_to_string(dir.path().join("s.hcl")).unwrap();
    assert!(!short_text.contains('#'), "{short_text}");

    // `-output` prints what would be submitted: `{"Job": ...}`.
    let output = caravan_in(
        dir.path(),
        &nowhere,
        &["job", "run", "-output", "example.nomad.hcl"],
        None,
    );
    let json = output.json();
    assert_eq!(json["Job"]["ID"], "example");
    assert_eq!(
        json["Job"]["TaskGroups"][0]["Tasks"][0]["Driver"],
        "raw_exec"
    );
    assert!(
        output.stdout.contains("\n    \"Job\": {"),
        "{}",
        output.stdout
    );

    // The same from stdin, through the `run` alias.
    let from_stdin = caravan_in(
        dir.path(),
        &nowhere,
        &["run", "-output", "-"],
        Some(&written),
    );
    assert_eq!(from_stdin.json(), json);

    // `-output`'s JSON is itself a job file `-output` reads back.
    let json_file = write(dir.path(), "example.json", &output.stdout);
    let round = caravan_in(
        dir.path(),
        &nowhere,
        &["job", "run", "-output", &json_file],
        None,
    );
    assert_eq!(round.json(), json);

    // With no agent, validate checks the parse only.
    let validate = caravan_in(
        dir.path(),
        &nowhere,
        &["job", "validate", "example.nomad.hcl"],
        None,
    );
    assert!(
        validate.ok().contains("Job validation successful"),
        "{validate:#?}"
    );
}

#[test]
fn run_monitors_the_evaluation_then_status_inspect_allocs_and_stop() {
    let marker = marker("cli-run");
    let _reaper = ProcessReaper(marker.clone());
    let agent = dev_agent();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "run.hcl", &sleep_job("cli-run", &marker));

    let run = caravan(&agent, &["job", "run", &file]);
    let out = run.ok();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("==> ") && lines[0].contains(": Monitoring evaluation \""),
        "{out}"
    );
    for expected in [
        ": Evaluation triggered by job \"cli-run\"",
        "\" created: node \"",
        ", group \"g\"",
        ": Evaluation status changed: \"pending\" -> \"complete\"",
        "\" finished with status \"complete\"",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    // Piped output is plain lines: no live line, no escape codes.
    assert!(!out.contains('\r') && !out.contains('\x1b'), "{out:?}");

    let status = wait_alloc_status(&agent, "cli-run", "running");
    assert_eq!(header_value(&status, "ID"), Some("cli-run"));
    assert_eq!(header_value(&status, "Name"), Some("cli-run"));
    assert_eq!(header_value(&status, "Type"), Some("service"));
    assert_eq!(header_value(&status, "Priority"), Some("50"));
    assert_eq!(header_value(&status, "Datacenters"), Some("*"));
    assert_eq!(header_value(&status, "Namespace"), Some("default"));
    assert_eq!(header_value(&status, "Node Pool"), Some("default"));
    assert_eq!(header_value(&status, "Status"), Some("running"));
    assert_eq!(header_value(&status, "Periodic"), Some("false"));
    assert_eq!(header_value(&status, "Parameterized"), Some("false"));
    assert!(header_value(&status, "Submit Date").is_some(), "{status}");
    let summary: Vec<&str> = status
        .split("\nSummary\n")
        .nth(1)
        .unwrap()
        .lines()
        .collect();
    assert_eq!(
        words(summary[0]),
        [
            "Task", "Group", "Queued", "Starting", "Running", "Failed", "Complete", "Lost",
            "Unknown"
        ]
    );
    assert_eq!(words(summary[1]), ["g", "0", "0", "1", "0", "0", "0", "0"]);
    let allocations: Vec<&str> = status
        .split("\nAllocations\n")
        .nth(1)
        .unwrap()
        .lines()
        .collect();
    assert_eq!(
        words(allocations[0]),
        [
            "ID", "Node", "ID", "Task", "Group", "Version", "Desired", "Status", "Created",
            "Modified"
        ]
    );
    let row = words(allocations[1]);
    assert_eq!(row[0].len(), 8, "{status}");
    assert_eq!(&row[2..6], ["g", "0", "run", "running"]);

    // The top-level `status` resolves the ID as a job.
    let top = caravan(&agent, &["status", "cli-run"]);
    assert_eq!(header_value(top.ok(), "ID"), Some("cli-run"));

    // -short stops after the header; -evals adds the evaluations.
    let short = caravan(&agent, &["job", "status", "-short", "cli-run"]);
    assert!(!short.ok().contains("Allocations"), "{short:#?}");
    let evals = caravan(&agent, &["job", "status", "-evals", "cli-run"]);
    let evals_table: Vec<&str> = evals
        .ok()
        .split("\nEvaluations\n")
        .nth(1)
        .unwrap()
        .lines()
        .collect();
    assert_eq!(
        words(evals_table[0]),
        [
            "ID",
            "Priority",
            "Triggered",
            "By",
            "Status",
            "Placement",
            "Failures"
        ]
    );
    assert_eq!(
        &words(evals_table[1])[1..],
        ["50", "job-register", "complete", "false"]
    );

    // -json is the API's JSON: summary, allocations, evaluations.
    let json = caravan(&agent, &["job", "status", "-json", "cli-run"]).json();
    assert_eq!(json[0]["Summary"]["JobID"], "cli-run");
    assert_eq!(json[0]["Summary"]["Summary"]["g"]["Running"], 1);
    assert_eq!(json[0]["Allocations"][0]["JobID"], "cli-run");
    assert_eq!(json[0]["Evaluations"][0]["TriggeredBy"], "job-register");

    // job allocs: the same table.
    let allocs = caravan(&agent, &["job", "allocs", "cli-run"]);
    let allocs_lines: Vec<&str> = allocs.ok().lines().collect();
    assert_eq!(words(allocs_lines[0])[0..2], ["ID", "Node"]);
    assert_eq!(allocs_lines.len(), 2, "{allocs:#?}");
    let allocs_json = caravan(&agent, &["job", "allocs", "-json", "cli-run"]).json();
    assert_eq!(allocs_json[0]["TaskGroup"], "g");

    // inspect: `{"Job": ...}` as the server holds it, and -version.
    let inspect = caravan(&agent, &["job", "inspect", "cli-run"]).json();
    assert_eq!(inspect["Job"]["ID"], "cli-run");
    assert_eq!(inspect["Job"]["Meta"]["label"], "none");
    let version = caravan(&agent, &["inspect", "-version", "0", "cli-r"]).json();
    assert_eq!(version["Job"]["Version"], 0);
    let missing = caravan(&agent, &["job", "inspect", "-version", "9", "cli-run"]);
    assert!(
        missing.failed().contains("couldn't be found"),
        "{missing:#?}"
    );

    // -check-index: a stale index is refused with the server's reason.
    let modify_index = inspect["Job"]["JobModifyIndex"].as_u64().unwrap();
    let stale = (modify_index + 100).to_string();
    let refused = caravan(&agent, &["job", "run", "-check-index", &stale, &file]);
    let stderr = refused.failed();
    assert!(
        stderr.contains(&format!(
            "Enforcing job modify index {stale}: job exists with conflicting job modify index: {modify_index}"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("Job not updated"), "{stderr}");
    let exists = caravan(&agent, &["job", "run", "-check-index", "0", &file]);
    assert!(
        exists.failed().contains("job already exists"),
        "{exists:#?}"
    );
    // The right index registers (an unchanged spec keeps the version).
    let index = modify_index.to_string();
    let accepted = caravan(
        &agent,
        &["job", "run", "-detach", "-check-index", &index, &file],
    );
    assert!(
        accepted.ok().contains("Job registration successful"),
        "{accepted:#?}"
    );

    // A prefix asks first; with no answer on stdin nothing is stopped.
    let unanswered = caravan(&agent, &["job", "stop", "cli-r"]);
    assert!(
        unanswered
            .stdout
            .contains("Are you sure you want to stop job \"cli-run\"? [y/N]"),
        "{unanswered:#?}"
    );
    assert_eq!(
        unanswered.failed().trim(),
        "Failed to parse answer: EOF",
        "{unanswered:#?}"
    );
    assert_eq!(
        header_value(
            caravan(&agent, &["job", "status", "-short", "cli-run"]).ok(),
            "Status"
        ),
        Some("running")
    );
    let declined = caravan_in(
        dir.path(),
        &[("NOMAD_ADDR", &agent.url(""))],
        &["job", "stop", "cli-r"],
        Some("n\n"),
    );
    assert!(
        declined.ok().contains("Cancelling job stop"),
        "{declined:#?}"
    );

    // -yes skips the question; the stop's evaluation is monitored.
    let stop = caravan(&agent, &["job", "stop", "-yes", "cli-r"]);
    let stopped = stop.ok();
    assert!(stopped.contains(": Monitoring evaluation \""), "{stopped}");
    assert!(
        stopped.contains(": Evaluation triggered by job \"cli-run\""),
        "{stopped}"
    );
    assert!(
        stopped.contains("\" finished with status \"complete\""),
        "{stopped}"
    );
    let after = caravan(&agent, &["job", "status", "-short", "cli-run"]);
    assert!(
        header_value(after.ok(), "Status").is_some_and(|status| status.ends_with("(stopped)")),
        "{after:#?}"
    );

    // -purge forgets the job.
    let purge = caravan(&agent, &["job", "stop", "-purge", "-detach", "cli-run"]);
    assert_eq!(purge.ok().trim().len(), 36, "{purge:#?}");
    let gone = caravan(&agent, &["job", "status", "cli-run"]);
    assert!(
        gone.failed()
            .contains("No job(s) with prefix or ID \"cli-run\" found"),
        "{gone:#?}"
    );
}

#[test]
fn detach_vars_lists_and_prefixes() {
    let marker = marker("cli-detach");
    let _reaper = ProcessReaper(marker.clone());
    let agent = dev_agent();
    let dir = tempfile::tempdir().unwrap();

    let none = caravan(&agent, &["job", "status"]);
    assert_eq!(none.ok().trim(), "No running jobs");

    for id in ["web1", "web2"] {
        let file = write(dir.path(), &format!("{id}.hcl"), &sleep_job(id, &marker));
        let label = format!("label={id}-label");
        let run = caravan(&agent, &["job", "run", "-detach", "-var", &label, &file]);
        let lines: Vec<&str> = run.ok().lines().collect();
        assert_eq!(lines[0], "Job registration successful", "{run:#?}");
        let eval_id = lines[1].strip_prefix("Evaluation ID: ").unwrap();
        assert_eq!(eval_id.len(), 36, "{run:#?}");
    }
    // -var reached the job.
    let inspect = caravan(&agent, &["job", "inspect", "web2"]).json();
    assert_eq!(inspect["Job"]["Meta"]["label"], "web2-label");

    // The list: Nomad's columns, one row per job.
    for list in [
        caravan(&agent, &["job", "status"]),
        caravan(&agent, &["status"]),
    ] {
        let lines: Vec<&str> = list.ok().lines().collect();
        assert_eq!(
            words(lines[0]),
            ["ID", "Type", "Priority", "Status", "Submit", "Date"]
        );
        assert_eq!(lines.len(), 3, "{list:#?}");
        assert_eq!(words(lines[1])[0..3], ["web1", "service", "50"]);
        assert_eq!(words(lines[2])[0..3], ["web2", "service", "50"]);
    }

    // A prefix of two jobs lists both and fails.
    let ambiguous = caravan(&agent, &["job", "status", "web"]);
    let stderr = ambiguous.failed();
    assert!(stderr.contains("matched multiple jobs"), "{stderr}");
    assert!(
        stderr.contains("web1") && stderr.contains("web2"),
        "{stderr}"
    );
    // A prefix of one job is that job.
    let one = caravan(&agent, &["job", "status", "-short", "web2"]);
    assert_eq!(header_value(one.ok(), "ID"), Some("web2"));

    let unknown = caravan(&agent, &["job", "status", "nope"]);
    assert!(
        unknown
            .failed()
            .contains("No job(s) with prefix or ID \"nope\" found"),
        "{unknown:#?}"
    );
    let unresolved = caravan(&agent, &["status", "nope"]);
    assert!(
        unresolved.failed().contains("Unable to resolve ID"),
        "{unresolved:#?}"
    );
}

#[test]
fn one_job_id_in_two_namespaces_is_never_guessed() {
    let marker = marker("cli-namespaces");
    let _reaper = ProcessReaper(marker.clone());
    let agent = dev_agent();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "twin.hcl", &sleep_job("twin", &marker));
    // A namespace must exist before a job goes into it.
    let created = agent.put("/v1/namespace/other", r#"{"Name": "other"}"#);
    assert_eq!(created.status, 200, "{}", created.text);
    for namespace in ["default", "other"] {
        let run = caravan(
            &agent,
            &["job", "run", "-detach", "-namespace", namespace, &file],
        );
        assert!(
            run.ok().starts_with("Job registration successful"),
            "{run:#?}"
        );
    }
    // Every command that finds a job by ID refuses to pick one of the two.
    for command in ["status", "inspect", "history", "allocs", "eval", "stop"] {
        // `-yes` would skip `stop`'s question: the refusal is not it.
        let args: &[&str] = match command {
            "stop" => &["job", "stop", "-namespace=*", "-yes", "twin"],
            _ => &["job", command, "-namespace=*", "twin"],
        };
        let run = caravan(&agent, args);
        let stderr = run.failed();
        assert!(
            stderr.contains("matched multiple jobs"),
            "job {command}: {stderr}"
        );
        let rows: Vec<Vec<&str>> = stderr
            .lines()
            .map(words)
            .filter(|cells| cells.first() == Some(&"twin"))
            .collect();
        assert_eq!(rows.len(), 2, "job {command}: {stderr}");
        assert!(
            rows.iter().any(|cells| cells[1] == "default")
                && rows.iter().any(|cells| cells[1] == "other"),
            "job {command}: {stderr}"
        );
    }
    // Nothing was stopped; each job is still reachable in its namespace.
    for namespace in ["default", "other"] {
        let status = caravan(
            &agent,
            &["job", "status", "-short", "-namespace", namespace, "twin"],
        );
        let state = header_value(status.ok(), "Status");
        assert!(matches!(state, Some("pending" | "running")), "{status:#?}");
    }
}

#[test]
fn placement_failures_exit_2_and_validation_errors_exit_1() {
    let agent = dev_agent();
    let dir = tempfile::tempdir().unwrap();
    let impossible = r#"job "nowhere" {
  datacenters = ["*"]
  group "g" {
    constraint {
      attribute = "${attr.kernel.name}"
      value     = "plan9"
    }
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["600"]
      }
    }
  }
}
"#;
    let file = write(dir.path(), "nowhere.hcl", impossible);
    let run = caravan(&agent, &["job", "run", &file]);
    assert_eq!(run.code, 2, "{run:#?}");
    for expected in [
        "\" finished with status \"complete\" but failed to place all allocations:",
        ": Task Group \"g\" (failed to place 1 allocation):",
        "      * Constraint \"",
        "\" waiting for additional capacity to place remainder",
    ] {
        assert!(
            run.stdout.contains(expected),
            "missing {expected:?}:\n{}",
            run.stdout
        );
    }
    // The job status shows the failure while the blocked eval waits.
    let status = caravan(&agent, &["job", "status", "nowhere"]);
    assert!(
        status
            .ok()
            .contains("\nPlacement Failure\nTask Group \"g\":"),
        "{status:#?}"
    );

    // validate: a good file, a syntax error, and a job the server rejects.
    let good = write(dir.path(), "good.hcl", &sleep_job("good", "unused"));
    let valid = caravan(&agent, &["job", "validate", &good]);
    assert_eq!(valid.ok().trim(), "Job validation successful");
    let broken = write(dir.path(), "broken.hcl", "job \"x\" {\n  group \"g\" {\n");
    let syntax = caravan(&agent, &["job", "validate", &broken]);
    assert!(
        syntax.failed().contains("Error getting job struct"),
        "{syntax:#?}"
    );
    assert!(!syntax.stdout.contains("successful"), "{syntax:#?}");
    let no_driver = r#"job "nodriver" {
  group "g" {
    task "t" {
      config {
        command = "/bin/true"
      }
    }
  }
}
"#;
    let invalid_file = write(dir.path(), "nodriver.hcl", no_driver);
    let invalid = caravan(&agent, &["job", "validate", &invalid_file]);
    let stderr = invalid.failed();
    assert!(stderr.contains("Job validation errors:"), "{stderr}");
    assert!(stderr.contains("Missing task driver"), "{stderr}");
    assert!(!invalid.stdout.contains("successful"), "{invalid:#?}");
}

#[test]
fn an_unreachable_agent_fails_with_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "job.hcl", &sleep_job("x", "unused"));
    let address = format!("-address={NOWHERE}");
    let status = caravan_with(&[], &["job", "status", &address]);
    let stderr = status.failed();
    assert!(stderr.starts_with("Error querying jobs: "), "{stderr}");
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    let run = caravan_with(&[("NOMAD_ADDR", NOWHERE)], &["job", "run", &file]);
    let stderr = run.failed();
    assert!(stderr.starts_with("Error submitting job: "), "{stderr}");
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
}

#[test]
fn a_terminal_gets_a_live_progress_line() {
    let marker = marker("cli-tty");
    let _reaper = ProcessReaper(marker.clone());
    let agent = dev_agent();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "tty.hcl", &sleep_job("tty", &marker));
    // `script` runs the command on a pseudo-terminal and copies what it
    // printed to its own stdout.
    let command_line = format!("{BINARY} job run {file}");
    let output = Command::new("/usr/bin/script")
        .args(["-qec", &command_line, "/dev/null"])
        .env("NOMAD_ADDR", agent.url(""))
        .stdin(Stdio::null())
        .output()
        .expect("script runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    // The live line is drawn and erased (carriage return, erase line) ...
    assert!(text.contains("\r\x1b[2K"), "{text:?}");
    assert!(text.contains("Waiting for evaluation"), "{text:?}");
    // ... around the same monitor lines a pipe gets.
    assert!(
        text.contains(": Evaluation triggered by job \"tty\""),
        "{text:?}"
    );
    assert!(
        text.contains("\" finished with status \"complete\""),
        "{text:?}"
    );
    let inspect = caravan(&agent, &["job", "inspect", "tty"]).json();
    assert_eq!(inspect["Job"]["ID"], "tty");
}
