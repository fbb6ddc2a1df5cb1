//! The `caravan` CLI's cluster, operator and ACL commands, the `-t`
//! templates and shell completion, run as a user runs them: the real
//! binary against real agents.

mod common;

use common::cli::{caravan, caravan_with, Run};
use common::cluster::eventually;
use common::{free_ports, Agent, BINARY};

/// The rows of a table's output (the header excluded), split on runs of
/// two or more spaces.
fn rows(output: &str) -> Vec<Vec<String>> {
    output
        .lines()
        .skip(1)
        .map(|line| {
            line.split("  ")
                .map(str::trim)
                .filter(|cell| !cell.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// The header's column names, split as [`rows`] splits rows.
fn header(output: &str) -> Vec<String> {
    output
        .lines()
        .next()
        .unwrap_or_default()
        .split("  ")
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .map(str::to_string)
        .collect()
}

/// The value of `key = value` in a key/value block.
fn value_of(output: &str, key: &str) -> String {
    output
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(" = ")?;
            (name.trim() == key).then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {key:?} in:\n{output}"))
}

#[test]
fn server_members_shows_nomads_columns_json_and_templates() {
    let agent = Agent::dev();
    let run = caravan(&agent, &["server", "members"]);
    let out = run.ok();
    assert_eq!(
        header(out),
        [
            "Name",
            "Address",
            "Port",
            "Status",
            "Leader",
            "Raft Version",
            "Build",
            "Datacenter",
            "Region"
        ]
    );
    let members = rows(out);
    assert_eq!(members.len(), 1, "{out}");
    assert_eq!(members[0][1], "127.0.0.1");
    assert_eq!(members[0][2], agent.serf_port.to_string());
    assert_eq!(&members[0][3..5], ["alive", "true"]);
    assert_eq!(&members[0][7..], ["dc1", "global"]);

    let detailed = caravan(&agent, &["server", "members", "-detailed"]);
    let columns = header(detailed.ok());
    assert_eq!(columns.last().map(String::as_str), Some("Tags"));
    assert!(columns.contains(&"Protocol".to_string()), "{columns:?}");
    assert!(detailed.stdout.contains("region=global"), "{detailed:?}");

    let json = caravan(&agent, &["server", "members", "-json"]).json();
    assert_eq!(json[0]["Status"], "alive");
    assert_eq!(json[0]["Tags"]["Leader"], "true");

    let template = "{{range .}}{{.Status}} {{.Tags.Leader}} {{printf \"%d\" .Port}}{{end}}";
    let run = caravan(&agent, &["server", "members", "-t", template]);
    assert_eq!(run.ok().trim(), format!("alive true {}", agent.serf_port));

    let broken = caravan(&agent, &["server", "members", "-t", "{{.Status"]);
    assert!(broken.failed().contains("unclosed action"), "{broken:?}");
    let both = caravan(&agent, &["server", "members", "-json", "-t", "{{.}}"]);
    assert!(both.failed().contains("Both json and template"), "{both:?}");
    let extra = caravan(&agent, &["server", "members", "extra"]);
    assert!(extra.failed().contains("This command takes no arguments"));
}

#[test]
fn server_join_brings_a_second_server_into_the_members() {
    let first = Agent::launch_server_on(free_ports(), "server {\n  bootstrap_expect = 1\n}\n");
    first.wait_ready();
    // No bootstrap_expect: it waits for a cluster's leader to add it.
    let second = Agent::launch_server_on(free_ports(), "");
    second.wait_answering();

    let run = caravan(&first, &["server", "join", &second.serf_address()]);
    assert_eq!(run.ok().trim(), "Joined 1 servers successfully");
    eventually("both servers alive in server members", || {
        let run = caravan(&first, &["server", "members"]);
        let members = rows(&run.stdout);
        run.code == 0
            && members.len() == 2
            && members
                .iter()
                .all(|row| row.get(3).map(String::as_str) == Some("alive"))
    });
    let members = caravan(&first, &["server", "members"]);
    let leaders: Vec<String> = rows(members.ok())
        .iter()
        .map(|row| row[4].clone())
        .collect();
    assert_eq!(
        leaders.iter().filter(|leader| *leader == "true").count(),
        1,
        "{members:?}"
    );

    let none = caravan(&first, &["server", "join"]);
    assert!(
        none.failed().contains("One or more node addresses"),
        "{none:?}"
    );
    // Forcing an unknown server to leave is a no-op, as in Nomad.
    caravan(&first, &["server", "force-leave", "no-such-server.global"]).ok();
}

#[test]
fn agent_info_prints_sorted_sections_json_and_templates() {
    let agent = Agent::dev();
    let run = caravan(&agent, &["agent-info"]);
    let out = run.ok();
    let sections: Vec<&str> = out.lines().filter(|line| !line.starts_with(' ')).collect();
    for section in ["client", "nomad", "raft", "runtime", "serf"] {
        assert!(sections.contains(&section), "{section} missing: {out}");
    }
    let mut sorted = sections.clone();
    sorted.sort();
    assert_eq!(sections, sorted);
    assert!(out.contains("\n  leader = true\n"), "{out}");
    assert!(out
        .lines()
        .skip(1)
        .all(|line| !line.starts_with(' ') || line.contains(" = ")));

    let json = caravan(&agent, &["agent-info", "-json"]).json();
    assert_eq!(json["stats"]["nomad"]["server"], "true");
    let run = caravan(&agent, &["agent-info", "-t", "{{.stats.nomad.leader}}"]);
    assert_eq!(run.ok().trim(), "true");
}

#[test]
fn operator_raft_list_peers_and_remove_peer_usage() {
    let agent = Agent::dev();
    for args in [
        vec!["operator", "raft", "list-peers"],
        vec!["operator", "raft", "list-peers", "-stale"],
    ] {
        let run = caravan(&agent, &args);
        let out = run.ok();
        assert_eq!(
            header(out),
            ["Node", "ID", "Address", "State", "Voter", "RaftProtocol"]
        );
        let peers = rows(out);
        assert_eq!(peers.len(), 1, "{out}");
        assert_eq!(peers[0][2], agent.rpc_address());
        assert_eq!(&peers[0][3..5], ["leader", "true"]);
    }
    let missing = caravan(&agent, &["operator", "raft", "remove-peer"]);
    assert!(
        missing.failed().contains("an address or id is required"),
        "{missing:?}"
    );
    let unknown = caravan(
        &agent,
        &["operator", "raft", "remove-peer", "-peer-id=nope"],
    );
    assert!(
        unknown.failed().contains("Error removing peer"),
        "{unknown:?}"
    );
}

#[test]
fn operator_autopilot_get_set_round_trip_and_health() {
    let agent = Agent::dev();
    let before = caravan(&agent, &["operator", "autopilot", "get-config"]);
    assert_eq!(value_of(before.ok(), "CleanupDeadServers"), "true");

    let set = caravan(
        &agent,
        &[
            "operator",
            "autopilot",
            "set-config",
            "-cleanup-dead-servers=false",
            "-max-trailing-logs=99",
            "-last-contact-threshold=300ms",
        ],
    );
    assert_eq!(set.ok().trim(), "Configuration updated!");
    let after = caravan(&agent, &["operator", "autopilot", "get-config"]);
    let out = after.ok();
    assert_eq!(value_of(out, "CleanupDeadServers"), "false");
    assert_eq!(value_of(out, "MaxTrailingLogs"), "99");
    assert_eq!(value_of(out, "LastContactThreshold"), "300ms");
    // Flags not given keep their values.
    assert_eq!(
        value_of(out, "ServerStabilizationTime"),
        value_of(before.ok(), "ServerStabilizationTime")
    );
    let json = caravan(&agent, &["operator", "autopilot", "get-config", "-json"]).json();
    assert_eq!(json["MaxTrailingLogs"], 99);

    let bad = caravan(
        &agent,
        &[
            "operator",
            "autopilot",
            "set-config",
            "-last-contact-threshold=soon",
        ],
    );
    assert!(bad.failed().contains("-last-contact-threshold"), "{bad:?}");

    eventually("autopilot health reports", || {
        caravan(&agent, &["operator", "autopilot", "health"])
            .stdout
            .starts_with("Healthy: ")
    });
    let health = caravan(&agent, &["operator", "autopilot", "health"]);
    assert!(health.ok().contains("\nServers: \n"), "{health:?}");
}

#[test]
fn operator_scheduler_get_set_round_trip() {
    let agent = Agent::dev();
    let before = caravan(&agent, &["operator", "scheduler", "get-config"]);
    assert_eq!(value_of(before.ok(), "Scheduler Algorithm"), "binpack");
    let index = value_of(before.ok(), "Modify Index");

    let set = caravan(
        &agent,
        &[
            "operator",
            "scheduler",
            "set-config",
            "-scheduler-algorithm=spread",
            "-preempt-batch-scheduler=true",
            &format!("-check-index={index}"),
        ],
    );
    assert_eq!(set.ok().trim(), "Scheduler configuration updated!");
    let after = caravan(&agent, &["operator", "scheduler", "get-config"]);
    assert_eq!(value_of(after.ok(), "Scheduler Algorithm"), "spread");
    assert_eq!(value_of(after.ok(), "Preemption Batch Scheduler"), "true");
    assert_eq!(value_of(after.ok(), "Preemption System Scheduler"), "true");

    let json = caravan(&agent, &["operator", "scheduler", "get-config", "-json"]).json();
    assert_eq!(json["SchedulerConfig"]["SchedulerAlgorithm"], "spread");
    assert_eq!(
        json["SchedulerConfig"]["PreemptionConfig"]["BatchSchedulerEnabled"],
        true
    );

    // The index moved: the old one no longer matches.
    let stale = caravan(
        &agent,
        &[
            "operator",
            "scheduler",
            "set-config",
            "-memory-oversubscription",
            &format!("-check-index={index}"),
        ],
    );
    assert!(stale.failed().contains("check-index"), "{stale:?}");
    let invalid = caravan(
        &agent,
        &[
            "operator",
            "scheduler",
            "set-config",
            "-scheduler-algorithm=random",
        ],
    );
    assert!(invalid.failed().contains("binpack"), "{invalid:?}");
}

fn bootstrap(agent: &Agent) -> String {
    let run = caravan(agent, &["acl", "bootstrap"]);
    let out = run.ok();
    assert_eq!(value_of(out, "Type"), "management");
    assert_eq!(value_of(out, "Name"), "Bootstrap Token");
    assert_eq!(value_of(out, "Policies"), "n/a");
    assert_eq!(value_of(out, "Expiry Time"), "<none>");
    value_of(out, "Secret ID")
}

/// `caravan args...` against `agent` with `NOMAD_TOKEN`.
fn with_token(agent: &Agent, token: &str, args: &[&str]) -> Run {
    caravan_with(
        &[("NOMAD_ADDR", &agent.url("")), ("NOMAD_TOKEN", token)],
        args,
    )
}

#[test]
fn acl_policies_and_tokens_through_the_cli() {
    let agent = Agent::start(&["-dev", "-acl-enabled"], "");
    let management = bootstrap(&agent);
    let again = caravan(&agent, &["acl", "bootstrap"]);
    assert!(again.failed().contains("Error bootstrapping"), "{again:?}");

    // Without a token: Nomad's 403 text, exit 1.
    let denied = caravan(&agent, &["acl", "token", "list"]);
    let stderr = denied.failed();
    assert!(
        stderr.contains("403") && stderr.contains("Permission denied"),
        "{denied:?}"
    );
    let denied = caravan(&agent, &["operator", "raft", "list-peers"]);
    assert!(denied.failed().contains("403"), "{denied:?}");

    let rules = agent.dir.path().join("readonly.hcl");
    std::fs::write(&rules, "namespace \"default\" {\n  policy = \"read\"\n}\n").unwrap();
    let rules = rules.display().to_string();
    let apply = caravan(
        &agent,
        &[
            "acl",
            "policy",
            "apply",
            "-token",
            &management,
            "-description",
            "read only",
            "readonly",
            &rules,
        ],
    );
    assert_eq!(
        apply.ok().trim(),
        "Successfully wrote \"readonly\" ACL policy!"
    );

    let list = with_token(&agent, &management, &["acl", "policy", "list"]);
    assert_eq!(header(list.ok()), ["Name", "Description"]);
    assert_eq!(rows(list.ok()), [["readonly", "read only"]]);
    let json = with_token(&agent, &management, &["acl", "policy", "list", "-json"]).json();
    assert_eq!(json[0]["Name"], "readonly");
    let names = with_token(
        &agent,
        &management,
        &[
            "acl",
            "policy",
            "list",
            "-t",
            "{{range .}}{{.Name}};{{end}}",
        ],
    );
    assert_eq!(names.ok().trim(), "readonly;");
    let info = with_token(&agent, &management, &["acl", "policy", "info", "readonly"]);
    assert_eq!(value_of(info.ok(), "Description"), "read only");
    assert!(
        info.ok().contains("\n\nRules\n\nnamespace \"default\" {"),
        "{info:?}"
    );

    let create = with_token(
        &agent,
        &management,
        &[
            "acl", "token", "create", "-name", "ci", "-policy", "readonly", "-type", "client",
        ],
    );
    let out = create.ok();
    assert_eq!(value_of(out, "Policies"), "[readonly]");
    assert!(out.ends_with("\n\nRoles\n<none>\n"), "{out}");
    let accessor = value_of(out, "Accessor ID");
    let secret = value_of(out, "Secret ID");

    let tokens = with_token(&agent, &management, &["acl", "token", "list"]);
    assert_eq!(
        header(tokens.ok()),
        ["Name", "Type", "Global", "Accessor ID", "Expired"]
    );
    assert!(
        rows(tokens.ok())
            .iter()
            .any(|row| row[0] == "ci" && row[3] == accessor),
        "{tokens:?}"
    );
    let info = with_token(&agent, &management, &["acl", "token", "info", &accessor]);
    assert_eq!(value_of(info.ok(), "Name"), "ci");
    let me = caravan(&agent, &["acl", "token", "self", "-token", &secret]);
    assert_eq!(value_of(me.ok(), "Accessor ID"), accessor);
    let no_token = caravan(&agent, &["acl", "token", "self"]);
    assert!(
        no_token.failed().contains("No token present"),
        "{no_token:?}"
    );

    let update = with_token(
        &agent,
        &management,
        &["acl", "token", "update", "-name", "ci2", &accessor],
    );
    assert_eq!(value_of(update.ok(), "Name"), "ci2");
    assert_eq!(value_of(update.ok(), "Secret ID"), secret);
    let template = with_token(
        &agent,
        &management,
        &[
            "acl",
            "token",
            "info",
            "-t",
            "{{.Name}}/{{len .Policies}}",
            &accessor,
        ],
    );
    assert_eq!(template.ok().trim(), "ci2/1");

    // A client token may not manage ACLs.
    let refused = caravan(&agent, &["acl", "token", "list", "-token", &secret]);
    assert!(refused.failed().contains("403"), "{refused:?}");

    let delete = with_token(&agent, &management, &["acl", "token", "delete", &accessor]);
    assert_eq!(
        delete.ok().trim(),
        format!("Token {accessor} successfully deleted")
    );
    let gone = with_token(&agent, &management, &["acl", "token", "info", &accessor]);
    assert!(gone.failed().contains("404"), "{gone:?}");
    let delete = with_token(
        &agent,
        &management,
        &["acl", "policy", "delete", "readonly"],
    );
    assert_eq!(delete.ok().trim(), "Successfully deleted readonly policy!");
    let empty = with_token(&agent, &management, &["acl", "policy", "list"]);
    assert_eq!(empty.ok().trim(), "No policies found");
}

#[test]
fn an_unreachable_agent_is_a_clear_failure() {
    // Port 1 on loopback refuses at once.
    let run = caravan_with(
        &[("NOMAD_ADDR", "http://127.0.0.1:1")],
        &["server", "members"],
    );
    let stderr = run.failed();
    assert!(stderr.contains("Error querying servers"), "{run:?}");
    assert!(stderr.contains("127.0.0.1:1"), "{run:?}");
}

/// The binary run the way bash's `complete -C` runs it.
fn complete(line: &str) -> Vec<String> {
    let point = line.len().to_string();
    let run = caravan_with(
        &[("COMP_LINE", line), ("COMP_POINT", &point)],
        &["caravan", "", ""],
    );
    run.ok().lines().map(str::to_string).collect()
}

#[test]
fn shell_completion_answers_bash() {
    assert!(complete("caravan jo").contains(&"job".to_string()));
    assert_eq!(complete("caravan job st"), ["status", "stop"]);
    assert!(complete("caravan ").contains(&"agent".to_string()));
    assert_eq!(complete("caravan server members -det"), ["-detailed"]);
}

#[test]
fn autocomplete_install_writes_the_line_once_and_uninstall_removes_it() {
    let home = tempfile::tempdir().unwrap();
    let home_path = home.path().display().to_string();
    std::fs::write(home.path().join(".zshrc"), "# zsh\n").unwrap();
    for _ in 0..2 {
        caravan_with(&[("HOME", &home_path)], &["-autocomplete-install"]).ok();
    }
    let marker = "# added by caravan -autocomplete-install";
    let line = format!("complete -C {BINARY} caravan {marker}");
    let bashrc = std::fs::read_to_string(home.path().join(".bashrc")).unwrap();
    assert_eq!(
        bashrc
            .lines()
            .filter(|l| l.starts_with("complete -C"))
            .count(),
        1,
        "{bashrc}"
    );
    assert!(bashrc.lines().any(|l| l == line), "{bashrc}");
    let zshrc = std::fs::read_to_string(home.path().join(".zshrc")).unwrap();
    assert_eq!(
        zshrc,
        format!("# zsh\nautoload -U +X bashcompinit && bashcompinit {marker}\n{line}\n")
    );

    caravan_with(&[("HOME", &home_path)], &["-autocomplete-uninstall"]).ok();
    let bashrc = std::fs::read_to_string(home.path().join(".bashrc")).unwrap();
    assert!(!bashrc.contains("complete -C"), "{bashrc}");
    let zshrc = std::fs::read_to_string(home.path().join(".zshrc")).unwrap();
    assert_eq!(zshrc, "# zsh\n");
}

#[test]
fn acl_bootstrap_trims_the_secret_file_and_json_is_the_apis() {
    let agent = Agent::start(&["-dev", "-acl-enabled"], "");
    let secret = "2b778dd9-f5f1-6f29-b4b4-9a5fa948757a";
    let file = agent.dir.path().join("secret");
    // An editor's or Windows' line end and stray spaces are not the secret.
    std::fs::write(&file, format!("  {secret} \r\n")).unwrap();
    let file = file.display().to_string();
    let run = caravan(&agent, &["acl", "bootstrap", "-json", &file]);
    let token = run.json();
    assert_eq!(token["SecretID"], secret, "{run:?}");
    assert_eq!(token["Type"], "management");
    let own = with_token(&agent, secret, &["acl", "token", "self", "-json"]).json();
    assert_eq!(own["AccessorID"], token["AccessorID"]);
}
