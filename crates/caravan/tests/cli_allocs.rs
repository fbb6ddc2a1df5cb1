//! The `caravan alloc` and `eval` commands against a real agent (one node
//! that is server and client), as a user runs them: the real binary, its
//! stdout, stderr and exit code.

mod common;

use std::time::Duration;

use common::cli::{
    assert_kv, caravan, caravan_bytes, caravan_within, cluster, header_cells, line_with,
    running_alloc, wait_output,
};
use common::jobs::{marker, register, shell_job, wait_allocs, ProcessReaper};
use serde_json::json;

#[test]
fn alloc_status_logs_fs_signal_restart_and_stop() {
    let (agent, _node) = cluster();
    let mark = marker("cli-alloc");
    let _reaper = ProcessReaper(mark.clone());
    let script = "for i in 1 2 3 4 5; do echo line$i; done; echo oops >&2; \
                  trap 'echo got-hup' HUP; while true; do sleep 0.1; done";
    let job = shell_job("web", "service", 1, script, &mark);
    let alloc = running_alloc(&agent, &job);
    let short = &alloc[..8];

    let status = caravan(&agent, &["alloc", "status", short]);
    let text = status.ok();
    assert_eq!(
        line_with(text, "ID "),
        format!("ID                  = {alloc}")
    );
    for (key, value) in [
        ("Name ", "web.g[0]"),
        ("Job ID ", "web"),
        ("Job Version ", "0"),
        ("Client Status ", "running"),
        ("Desired Status ", "run"),
    ] {
        assert_kv(text, key.trim_end(), value);
    }
    for key in [
        "Eval ID ",
        "Node ID ",
        "Node Name ",
        "Created ",
        "Modified ",
    ] {
        line_with(text, key);
    }
    assert!(text.contains("Task \"t\" is \"running\""), "{text}");
    assert!(text.contains("Recent Events:"), "{text}");
    assert!(line_with(text, "Time ").contains("Type") && text.contains("Description"));
    assert!(
        text.contains("Started     Task started by client"),
        "{text}"
    );
    assert!(
        text.contains("Received    Task received by client"),
        "{text}"
    );
    let json = caravan(&agent, &["alloc", "status", "-json", &alloc]).json();
    assert_eq!(json["ID"], alloc.as_str());
    assert_eq!(json["ClientStatus"], "running");

    let stdout = wait_output(
        &agent,
        &["alloc", "logs", short],
        "the task's output",
        |run| run.stdout.contains("line5"),
    );
    assert_eq!(stdout.stdout, "line1\nline2\nline3\nline4\nline5\n");
    let stderr = caravan(&agent, &["alloc", "logs", "-stderr", short, "t"]);
    assert_eq!(stderr.ok(), "oops\n");
    let tail = caravan(&agent, &["alloc", "logs", "-tail", "-n", "2", short]);
    assert_eq!(tail.ok(), "line4\nline5\n");
    let bytes = caravan(
        &agent,
        &["alloc", "logs", "-tail", "-c", "6", "-task", "t", short],
    );
    assert_eq!(bytes.ok(), "line5\n");
    let no_task = caravan(&agent, &["alloc", "logs", "-task", "nope", short]);
    assert!(no_task
        .failed()
        .starts_with("Failed to validate task: Could not find task named: nope"));

    let root = caravan(&agent, &["alloc", "fs", short]);
    let text = root.ok();
    let header = line_with(text, "Mode");
    assert_eq!(
        header_cells(header),
        ["Mode", "Size", "Modified Time", "Name"],
        "{text}"
    );
    assert!(text.lines().any(|line| line.ends_with(" alloc/")), "{text}");
    assert!(text.lines().any(|line| line.ends_with(" t/")), "{text}");
    let logs_dir = caravan(&agent, &["alloc", "fs", short, "alloc/logs"]);
    assert!(logs_dir.ok().contains("t.stdout.0"), "{}", logs_dir.stdout);
    let cat = caravan(&agent, &["alloc", "fs", short, "alloc/logs/t.stdout.0"]);
    assert!(cat.ok().starts_with("line1\nline2\n"), "{}", cat.stdout);
    let stat = caravan(
        &agent,
        &["alloc", "fs", "-stat", "-H", short, "alloc/logs/t.stderr.0"],
    );
    let text = stat.ok();
    assert!(line_with(text, "Mode").contains("Content Type"), "{text}");
    let row = line_with(text, "-rw");
    assert!(
        row.contains("  5  ") && row.ends_with("t.stderr.0"),
        "{text}"
    );
    let missing = caravan(&agent, &["alloc", "fs", short, "no/such/file"]);
    assert!(missing.failed().contains("404"), "{missing:#?}");

    caravan(&agent, &["alloc", "signal", "-s", "SIGHUP", short]).ok();
    wait_output(
        &agent,
        &["alloc", "logs", short],
        "the trap's output",
        |run| run.stdout.contains("got-hup"),
    );
    let wrong = caravan(&agent, &["alloc", "signal", "-s", "SIGHUP", short, "nope"]);
    assert!(wrong
        .failed()
        .starts_with("Could not find task named: nope, found:\nt"));

    caravan(&agent, &["alloc", "restart", short, "t"]).ok();
    wait_output(&agent, &["alloc", "status", short], "the restart", |run| {
        run.stdout.contains("Total Restarts = 1") && run.stdout.contains("Restart Signaled")
    });
    let both = caravan(&agent, &["alloc", "restart", "-all-tasks", short, "t"]);
    assert_eq!(
        both.failed().trim(),
        "The -all-tasks option is not allowed when restarting a specific task."
    );

    let evals = caravan(&agent, &["eval", "list"]);
    let text = evals.ok();
    assert_eq!(
        header_cells(line_with(text, "ID")),
        [
            "ID",
            "Priority",
            "Triggered By",
            "Job ID",
            "Namespace",
            "Node ID",
            "Status",
            "Placement Failures"
        ]
    );
    assert!(text.contains("job-register"), "{text}");
    let eval_id = json["EvalID"].as_str().expect("eval ID");
    let eval = caravan(&agent, &["eval", "status", &eval_id[..8]]);
    let text = eval.ok();
    for (key, value) in [
        ("Status ", "complete"),
        ("Type ", "service"),
        ("TriggeredBy ", "job-register"),
        ("Job ID ", "web"),
        ("Namespace ", "default"),
        ("Priority ", "50"),
        ("Placement Failures ", "false"),
    ] {
        assert_kv(text, key.trim_end(), value);
    }
    line_with(text, "Create Time ");
    assert!(text.contains("Placed Allocations"), "{text}");
    let listed = caravan(&agent, &["eval", "list", "-job", "web", "-json"]).json();
    assert!(listed
        .as_array()
        .is_some_and(|evals| evals.iter().all(|e| e["JobID"] == "web")));
    let none = caravan(&agent, &["eval", "list", "-job", "nothing-here"]);
    assert_eq!(none.ok().trim(), "No evals found");
    let eval_json = caravan(&agent, &["eval", "status", "-json", eval_id]).json();
    assert_eq!(eval_json["ID"], eval_id);

    let stop = caravan_within(&agent, Duration::from_secs(60), &["alloc", "stop", short]);
    let text = stop.ok();
    assert!(
        line_with(text, "==> ").contains(": Monitoring evaluation \""),
        "{text}"
    );
    assert!(
        text.contains("Evaluation triggered by job \"web\""),
        "{text}"
    );
    assert!(text.contains("finished with status \"complete\""), "{text}");
    let stopped = agent.get(&format!("/v1/allocation/{alloc}")).json();
    assert_eq!(stopped["DesiredStatus"], "stop");
    let replacement = wait_allocs(&agent, "web", "a replacement", |allocs| {
        allocs
            .iter()
            .any(|a| a["ID"] != alloc.as_str() && a["ClientStatus"] == "running")
    });
    let next = replacement
        .iter()
        .find(|a| a["ID"] != alloc.as_str())
        .and_then(|a| a["ID"].as_str())
        .expect("replacement");
    let detached = caravan(&agent, &["alloc", "stop", "-detach", next]);
    let eval = detached.ok().trim().to_string();
    assert_eq!(eval.len(), 36, "{detached:#?}");
    assert_eq!(agent.get(&format!("/v1/evaluation/{eval}")).status, 200);
}

