//! The `caravan node` commands against a real agent (one node that is
//! server and client), as a user runs them: the real binary, its stdout,
//! stderr and exit code.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{
    assert_kv, caravan, caravan_within, cluster, header_cells, line_with, running_alloc,
    wait_output,
};
use common::jobs::{marker, shell_job, ProcessReaper};
use common::BINARY;

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
            || monitored.stderr.trim() == "No drain strategy set",
        "{monitored:#?}"
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
