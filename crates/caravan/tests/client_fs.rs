//! The client fs and logs endpoints against real agents: a raw_exec task
//! writes known output and a file, and every endpoint reads them back from
//! the agent that runs it, and through a server-only agent that relays to
//! it. Escapes and secrets are refused without naming a host path.

mod common;

use base64::Engine;
use common::acl::{bootstrap, create_policy, create_token, with_token};
use common::cluster::eventually;
use common::jobs::SERVER_AND_CLIENT;
use common::jobs::{marker, register, shell_job, wait_allocs, with_status, ProcessReaper};
use common::{Agent, Reply};
use serde_json::Value;
use std::io::Read;
use std::time::{Duration, Instant};

/// 150000 lines of 11 bytes (1.65 MB, so the 1 MB files rotate once),
/// then a last line; a data file, a symlink out of the alloc dir, a
/// secret.
const SCRIPT: &str = "printf 'first\\nsecond\\n' > \"$NOMAD_ALLOC_DIR/data/out.txt\"; \
    ln -s /etc \"$NOMAD_ALLOC_DIR/data/etc\"; \
    echo hush > \"$NOMAD_SECRETS_DIR/token\"; \
    yes abcdefghij | head -n 150000; echo END-OF-LOG; echo err-line >&2; \
    sleep 600 & wait";

const LINES: usize = 150_000;
const LAST: &str = "END-OF-LOG\n";

fn job(marker: &str) -> Value {
    let mut job = shell_job("fs", "service", 1, SCRIPT, marker);
    job["TaskGroups"][0]["Tasks"][0]["LogConfig"] =
        serde_json::json!({"MaxFiles": 3, "MaxFileSizeMB": 1});
    job
}