#[test]
fn alloc_commands_refuse_bad_ids_and_pick_tasks() {
    let (agent, _node) = cluster();
    let mark = marker("cli-alloc-tasks");
    let _reaper = ProcessReaper(mark.clone());
    let one = caravan(&agent, &["alloc", "status", "a"]);
    assert_eq!(
        one.failed().trim(),
        "Identifier must contain at least two characters."
    );
    let one = caravan(&agent, &["alloc", "logs", "a"]);
    assert_eq!(
        one.failed().trim(),
        "Alloc ID must contain at least two characters."
    );
    let none = caravan(&agent, &["alloc", "status", "abcd"]);
    assert_eq!(
        none.failed().trim(),
        "No allocation(s) with prefix or id \"abcd\" found"
    );
    let none = caravan(&agent, &["eval", "status", "abcd"]);
    assert_eq!(
        none.failed().trim(),
        "No evaluation(s) with prefix or id \"abcd\" found"
    );
    let usage = caravan(&agent, &["alloc", "logs"]);
    assert!(usage.failed().starts_with("An allocation ID is required"));

    // Two tasks and no task named: the user is told which there are.
    let mut job = shell_job("pair", "service", 1, "sleep 300", &mark);
    let second = json!({
        "Name": "u",
        "Driver": "raw_exec",
        "KillTimeout": 2_000_000_000u64,
        "Env": {"CARAVAN_TEST_MARKER": mark},
        "Config": {"command": "/bin/sh", "args": ["-c", "echo from-u; sleep 300"]}
    });
    if let Some(tasks) = job["TaskGroups"][0]["Tasks"].as_array_mut() {
        tasks.push(second);
    }
    let alloc = running_alloc(&agent, &job);
    let several = caravan(&agent, &["alloc", "logs", &alloc]);
    assert_eq!(
        several.failed().trim(),
        format!(
            "Failed to validate task: Allocation \"{}\" is running the following tasks:\n  * t\n  * u\n\nPlease specify the task.",
            &alloc[..8]
        )
    );
    let named = wait_output(
        &agent,
        &["alloc", "logs", &alloc, "u"],
        "u's output",
        |run| run.stdout.contains("from-u"),
    );
    assert_eq!(named.stdout, "from-u\n");
}

