//! `nomad alloc exec` against a real agent: commands run inside running
//! tasks of each driver over `/v1/client/allocation/:id/exec` (a
//! websocket with Nomad's JSON frames), with their input, output, exit
//! code and the task's view of the world; the refusals before any command
//! runs; the ACL's `alloc-exec` and, for raw_exec, `alloc-node-exec`.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::docker::{ready, ContainerReaper, TASK_IMAGE};
use common::jobs::{marker, register, wait_allocs, with_status, ProcessReaper, SERVER_AND_CLIENT};
use common::Agent;
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

/// What one exec did.
#[derive(Debug, Default)]
struct Outcome {
    stdout: String,
    stderr: String,
    exit_code: Option<i64>,
}

fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn decode(text: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn exec_url(agent: &Agent, alloc_id: &str, task: &str, command: &[&str], tty: bool) -> String {
    let command = serde_json::to_string(command).unwrap_or_default();
    let query: String = url_encode(&command);
    agent
        .url(&format!(
            "/v1/client/allocation/{alloc_id}/exec?task={task}&tty={tty}&command={query}"
        ))
        .replacen("http://", "ws://", 1)
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Runs `command` in `task`, sending `stdin` then closing it.
fn exec(
    agent: &Agent,
    alloc_id: &str,
    task: &str,
    command: &[&str],
    stdin: &str,
    token: Option<&str>,
) -> Result<Outcome, String> {
    exec_with(agent, alloc_id, task, command, stdin, token, false)
}

/// [`exec`], on a terminal when `tty`.
fn exec_with(
    agent: &Agent,
    alloc_id: &str,
    task: &str,
    command: &[&str],
    stdin: &str,
    token: Option<&str>,
    tty: bool,
) -> Result<Outcome, String> {
    let mut request = exec_url(agent, alloc_id, task, command, tty)
        .into_client_request()
        .map_err(|error| error.to_string())?;
    if let Some(token) = token {
        let value = token.parse().map_err(|_| "bad token".to_string())?;
        request.headers_mut().insert("X-Nomad-Token", value);
    }
    let (mut socket, _) = tungstenite::connect(request).map_err(|error| match error {
        tungstenite::Error::Http(response) => format!(
            "{} {}",
            response.status().as_u16(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
        ),
        other => other.to_string(),
    })?;
    if tty {
        let size = json!({"tty_size": {"height": 30, "width": 100}}).to_string();
        socket
            .send(Message::Text(size.into()))
            .map_err(|e| e.to_string())?;
    }
    if !stdin.is_empty() {
        let frame = json!({"stdin": {"data": encode(stdin.as_bytes())}}).to_string();
        socket
            .send(Message::Text(frame.into()))
            .map_err(|e| e.to_string())?;
    }
    let close = json!({"stdin": {"close": true}}).to_string();
    socket
        .send(Message::Text(close.into()))
        .map_err(|e| e.to_string())?;
    let mut outcome = Outcome::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let message = match socket.read() {
            Ok(message) => message,
            Err(_) => break,
        };
        let Message::Text(text) = message else {
            if matches!(message, Message::Close(_)) {
                break;
            }
            continue;
        };
        let frame: Value = serde_json::from_str(&text).unwrap_or_default();
        if let Some(data) = frame["stdout"]["data"].as_str() {
            outcome.stdout.push_str(&decode(data));
        }
        if let Some(data) = frame["stderr"]["data"].as_str() {
            outcome.stderr.push_str(&decode(data));
        }
        if frame["exited"] == json!(true) {
            outcome.exit_code = frame["result"]["exit_code"].as_i64();
        }
    }
    Ok(outcome)
}

fn run_one(agent: &Agent, job: Value) -> String {
    let id = job["ID"].as_str().unwrap_or_default().to_string();
    register(agent, &job);
    let running = wait_allocs(agent, &id, "a running allocation", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    running[0]["ID"].as_str().unwrap_or_default().to_string()
}

fn job(id: &str, driver: &str, config: Value, env: Value) -> Value {
    json!({
        "ID": id,
        "TaskGroups": [{"Name": "g", "Tasks": [{
            "Name": "t", "Driver": driver, "Env": env,
            "KillTimeout": 1_000_000_000u64,
            "Resources": {"CPU": 100, "MemoryMB": 64},
            "Config": config
        }]}]
    })
}

const SCRIPT: &[&str] = &[
    "sh",
    "-c",
    "read line; echo got:$line; echo oops >&2; echo in:$EXEC_TEST; exit 3",
];

#[test]
fn a_command_runs_inside_a_docker_task_with_its_input_output_and_exit_code() {
    if !ready(TASK_IMAGE, "the docker alloc exec test") {
        return;
    }
    let reaper = ContainerReaper::new();
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    let config = json!({"image": TASK_IMAGE, "command": "sleep", "args": ["600"]});
    let alloc_id = run_one(
        &agent,
        job("dexec", "docker", config, json!({"EXEC_TEST": "docker"})),
    );
    reaper.watch(&alloc_id);
    let outcome = exec(&agent, &alloc_id, "t", SCRIPT, "hello\n", None).unwrap();
    assert_eq!(outcome.stdout, "got:hello\nin:docker\n", "{outcome:?}");
    assert_eq!(outcome.stderr, "oops\n");
    assert_eq!(outcome.exit_code, Some(3));
    // Inside the container: its image's files.
    let outcome = exec(
        &agent,
        &alloc_id,
        "t",
        &["cat", "/www/index.html"],
        "",
        None,
    )
    .unwrap();
    assert_eq!(outcome.stdout, "hello from caravan\n");
    assert_eq!(outcome.exit_code, Some(0));
}

#[test]
fn a_command_runs_inside_a_raw_exec_task_with_its_environment_and_directory() {
    let tag = marker("alloc-exec");
    let _reaper = ProcessReaper(tag.clone());
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    let config = json!({"command": "/bin/sleep", "args": ["600"]});
    let env = json!({"EXEC_TEST": "raw", "CARAVAN_TEST_MARKER": tag});
    let alloc_id = run_one(&agent, job("rexec", "raw_exec", config, env));
    let outcome = exec(&agent, &alloc_id, "t", SCRIPT, "hi\n", None).unwrap();
    assert_eq!(outcome.stdout, "got:hi\nin:raw\n", "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(3));
    let outcome = exec(&agent, &alloc_id, "t", &["pwd"], "", None).unwrap();
    let task_dir = agent.data_dir().join("alloc").join(&alloc_id).join("t");
    assert_eq!(outcome.stdout.trim(), task_dir.display().to_string());
    // On a terminal, sized as asked.
    let script = "test -t 0 && test -t 1 && echo on-a-tty; sleep 0.3; stty size";
    let outcome = exec_with(
        &agent,
        &alloc_id,
        "t",
        &["sh", "-c", script],
        "",
        None,
        true,
    )
    .unwrap();
    assert!(outcome.stdout.contains("on-a-tty"), "{outcome:?}");
    assert!(outcome.stdout.contains("30 100"), "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(0));
}

#[test]
fn bad_requests_are_refused_before_anything_runs() {
    let tag = marker("alloc-exec-bad");
    let _reaper = ProcessReaper(tag.clone());
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    let config = json!({"command": "/bin/sleep", "args": ["600"]});
    let alloc_id = run_one(
        &agent,
        job(
            "bexec",
            "raw_exec",
            config,
            json!({"CARAVAN_TEST_MARKER": tag}),
        ),
    );
    let refused = |task: &str, command: &[&str]| {
        exec(&agent, &alloc_id, task, command, "", None).unwrap_err()
    };
    assert!(refused("", &["true"]).starts_with("400"), "missing task");
    assert!(refused("t", &[]).starts_with("400"), "empty command");
    assert!(
        refused("nope", &["true"]).starts_with("500"),
        "unknown task"
    );
    let unknown = "00000000-0000-4000-8000-000000000000";
    let error = exec(&agent, unknown, "t", &["true"], "", None).unwrap_err();
    assert!(error.starts_with("404"), "{error}");
    // A plain GET (no websocket) is refused too.
    let path = format!(
        "/v1/client/allocation/{alloc_id}/exec?task=t&command={}",
        url_encode("[\"true\"]")
    );
    assert_eq!(agent.get(&path).status, 400);
}

#[test]
fn exec_needs_alloc_exec_and_for_raw_exec_alloc_node_exec() {
    let tag = marker("alloc-exec-acl");
    let _reaper = ProcessReaper(tag.clone());
    let agent = Agent::start_with_data_dir(&["-acl-enabled"], SERVER_AND_CLIENT);
    let management = common::acl::bootstrap(&agent);
    let config = json!({"command": "/bin/sleep", "args": ["600"]});
    let mut raw = job(
        "aexec",
        "raw_exec",
        config,
        json!({"CARAVAN_TEST_MARKER": tag}),
    );
    raw["ID"] = json!("aexec");
    let body = json!({"Job": raw}).to_string();
    let reply = common::acl::with_token(&agent, "POST", "/v1/jobs", Some(&management), &body);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let deadline = Instant::now() + Duration::from_secs(60);
    let alloc_id = loop {
        let reply = common::acl::with_token(
            &agent,
            "GET",
            "/v1/job/aexec/allocations",
            Some(&management),
            "",
        );
        let running = reply.json().as_array().and_then(|allocs| {
            allocs
                .iter()
                .find(|alloc| alloc["ClientStatus"] == json!("running"))
                .and_then(|alloc| alloc["ID"].as_str().map(str::to_string))
        });
        if let Some(id) = running {
            break id;
        }
        assert!(Instant::now() < deadline, "no running allocation");
        std::thread::sleep(Duration::from_millis(100));
    };
    let policy = |name: &str, caps: &str| {
        let rules = format!("namespace \"default\" {{\n  capabilities = [{caps}]\n}}\n");
        common::acl::create_policy(&agent, &management, name, &rules);
        let token = common::acl::create_token(&agent, &management, &[name]);
        token["SecretID"].as_str().unwrap_or_default().to_string()
    };
    let reader = policy("reader", "\"read-job\"");
    let execer = policy("execer", "\"alloc-exec\"");
    let node_execer = policy("node-execer", "\"alloc-exec\", \"alloc-node-exec\"");
    for (token, allowed) in [(&reader, false), (&execer, false), (&node_execer, true)] {
        let outcome = exec(&agent, &alloc_id, "t", &["echo", "ok"], "", Some(token));
        match allowed {
            true => assert_eq!(outcome.unwrap().stdout, "ok\n"),
            false => {
                let error = outcome.unwrap_err();
                assert!(error.starts_with("403"), "{error}");
            }
        }
    }
}

#[test]
fn a_command_joins_an_exec_task_in_its_namespaces_and_cgroup() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIPPED: the exec driver needs root");
        return;
    }
    let tag = marker("alloc-exec-isolated");
    let _reaper = ProcessReaper(tag.clone());
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    let config = json!({"command": "/bin/sleep", "args": ["600"]});
    let env = json!({"EXEC_TEST": "isolated", "CARAVAN_TEST_MARKER": tag});
    let alloc_id = run_one(&agent, job("iexec", "exec", config, env));
    let script = "echo pid:$$; echo host:$(hostname); ls /; cat /proc/self/cgroup; \
                  echo in:$EXEC_TEST; echo uid:$(id -u); grep NoNewPrivs /proc/self/status";
    let outcome = exec(&agent, &alloc_id, "t", &["/bin/sh", "-c", script], "", None).unwrap();
    assert_eq!(outcome.exit_code, Some(0), "{outcome:?}");
    let pid: u32 = outcome
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("pid:"))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or(u32::MAX);
    assert!(
        pid < 1000,
        "numbered in the task's PID namespace: {outcome:?}"
    );
    let host = nix::unistd::gethostname().unwrap_or_default();
    assert!(
        !outcome
            .stdout
            .contains(&format!("host:{}\n", host.to_string_lossy())),
        "the task's hostname: {outcome:?}"
    );
    assert!(
        outcome.stdout.contains("local\n"),
        "the task's root: {outcome:?}"
    );
    assert!(
        !outcome.stdout.contains("\nwork\n"),
        "not the host's root: {outcome:?}"
    );
    assert!(
        outcome.stdout.contains("caravan/"),
        "in the task's cgroup: {outcome:?}"
    );
    assert!(outcome.stdout.contains("in:isolated\n"), "{outcome:?}");
    // As the task's user (nobody), never regaining privileges.
    assert!(outcome.stdout.contains("uid:65534\n"), "{outcome:?}");
    assert!(outcome.stdout.contains("NoNewPrivs:\t1"), "{outcome:?}");
}

#[test]
fn exec_through_a_server_is_relayed_to_the_node_agent() {
    let tag = marker("alloc-exec-relay");
    let _reaper = ProcessReaper(tag.clone());
    let server = Agent::start_with_data_dir(&["-server", "-bootstrap-expect", "1"], "");
    let _client = Agent::start_with_data_dir(
        &[
            "-client",
            "-node",
            "exec-client",
            "-servers",
            &server.rpc_address(),
        ],
        "plugin \"raw_exec\" {\n  config {\n    enabled = true\n  }\n}\n",
    );
    let config = json!({"command": "/bin/sleep", "args": ["600"]});
    let env = json!({"EXEC_TEST": "relayed", "CARAVAN_TEST_MARKER": tag});
    let alloc_id = run_one(&server, job("relexec", "raw_exec", config, env));
    let outcome = exec(&server, &alloc_id, "t", SCRIPT, "via-server\n", None).unwrap();
    assert_eq!(
        outcome.stdout, "got:via-server\nin:relayed\n",
        "{outcome:?}"
    );
    assert_eq!(outcome.stderr, "oops\n");
    assert_eq!(outcome.exit_code, Some(3));
    // A refusal at the node comes back as it was.
    let error = exec(&server, &alloc_id, "nope", &["true"], "", None).unwrap_err();
    assert!(error.starts_with("500"), "{error}");
}

#[test]
fn a_caller_that_goes_away_leaves_no_command_running() {
    let tag = marker("alloc-exec-gone");
    let _reaper = ProcessReaper(tag.clone());
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    let config = json!({"command": "/bin/sleep", "args": ["600"]});
    let alloc_id = run_one(
        &agent,
        job(
            "gexec",
            "raw_exec",
            config,
            json!({"CARAVAN_TEST_MARKER": tag}),
        ),
    );
    let before = common::jobs::processes_with(&tag).len();
    let request = exec_url(
        &agent,
        &alloc_id,
        "t",
        &["sh", "-c", "sleep 300; sleep 300"],
        false,
    )
    .into_client_request()
    .unwrap();
    let (socket, _) = tungstenite::connect(request).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while common::jobs::processes_with(&tag).len() < before + 2 {
        assert!(Instant::now() < deadline, "the command never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(socket);
    let deadline = Instant::now() + Duration::from_secs(30);
    while common::jobs::processes_with(&tag).len() > before {
        assert!(
            Instant::now() < deadline,
            "the command outlived its caller: {:?}",
            common::jobs::processes_with(&tag)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `caravan alloc exec` as a user types it: the command's input from this
/// process's, its output on stdout and stderr, its exit code the CLI's;
/// the allocation named by a prefix; on a terminal (`script`), a terminal.
#[test]
fn the_cli_runs_a_command_in_a_task_and_exits_with_its_code() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let tag = marker("alloc-exec-cli");
    let _reaper = ProcessReaper(tag.clone());
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    let config = json!({"command": "/bin/sleep", "args": ["600"]});
    let env = json!({"EXEC_TEST": "cli", "CARAVAN_TEST_MARKER": tag});
    let alloc_id = run_one(&agent, job("cliexec", "raw_exec", config, env));
    let mut child = Command::new(common::BINARY)
        .args(["alloc", "exec", &alloc_id[..6]])
        .args(SCRIPT)
        .env("NOMAD_ADDR", agent.url(""))
        .env_remove("NOMAD_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"typed\n").unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout, "got:typed\nin:cli\n", "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "oops\n");
    assert_eq!(output.status.code(), Some(3));

    // -i=false: no input (the command sees its end at once).
    let run = common::cli::caravan(
        &agent,
        &[
            "alloc",
            "exec",
            "-i=false",
            &alloc_id,
            "sh",
            "-c",
            "cat; echo done",
        ],
    );
    assert_eq!(run.ok(), "done\n");

    // A terminal: `script` gives the CLI one, and the command gets one.
    let line = format!(
        "{} alloc exec {} sh -c 'test -t 0 && echo on-a-tty'",
        common::BINARY,
        &alloc_id
    );
    let output = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("NOMAD_ADDR", agent.url(""))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("on-a-tty"), "{output:?}");

    // Errors: a task that is not there; no command.
    let run = common::cli::caravan(
        &agent,
        &["alloc", "exec", "-task", "nope", &alloc_id, "true"],
    );
    assert!(
        run.failed().contains("Could not find task named: nope"),
        "{run:?}"
    );
    let run = common::cli::caravan(&agent, &["alloc", "exec", &alloc_id]);
    assert!(run.failed().contains("at least two arguments"), "{run:?}");
    // A command that cannot start: the agent closes the session saying
    // why, and the CLI prints it.
    let run = common::cli::caravan(
        &agent,
        &["alloc", "exec", "-i=false", &alloc_id, "/no/such/program"],
    );
    let stderr = run.failed();
    assert!(
        stderr.starts_with("Error starting the exec session: ")
            && stderr.contains("failed to exec into task: No such file or directory"),
        "{run:?}"
    );
}

/// An agent whose HTTP API requires TLS and client certificates, secured
/// as Nomad's docs say (`tls ca create`, `tls cert create -server|-cli`):
/// the CLI reaches it with `NOMAD_CACERT` and the CLI certificate, runs a
/// job, and `alloc exec` runs a command over `wss://`; without a client
/// certificate it is refused.
#[test]
fn the_cli_runs_jobs_and_exec_against_an_agent_that_requires_tls() {
    use std::process::Command;
    let tag = marker("alloc-exec-tls");
    let _reaper = ProcessReaper(tag.clone());
    let certs = tempfile::tempdir().unwrap();
    for args in [
        &["tls", "ca", "create"][..],
        &["tls", "cert", "create", "-server"],
        &["tls", "cert", "create", "-cli"],
    ] {
        let status = Command::new(common::BINARY)
            .args(args)
            .current_dir(certs.path())
            .output()
            .unwrap();
        assert!(status.status.success(), "{args:?}: {status:?}");
    }
    let path = |name: &str| certs.path().join(name).display().to_string();
    let hcl = format!(
        "tls {{\n  http = true\n  ca_file = \"{}\"\n  cert_file = \"{}\"\n  key_file = \"{}\"\n  verify_https_client = true\n}}\n",
        path("nomad-agent-ca.pem"),
        path("global-server-nomad.pem"),
        path("global-server-nomad-key.pem"),
    );
    let agent = Agent::launch_unwaited(&["-dev"], &hcl);
    let https = agent.url("").replacen("http://", "https://", 1);
    let (ca, cert, key) = (
        path("nomad-agent-ca.pem"),
        path("global-cli-nomad.pem"),
        path("global-cli-nomad-key.pem"),
    );
    let env = [
        ("NOMAD_ADDR", https.as_str()),
        ("NOMAD_CACERT", ca.as_str()),
        ("NOMAD_CLIENT_CERT", cert.as_str()),
        ("NOMAD_CLIENT_KEY", key.as_str()),
    ];
    let cli = |args: &[&str]| common::cli::caravan_with(&env, args);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cli(&["node", "status"]).stdout.contains("ready") {
        assert!(Instant::now() < deadline, "{}", agent.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let job_file = certs.path().join("tls.nomad.hcl");
    std::fs::write(
        &job_file,
        format!(
            "job \"tlsjob\" {{\n  group \"g\" {{\n    task \"t\" {{\n      driver = \"raw_exec\"\n      env {{\n        CARAVAN_TEST_MARKER = \"{tag}\"\n      }}\n      config {{\n        command = \"/bin/sleep\"\n        args = [\"600\"]\n      }}\n    }}\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let run = cli(&["job", "run", &job_file.display().to_string()]);
    assert!(run.ok().contains("Tasks are running"), "{run:#?}");
    let allocs = cli(&["job", "allocs", "-t", "{{range .}}{{.ID}}{{end}}", "tlsjob"]);
    let alloc_id = allocs.ok().trim().to_string();
    assert_eq!(alloc_id.len(), 36, "{allocs:#?}");
    let exec = cli(&[
        "alloc",
        "exec",
        "-i=false",
        &alloc_id,
        "sh",
        "-c",
        "echo over-tls",
    ]);
    assert_eq!(exec.ok(), "over-tls\n");

    // The agent wants a client certificate: without one, a clear failure.
    let bare = [
        ("NOMAD_ADDR", https.as_str()),
        ("NOMAD_CACERT", ca.as_str()),
    ];
    let refused = common::cli::caravan_with(&bare, &["node", "status"]);
    assert!(refused.failed().contains(&https), "{refused:#?}");
    let refused =
        common::cli::caravan_with(&bare, &["alloc", "exec", "-i=false", &alloc_id, "true"]);
    assert_eq!(refused.code, 1, "{refused:#?}");
}

/// A resized window resizes the command's terminal: the CLI on a
/// pseudo-terminal of 30×100 starts a command that waits until its own
/// terminal is no longer that size, the window becomes 40×120 (and the CLI
/// gets SIGWINCH, as a terminal emulator's resize sends it), and the
/// command sees the new size.
#[test]
fn a_resized_window_resizes_the_commands_terminal() {
    use nix::pty::{openpty, Winsize};
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::process::{Command, Stdio};
    let tag = marker("alloc-exec-winch");
    let _reaper = ProcessReaper(tag.clone());
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    let config = json!({"command": "/bin/sleep", "args": ["600"]});
    let env = json!({"CARAVAN_TEST_MARKER": tag});
    let alloc_id = run_one(&agent, job("winch", "raw_exec", config, env));
    let size = |rows, cols| Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(Some(&size(30, 100)), None).unwrap();
    let script =
        "stty size; while [ \"$(stty size)\" = \"30 100\" ]; do sleep 0.1; done; stty size";
    let mut child = Command::new(common::BINARY)
        .args(["alloc", "exec", "-t", &alloc_id, "sh", "-c", script])
        .env("NOMAD_ADDR", agent.url(""))
        .env_remove("NOMAD_TOKEN")
        .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave))
        .spawn()
        .unwrap();
    let (lines, seen) = std::sync::mpsc::channel();
    let mut master = std::fs::File::from(pty.master.try_clone().unwrap());
    std::thread::spawn(move || {
        let mut buffer = [0u8; 1024];
        let mut text = String::new();
        while let Ok(count) = master.read(&mut buffer) {
            if count == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buffer[..count]));
            if lines.send(text.clone()).is_err() {
                break;
            }
        }
    });
    let wait_for = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match seen.recv_timeout(left) {
                Ok(text) if text.contains(want) => return text,
                Ok(text) => last = text,
                Err(_) => panic!("the command never printed {want:?}; it printed {last:?}"),
            }
        }
    };
    wait_for("30 100");
    // SAFETY: TIOCSWINSZ reads one winsize from a live local.
    let resized = unsafe {
        nix::libc::ioctl(
            pty.master.as_raw_fd(),
            nix::libc::TIOCSWINSZ,
            &size(40, 120),
        )
    };
    assert_eq!(resized, 0);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGWINCH,
    )
    .unwrap();
    let text = wait_for("40 120");
    assert!(text.contains("40 120"), "{text}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