/// Runs the job on `agent`'s cluster and waits for all of its output.
fn running_alloc(agent: &Agent) -> String {
    let allocs = wait_allocs(agent, "fs", "a running allocation", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    let id = allocs[0]["ID"].as_str().unwrap_or_default().to_string();
    eventually("the whole log written", || {
        let reply = agent.get(&logs_path(&id, "stdout", "plain=true&origin=end&offset=11"));
        reply.status == 200 && reply.text == LAST
    });
    id
}

fn logs_path(id: &str, kind: &str, extra: &str) -> String {
    format!("/v1/client/fs/logs/{id}?task=t&type={kind}&{extra}")
}

fn expected_stdout() -> String {
    let mut text = "abcdefghij\n".repeat(LINES);
    text.push_str(LAST);
    text
}

/// Decodes a concatenation of frames into (offset, data, file) triples,
/// skipping `{}` heartbeats; a frame cut at the end (a stream read so
/// far) is left out.
fn frames(body: &str) -> Vec<(u64, Vec<u8>, String)> {
    serde_json::Deserializer::from_str(body)
        .into_iter::<Value>()
        .map_while(Result::ok)
        .filter(|frame| frame.as_object().is_some_and(|fields| !fields.is_empty()))
        .map(|frame| {
            let data = base64::engine::general_purpose::STANDARD
                .decode(frame["Data"].as_str().unwrap_or_default())
                .expect("base64");
            (
                frame["Offset"].as_u64().unwrap_or(0),
                data,
                frame["File"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn assert_refused(reply: &Reply, status: u16, text: &str, host: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert!(reply.text.contains(text), "{}", reply.text);
    assert!(
        !reply.text.contains(host),
        "host path leaked: {}",
        reply.text
    );
}

#[test]
fn files_and_logs_of_a_running_task_are_served_and_escapes_refused() {
    // Declared first, dropped last: after the agent, so nothing restarts
    // what it kills.
    let marker = marker("client-fs");
    let _reaper = ProcessReaper(marker.clone());
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    register(&agent, &job(&marker));
    let id = running_alloc(&agent);
    let host = agent.data_dir().display().to_string();
    let fs = |op: &str, query: &str| agent.get(&format!("/v1/client/fs/{op}/{id}?{query}"));

    // ls: the root, then the data directory.
    let root = fs("ls", "");
    assert_eq!(root.status, 200, "{}", root.text);
    let names: Vec<String> = root
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["Name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["alloc", "t"]);
    let data = fs("ls", "path=/alloc/data").json();
    assert_eq!(data[0]["Name"], "etc");
    assert!(
        data[0]["FileMode"].as_str().unwrap().starts_with('L'),
        "{data}"
    );
    let entry = &data[1];
    assert_eq!(entry["Name"], "out.txt");
    assert_eq!(entry["IsDir"], false);
    assert_eq!(entry["Size"], 13);
    assert!(
        entry["FileMode"].as_str().unwrap().starts_with("-rw"),
        "{entry}"
    );
    assert!(entry["ModTime"].is_string());
    let logs = fs("ls", "path=alloc/logs").json();
    let log_names: Vec<&str> = logs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| entry["Name"].as_str())
        .filter(|name| !name.starts_with('.'))
        .collect();
    assert_eq!(log_names, ["t.stderr.0", "t.stdout.0", "t.stdout.1"]);

    // stat, cat, readat.
    let stat = fs("stat", "path=alloc/data/out.txt");
    assert_eq!(stat.status, 200, "{}", stat.text);
    assert_eq!(stat.json()["ContentType"], "text/plain; charset=utf-8");
    assert_eq!(stat.json()["Size"], 13);
    let cat = fs("cat", "path=alloc/data/out.txt");
    assert_eq!((cat.status, cat.text.as_str()), (200, "first\nsecond\n"));
    let readat = fs("readat", "path=alloc/data/out.txt&offset=6&limit=3");
    assert_eq!((readat.status, readat.text.as_str()), (200, "sec"));
    let rest = fs("readat", "path=alloc/data/out.txt&offset=6");
    assert_eq!(rest.text, "second\n");
    assert_refused(
        &fs("readat", "path=alloc/data/out.txt"),
        400,
        "error parsing offset",
        &host,
    );
    assert_refused(&fs("cat", ""), 400, "must provide a file name", &host);
    assert_refused(&fs("cat", "path=alloc/data"), 400, "is a directory", &host);

    // Logs, framed: every byte in order, across the rotation.
    let framed = agent.get(&logs_path(&id, "stdout", ""));
    assert_eq!(framed.status, 200, "{}", framed.text);
    assert_eq!(
        framed.header("content-type").as_deref(),
        Some("application/json")
    );
    let frames = frames(&framed.text);
    assert!(frames.iter().all(|(_, data, _)| data.len() <= 64 * 1024));
    assert_eq!(frames[0].2, "alloc/logs/t.stdout.0");
    assert_eq!(
        frames.last().map(|f| f.2.as_str()),
        Some("alloc/logs/t.stdout.1")
    );
    let joined: Vec<u8> = frames
        .iter()
        .flat_map(|(_, data, _)| data.clone())
        .collect();
    assert_eq!(String::from_utf8(joined).unwrap(), expected_stdout());
    // Each Offset is the end of its frame's data in its file.
    let first_file_size = fs("stat", "path=alloc/logs/t.stdout.0").json()["Size"]
        .as_u64()
        .unwrap();
    let last_of_first = frames.iter().rev().find(|f| f.2.ends_with(".0")).unwrap();
    assert_eq!(last_of_first.0, first_file_size);

    // Plain, and from the end back across the rotation.
    let plain = agent.get(&logs_path(&id, "stdout", "plain=true"));
    assert_eq!(
        plain.header("content-type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(plain.text, expected_stdout());
    let second_size = fs("stat", "path=alloc/logs/t.stdout.1").json()["Size"]
        .as_u64()
        .unwrap();
    let back = second_size + 11;
    let tail = agent.get(&logs_path(
        &id,
        "stdout",
        &format!("plain=true&origin=end&offset={back}"),
    ));
    assert_eq!(tail.text.len() as u64, back);
    // (Lines may be split between the files: output comes in pipe-sized
    // pieces.)
    let expected = expected_stdout();
    assert_eq!(tail.text, expected[expected.len() - back as usize..]);
    let from = agent.get(&logs_path(&id, "stdout", "plain=true&offset=11"));
    assert_eq!(from.text, expected_stdout()[11..]);
    let stderr = agent.get(&logs_path(&id, "stderr", "plain=true"));
    assert_eq!(stderr.text, "err-line\n");

    // Log request errors.
    let no_task = agent.get(&format!("/v1/client/fs/logs/{id}?type=stdout"));
    assert_refused(&no_task, 400, "must provide task name", &host);
    assert_refused(
        &agent.get(&logs_path(&id, "stdin", "")),
        400,
        "must provide log type",
        &host,
    );
    assert_refused(
        &agent.get(&logs_path(&id, "stdout", "origin=middle")),
        400,
        "origin must be start or end",
        &host,
    );
    assert_refused(
        &agent.get(&logs_path(&id, "stdout", "plain=maybe")),
        400,
        "failed to parse plain field to boolean",
        &host,
    );
    let unknown_task = agent.get(&format!("/v1/client/fs/logs/{id}?task=nope&type=stdout"));
    assert_refused(&unknown_task, 400, "unknown task name \"nope\"", &host);

    // Every escape refused, no host path in any answer.
    for op in ["ls", "stat", "cat", "readat"] {
        for (path, status, text) in [
            ("..", 400, "Path escapes the alloc directory"),
            ("../..", 400, "Path escapes the alloc directory"),
            ("alloc/../../..", 400, "Path escapes the alloc directory"),
            // Decoded once by the query string: `../..`.
            ("%2e%2e/%2e%2e", 400, "Path escapes the alloc directory"),
            // Decoded once, `%2e%2e` is an ordinary (missing) name.
            ("%252e%252e/etc", 404, "no such file or directory"),
            ("/etc/passwd", 404, "no such file or directory"),
            ("alloc/data/etc", 400, "Path escapes the alloc directory"),
            (
                "alloc/data/etc/passwd",
                400,
                "Path escapes the alloc directory",
            ),
            ("alloc/data/missing", 404, "no such file or directory"),
            (
                "t/secrets/token",
                500,
                "Reading secret file prohibited: t/secrets/token",
            ),
            ("t/secrets", 500, "Reading secret file prohibited"),
            ("t/private", 500, "Reading private file prohibited"),
            (
                "t/local/../secrets/token",
                500,
                "Reading secret file prohibited",
            ),
        ] {
            let reply = fs(op, &format!("path={path}&offset=0"));
            assert_refused(&reply, status, text, &host);
        }
    }
    // Unknown allocation, unknown operation, missing alloc ID.
    let unknown = "00000000-0000-0000-0000-000000000000";
    let reply = agent.get(&format!("/v1/client/fs/ls/{unknown}"));
    assert_refused(
        &reply,
        404,
        &format!("Unknown allocation \"{unknown}\""),
        &host,
    );
    assert_refused(
        &agent.get(&format!("/v1/client/fs/bogus/{id}")),
        404,
        "Invalid method",
        &host,
    );
    assert_refused(
        &agent.get("/v1/client/fs/ls/"),
        400,
        "must provide a valid alloc id",
        &host,
    );
}

#[test]
fn a_server_relays_to_the_client_that_holds_the_allocation() {
    let marker = marker("client-fs-relay");
    let _reaper = ProcessReaper(marker.clone());
    let server = Agent::start_with_data_dir(&["-server", "-bootstrap-expect", "1"], "");
    let client = Agent::start_with_data_dir(
        &[
            "-client",
            "-node",
            "fs-client",
            "-servers",
            &server.rpc_address(),
        ],
        "plugin \"raw_exec\" {\n  config {\n    enabled = true\n  }\n}\n",
    );
    register(&server, &job(&marker));
    let id = running_alloc(&server);
    for query in [
        format!("/v1/client/fs/ls/{id}?path=alloc/data"),
        format!("/v1/client/fs/stat/{id}?path=alloc/data/out.txt"),
        format!("/v1/client/fs/cat/{id}?path=alloc/data/out.txt"),
        format!("/v1/client/fs/readat/{id}?path=alloc/data/out.txt&offset=2&limit=4"),
        logs_path(&id, "stdout", ""),
        logs_path(&id, "stdout", "plain=true&origin=end&offset=30"),
        format!("/v1/client/fs/cat/{id}?path=t/secrets/token"),
        format!("/v1/client/fs/cat/{id}?path=../.."),
        format!("/v1/client/fs/cat/{id}?path=alloc/missing"),
    ] {
        let direct = client.get(&query);
        let relayed = server.get(&query);
        assert_eq!(relayed.status, direct.status, "{query}: {}", relayed.text);
        assert_eq!(relayed.text, direct.text, "{query}");
        assert_eq!(
            relayed.header("content-type"),
            direct.header("content-type"),
            "{query}"
        );
    }
    assert_eq!(
        server
            .get(&format!("/v1/client/fs/cat/{id}?path=alloc/data/out.txt"))
            .text,
        "first\nsecond\n"
    );
    // A followed stream is relayed as it comes (the task never ends, so
    // only hanging up ends it).
    let url = server.url(&format!(
        "/v1/client/fs/stream/{id}?path=alloc/data/out.txt"
    ));
    assert_eq!(
        frame_data(&read_stream_until(&url, "second\n")),
        "first\nsecond\n"
    );
    let url = server.url(&logs_path(&id, "stderr", "follow=true"));
    assert_eq!(
        frame_data(&read_stream_until(&url, "err-line\n")),
        "err-line\n"
    );
    let unknown = "00000000-0000-0000-0000-000000000000";
    let reply = server.get(&format!("/v1/client/fs/ls/{unknown}"));
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(reply.text, format!("Unknown allocation \"{unknown}\""));
}

/// The data of every frame in `body`, in order.
fn frame_data(body: &str) -> String {
    let data: Vec<u8> = frames(body)
        .into_iter()
        .flat_map(|(_, data, _)| data)
        .collect();
    String::from_utf8(data).expect("UTF-8 data")
}

/// Reads a followed stream until the data of its frames so far holds
/// `wanted` (30 s at most), then hangs up; the body read.
fn read_stream_until(url: &str, wanted: &str) -> String {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut response = client.get(url).send().expect("request");
    assert_eq!(response.status(), 200);
    let mut body = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let read = response.read(&mut buffer).expect("read");
        let text = String::from_utf8_lossy(&body).into_owned();
        assert!(read > 0, "the stream ended early: {text:?}");
        body.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&body).into_owned();
        if frame_data(&text).contains(wanted) {
            return text;
        }
    }
}

#[test]
fn following_streams_output_as_it_comes_and_ends_with_the_task() {
    let marker = marker("client-fs-follow");
    let _reaper = ProcessReaper(marker.clone());
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    let script = "sleep 1; for i in 1 2 3 4; do echo tick $i; \
        echo tick $i >> \"$NOMAD_ALLOC_DIR/data/grow.txt\"; sleep 0.5; done";
    register(&agent, &shell_job("follow", "batch", 1, script, &marker));
    let allocs = wait_allocs(&agent, "follow", "a running allocation", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    let id = allocs[0]["ID"].as_str().unwrap_or_default().to_string();
    eventually("the log file", || {
        agent.get(&logs_path(&id, "stdout", "plain=true")).status == 200
    });
    let ticks = "tick 1\ntick 2\ntick 3\ntick 4\n";
    // Both follows start before the output is complete and end on their
    // own once the task is dead and its output read.
    let started = Instant::now();
    let (framed, plain) = std::thread::scope(|scope| {
        let framed = scope.spawn(|| agent.get(&logs_path(&id, "stdout", "follow=true")));
        let plain = scope.spawn(|| agent.get(&logs_path(&id, "stdout", "follow=true&plain=true")));
        (framed.join().expect("framed"), plain.join().expect("plain"))
    });
    assert!(started.elapsed() > Duration::from_millis(1500));
    assert_eq!((plain.status, plain.text.as_str()), (200, ticks));
    assert_eq!(
        plain.header("content-type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(framed.status, 200, "{}", framed.text);
    assert_eq!(frame_data(&framed.text), ticks);
    assert!(framed.text.contains("{}"), "no heartbeat: {}", framed.text);
    wait_allocs(&agent, "follow", "a complete allocation", |allocs| {
        with_status(allocs, "complete").len() == 1
    });

    // The stream endpoint: from the end, following (until we hang up),
    // and without follow to the end of the file.
    let url = agent.url(&format!(
        "/v1/client/fs/stream/{id}?path=alloc/data/grow.txt&origin=end&offset=7"
    ));
    let body = read_stream_until(&url, "tick 4\n");
    assert_eq!(frame_data(&body), "tick 4\n");
    assert!(body.contains(r#""File":"alloc/data/grow.txt""#), "{body}");
    let whole = agent.get(&format!(
        "/v1/client/fs/stream/{id}?path=alloc/data/grow.txt&follow=false"
    ));
    assert_eq!(frame_data(&whole.text), ticks);
    let host = agent.data_dir().display().to_string();
    for (query, status, text) in [
        ("path=../..", 400, "Path escapes the alloc directory"),
        ("path=t/secrets/x", 500, "Reading secret file prohibited"),
        ("path=alloc/nope", 404, "no such file or directory"),
        ("path=alloc", 400, "is a directory"),
        ("", 400, "must provide a file name"),
        (
            "path=alloc/data/grow.txt&origin=middle",
            400,
            "origin must be start or end",
        ),
        (
            "path=alloc/data/grow.txt&offset=x",
            500,
            "error parsing offset",
        ),
    ] {
        let reply = agent.get(&format!("/v1/client/fs/stream/{id}?{query}"));
        assert_refused(&reply, status, text, &host);
    }
}

#[test]
fn reading_needs_read_fs_and_logs_accept_read_logs() {
    let marker = marker("client-fs-acl");
    let _reaper = ProcessReaper(marker.clone());
    let agent = Agent::start_with_data_dir(&["-acl-enabled"], SERVER_AND_CLIENT);
    let management = bootstrap(&agent);
    let job = shell_job("acl", "service", 1, "echo hi; sleep 600 & wait", &marker);
    let body = serde_json::json!({ "Job": job }).to_string();
    let reply = with_token(&agent, "PUT", "/v1/jobs", Some(&management), &body);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let get = |path: &str, token: Option<&str>| with_token(&agent, "GET", path, token, "");
    let running = || {
        let allocs = get("/v1/job/acl/allocations", Some(&management)).json();
        allocs.as_array().and_then(|allocs| {
            allocs
                .iter()
                .find(|alloc| alloc["ClientStatus"] == "running")
                .and_then(|alloc| alloc["ID"].as_str().map(str::to_string))
        })
    };
    eventually("a running allocation", || running().is_some());
    let id = running().unwrap_or_default();
    for (name, capability) in [("logs", "read-logs"), ("fs", "read-fs")] {
        let rules = format!("namespace \"default\" {{ capabilities = [\"{capability}\"] }}");
        create_policy(&agent, &management, name, &rules);
    }
    let logs_token = create_token(&agent, &management, &["logs"]);
    let fs_token = create_token(&agent, &management, &["fs"]);
    let secret = |token: &Value| token["SecretID"].as_str().unwrap_or_default().to_string();
    let (logs_token, fs_token) = (secret(&logs_token), secret(&fs_token));
    let ls = format!("/v1/client/fs/ls/{id}");
    let logs = logs_path(&id, "stdout", "plain=true");
    eventually("the output", || {
        get(&logs, Some(&management)).text == "hi\n"
    });
    for (path, token, status) in [
        (&ls, None, 403),
        (&logs, None, 403),
        (&ls, Some(&logs_token), 403),
        (&logs, Some(&logs_token), 200),
        (&ls, Some(&fs_token), 200),
        (&logs, Some(&fs_token), 200),
    ] {
        let reply = get(path, token.map(String::as_str));
        assert_eq!(reply.status, status, "{path} {token:?}: {}", reply.text);
    }
}