#[test]
fn alloc_logs_follow_ends_when_the_task_ends() {
    let (agent, _node) = cluster();
    let mark = marker("cli-follow");
    let _reaper = ProcessReaper(mark.clone());
    let script = "echo tick1; sleep 1; echo tick2; echo warn >&2; sleep 1; echo tick3";
    let job = shell_job("ticks", "batch", 1, script, &mark);
    register(&agent, &job);
    let allocs = wait_allocs(&agent, "ticks", "an allocation that started", |allocs| {
        allocs
            .iter()
            .any(|a| a["ClientStatus"] == "running" || a["ClientStatus"] == "complete")
    });
    let alloc = allocs[0]["ID"].as_str().expect("alloc ID").to_string();
    let follow = caravan_within(
        &agent,
        Duration::from_secs(60),
        &["alloc", "logs", "-f", &alloc],
    );
    assert_eq!(follow.ok(), "tick1\ntick2\ntick3\n");
    let errors = caravan_within(
        &agent,
        Duration::from_secs(60),
        &["alloc", "logs", "-f", "-stderr", &alloc],
    );
    assert_eq!(errors.ok(), "warn\n");
    let tail = caravan_within(
        &agent,
        Duration::from_secs(60),
        &["alloc", "logs", "-f", "-tail", "-n", "1", &alloc],
    );
    assert_eq!(tail.ok(), "tick3\n");
}

#[test]
fn alloc_fs_prints_binary_files_and_job_prefixes_find_allocations() {
    let (agent, _node) = cluster();
    let mark = marker("cli-binary");
    let _reaper = ProcessReaper(mark.clone());
    let script = "printf '\\377\\376\\000x' > \"$NOMAD_ALLOC_DIR/data/bin.dat\"; echo ready; \
                  while true; do sleep 0.1; done";
    let job = shell_job("binary-job", "service", 1, script, &mark);
    let alloc = running_alloc(&agent, &job);
    wait_output(
        &agent,
        &["alloc", "logs", &alloc],
        "the file to be written",
        |run| run.stdout.contains("ready"),
    );

    let bytes = b"\xff\xfe\x00x".to_vec();
    let cat = caravan_bytes(&agent, &["alloc", "fs", &alloc, "alloc/data/bin.dat"]);
    assert_eq!(cat, (0, bytes.clone()));
    let tail = caravan_bytes(
        &agent,
        &[
            "alloc",
            "fs",
            "-tail",
            "-c",
            "3",
            &alloc,
            "alloc/data/bin.dat",
        ],
    );
    assert_eq!(tail, (0, bytes[1..].to_vec()));

    // -job takes a prefix of the job's ID, as the job commands do.
    let by_job = caravan_bytes(
        &agent,
        &["alloc", "fs", "-job", "binary-j", "alloc/data/bin.dat"],
    );
    assert_eq!(by_job, (0, bytes));
    let logs = caravan(&agent, &["alloc", "logs", "-job", "binary-j"]);
    assert_eq!(logs.ok(), "ready\n");
    let grouped = caravan(
        &agent,
        &["alloc", "logs", "-job", "-group", "g", "binary-job"],
    );
    assert_eq!(grouped.ok(), "ready\n");
    let unknown = caravan(&agent, &["alloc", "logs", "-job", "no/such?job"]);
    assert!(
        unknown
            .failed()
            .contains("No job(s) with prefix or ID \"no/such?job\" found"),
        "{unknown:#?}"
    );
}
