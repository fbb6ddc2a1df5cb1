//! The `caravan node`, `alloc` and `eval` commands against a real agent
//! (one node that is server and client), as a user runs them: the real
//! binary, its stdout, stderr and exit code.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{caravan, Run};
use common::jobs::{
    marker, register, shell_job, wait_allocs, with_status, ProcessReaper, SERVER_AND_CLIENT,
};
use common::{Agent, BINARY};
use serde_json::{json, Value};

/// `caravan args...` that must finish within `limit` (a follow that never
/// ends would otherwise hang the test): killed and failed if it does not.
fn caravan_within(agent: &Agent, limit: Duration, args: &[&str]) -> Run {
    let mut child = Command::new(BINARY)
        .args(args)
        .env("NOMAD_ADDR", agent.url(""))
        .env_remove("NOMAD_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("caravan runs");
    // Pipes are drained while waiting so a chatty command cannot block.
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out = read_all(Box::new(child.stdout.take().expect("stdout")));
    let err = read_all(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "caravan {args:?} did not finish within {limit:?}; stdout so far:\n{}",
                out.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Waits (bounded) until `check` holds for what `caravan args` prints.
fn wait_output(agent: &Agent, args: &[&str], what: &str, check: impl Fn(&Run) -> bool) -> Run {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = caravan(agent, args);
        if check(&run) {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {run:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A one-node cluster whose node is ready, and the node's ID.
fn cluster() -> (Agent, String) {
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    wait_output(&agent, &["node", "status"], "the node to be ready", |run| {
        run.code == 0 && run.stdout.contains("ready")
    });
    let nodes = agent.get("/v1/nodes").json();
    let id = nodes[0]["ID"].as_str().expect("node ID").to_string();
    (agent, id)
}

/// Registers `job` and waits until one of its allocations runs.
fn running_alloc(agent: &Agent, job: &Value) -> String {
    register(agent, job);
    let id = job["ID"].as_str().expect("job ID");
    let allocs = wait_allocs(agent, id, "a running allocation", |allocs| {
        !with_status(allocs, "running").is_empty()
    });
    let running = with_status(&allocs, "running");
    running[0]["ID"].as_str().expect("alloc ID").to_string()
}

fn line_with<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{text}"))
}

/// Asserts that `text` has the `key = value` line (Nomad's key/value
/// block, `=` aligned).
fn assert_kv(text: &str, key: &str, value: &str) {
    let line = line_with(text, &format!("{key} "));
    let (_, got) = line.split_once(" = ").unwrap_or((line, ""));
    assert_eq!(got, value, "{key} in:\n{text}");
}

/// The cells of a table's header line.
fn header_cells(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn node_status_lists_shows_and_refuses_bad_ids() {
    let (agent, node) = cluster();
    let short = &node[..8];

    let list = caravan(&agent, &["node", "status"]);
    let header = list.ok().lines().next().unwrap_or_default();
    assert_eq!(
        header_cells(header),
        [
            "ID",
            "Node Pool",
            "DC",
            "Name",
            "Class",
            "Drain",
            "Eligibility",
            "Status"
        ]
    );
    let row = line_with(&list.stdout, short);
    assert!(row.contains("default") && row.contains("dc1"), "{row}");
    assert!(row.contains("false") && row.contains("eligible") && row.ends_with("ready"));

    let verbose = caravan(&agent, &["node", "status", "-verbose", "-allocs"]);
    let header = verbose.ok().lines().next().unwrap_or_default();
    for column in ["Address", "Version", "Running Allocs"] {
        assert!(header.contains(column), "{header}");
    }
    assert!(line_with(&verbose.stdout, &node).contains("127.0.0.1"));

    let quiet = caravan(&agent, &["node", "status", "-quiet"]);
    assert_eq!(quiet.ok().trim(), node);

    // -json is the API's own list.
    let listed = caravan(&agent, &["node", "status", "-json"]).json();
    assert_eq!(listed[0]["ID"], node.as_str());
    assert_eq!(listed, agent.get("/v1/nodes").json());

    let detail = caravan(&agent, &["node", "status", short]);
    let text = detail.ok();
    assert_eq!(line_with(text, "ID "), format!("ID              = {node}"));
    for key in [
        "Name ",
        "Node Pool ",
        "Class ",
        "DC ",
        "Eligibility ",
        "Uptime ",
    ] {
        line_with(text, key);
    }
    assert_kv(text, "Drain", "false");
    assert_kv(text, "Status", "ready");
    assert!(
        line_with(text, "Driver Status ").contains("raw_exec"),
        "{text}"
    );
    for section in ["Node Events", "Allocated Resources", "Allocations"] {
        assert!(
            text.lines().any(|line| line == section),
            "{section}: {text}"
        );
    }
    assert!(text.contains("Time  ") && text.contains("Subsystem  Message"));
    assert!(text.contains("Node registered"), "{text}");
    assert!(text.contains("No allocations placed"), "{text}");

    let own = caravan(&agent, &["node", "status", "-self", "-short"]);
    assert_eq!(
        line_with(own.ok(), "ID "),
        format!("ID              = {node}")
    );
    let one = caravan(&agent, &["node", "status", "-json", &node]).json();
    assert_eq!(one, agent.get(&format!("/v1/node/{node}")).json());

    let one_char = caravan(&agent, &["node", "status", &node[..1]]);
    assert_eq!(
        one_char.failed().trim(),
        "Identifier must contain at least two characters."
    );
    let missing = if node.starts_with("ff") {
        "0000"
    } else {
        "ffff"
    };
    let none = caravan(&agent, &["node", "status", missing]);
    assert_eq!(
        none.failed().trim(),
        format!("No node(s) with prefix \"{missing}\" found")
    );
    let two = caravan(&agent, &["node", "status", "a", "b"]);
    assert!(two
        .failed()
        .contains("This command takes either one or no arguments"));
}

#[test]
fn node_eligibility_and_purge_are_reflected_in_status() {
    let (agent, node) = cluster();
    let off = caravan(&agent, &["node", "eligibility", "-disable", &node[..6]]);
    assert_eq!(
        off.ok().trim(),
        format!("Node \"{node}\" scheduling eligibility set: ineligible for scheduling")
    );
    let status = caravan(&agent, &["node", "status"]);
    assert!(line_with(status.ok(), &node[..8]).contains("ineligible"));
    let on = caravan(&agent, &["node", "eligibility", "-enable", "-self"]);
    assert_eq!(
        on.ok().trim(),
        format!("Node \"{node}\" scheduling eligibility set: eligible for scheduling")
    );
    let status = caravan(&agent, &["node", "status", &node]);
    assert_kv(status.ok(), "Eligibility", "eligible");

    let neither = caravan(&agent, &["node", "eligibility", &node]);
    assert!(neither
        .failed()
        .starts_with("Either the '-enable' or '-disable' flag must be set"));
    let no_node = caravan(&agent, &["node", "eligibility", "-enable"]);
    assert!(no_node
        .failed()
        .starts_with("Node ID must be specified if -self isn't being used"));
    let both = caravan(&agent, &["node", "drain", "-enable", "-disable", &node]);
    assert!(both.failed().starts_with(
        "Either the '-enable' or '-disable' flag must be set, unless using '-monitor'"
    ));
    let force = caravan(
        &agent,
        &["node", "drain", "-enable", "-force", "-no-deadline", &node],
    );
    assert!(force
        .failed()
        .starts_with("-force and -no-deadline are mutually exclusive"));
    let bad = caravan(
        &agent,
        &["node", "drain", "-enable", "-deadline", "soon", &node],
    );
    assert_eq!(
        bad.failed().trim(),
        "Failed to parse deadline \"soon\": time: invalid duration \"soon\""
    );

    let purged = caravan(&agent, &["node", "purge", &node]);
    assert_eq!(purged.ok().trim(), format!("Node \"{node}\" purged"));
    // The live client registers again on its next heartbeat.
    wait_output(&agent, &["node", "status"], "the node to return", |run| {
        run.stdout.contains(&node[..8])
    });
}

#[test]
fn node_drain_follows_a_running_job_until_complete() {
    let (agent, node) = cluster();
    let mark = marker("cli-drain");
    let _reaper = ProcessReaper(mark.clone());
    let job = shell_job("drained", "service", 1, "sleep 300", &mark);
    let alloc = running_alloc(&agent, &job);

    // A prefix asks first; with nothing to read the drain is not set.
    let asked = caravan(&agent, &["node", "drain", "-enable", &node[..8]]);
    assert!(asked.stdout.contains(&format!(
        "Are you sure you want to enable drain mode for node \"{node}\"? [y/N]"
    )));
    assert_eq!(asked.failed().trim(), "Failed to parse answer: EOF");
    assert_eq!(
        agent.get(&format!("/v1/node/{node}")).json()["Drain"],
        false
    );

    let args = [
        "node",
        "drain",
        "-enable",
        "-yes",
        "-deadline",
        "3s",
        &node[..8],
    ];
    let drain = caravan_within(&agent, Duration::from_secs(90), &args);
    let text = drain.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].ends_with(": Ctrl-C to stop monitoring: will not cancel the node drain"));
    assert!(lines[1].ends_with(&format!(": Node \"{node}\" drain strategy set")));
    assert!(text.contains(&format!("Alloc \"{alloc}\" status running -> complete")));
    assert!(text.contains(&format!("All allocations on node \"{node}\" have stopped")));
    let last = lines.last().copied().unwrap_or_default().to_lowercase();
    assert!(
        last.ends_with(&format!("drain complete for node {node}")),
        "{text}"
    );
    // Piped, every line is a plain timestamped line.
    assert!(!text.contains('\r'), "{text:?}");

    let status = caravan(&agent, &["node", "status", &node]);
    assert_kv(status.ok(), "Drain", "false");
    assert_kv(&status.stdout, "Eligibility", "ineligible");
    assert!(
        status.stdout.contains("Node drain complete"),
        "{}",
        status.stdout
    );

    let detached = caravan(
        &agent,
        &[
            "node",
            "drain",
            "-enable",
            "-detach",
            "-no-deadline",
            "-yes",
            &node,
        ],
    );
    assert_eq!(
        detached.ok().trim(),
        format!("Node \"{node}\" drain strategy set")
    );
    let monitored = caravan_within(
        &agent,
        Duration::from_secs(60),
        &["node", "drain", "-monitor", &node],
    );
    // An empty node's drain may be over before the monitor looks.
    let text = monitored.ok();
    assert!(
        text.contains(&format!("Monitoring node \"{node}\""))
            || text.trim() == "No drain strategy set",
        "{text}"
    );
    let status = caravan(&agent, &["node", "status"]);
    assert!(line_with(status.ok(), &node[..8]).contains("ineligible"));
    let disabled = caravan(&agent, &["node", "drain", "-disable", "-yes", &node]);
    assert_eq!(
        disabled.ok().trim(),
        format!("Node \"{node}\" drain strategy unset")
    );
    let status = caravan(&agent, &["node", "status"]);
    assert!(line_with(status.ok(), &node[..8]).contains("  eligible"));
}

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
    assert!(
        header.contains(" Size ") && header.ends_with("Modified Time              Name"),
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

/// `caravan args...`: its exit code and stdout's bytes as they are.
fn caravan_bytes(agent: &Agent, args: &[&str]) -> (i32, Vec<u8>) {
    let output = Command::new(BINARY)
        .args(args)
        .env("NOMAD_ADDR", agent.url(""))
        .env_remove("NOMAD_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("caravan runs");
    (output.status.code().unwrap_or(-1), output.stdout)
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
            .contains("No job(s) with prefix or id \"no/such?job\" found"),
        "{unknown:#?}"
    );
}

#[test]
fn a_drain_cancelled_elsewhere_ends_the_monitor() {
    let (agent, node) = cluster();
    let mark = marker("cli-drain-cancel");
    let _reaper = ProcessReaper(mark.clone());
    // Without a deadline a drain leaves batch allocations running.
    let job = shell_job("long-batch", "batch", 1, "sleep 300", &mark);
    running_alloc(&agent, &job);

    let mut follow = Command::new(BINARY)
        .args(["node", "drain", "-enable", "-yes", "-no-deadline", &node])
        .env("NOMAD_ADDR", agent.url(""))
        .env_remove("NOMAD_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("caravan runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent.get(&format!("/v1/node/{node}")).json()["Drain"] != true {
        assert!(Instant::now() < deadline, "the drain was not set");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Someone else cancels the drain.
    let cancel = caravan(&agent, &["node", "drain", "-disable", "-yes", &node]);
    assert_eq!(
        cancel.ok().trim(),
        format!("Node \"{node}\" drain strategy unset")
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = follow.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = follow.kill();
            let _ = follow.wait();
            panic!("the drain monitor went on after the drain was cancelled");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stdout = String::new();
    if let Some(mut pipe) = follow.stdout.take() {
        let _ = pipe.read_to_string(&mut stdout);
    }
    assert!(status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("Drain canceled for node {node}")),
        "{stdout}"
    );
    assert!(!stdout.contains("Drain complete"), "{stdout}");
}
