//! The `caravan` command: `caravan agent ...` runs an agent; more commands
//! follow Nomad's CLI.

mod agent;
mod listener;
mod node_sim;
mod tls_command;

use std::process::ExitCode;

const USAGE: &str = "Usage: caravan [-version] [-help] [-autocomplete-install] <command> [args]

Common commands:
    run         Run a new job or update an existing job
    stop        Stop a running job
    status      Display the status output for a resource
    alloc       Interact with allocations
    job         Interact with jobs
    node        Interact with nodes
    agent       Runs a Caravan agent (server, client or both; -dev for a one-node cluster)

Other commands:
    acl         Interact with ACL policies and tokens
    agent-info  Display status information about the local agent
    eval        Interact with evaluations
    namespace   Interact with namespaces
    operator    Provides cluster-level tools (raft, autopilot, scheduler, gossip keyring)
    server      Interact with servers
    system      Interact with the system API (garbage collection, summaries)
    tls         Certificates for TLS: `tls ca create`, `tls cert create -server|-client|-cli`
    version     Prints the Caravan version
    node-sim    Registers and heartbeats many simulated nodes against a server

`caravan <command> -help` describes a command; `caravan job` lists the job commands.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `caravan executor <spec>` (hidden; the raw_exec driver runs it) parents
    // one task: no runtime, no logging, nothing on stdout.
    if args.first().map(String::as_str) == Some("executor") {
        return executor(&args[1..]);
    }
    // bash's `complete -C caravan caravan` runs us as `caravan caravan
    // <word> <previous>` with the line typed so far in COMP_LINE: answer
    // with the candidate words and nothing else. (An agent that inherited
    // the variable is still an agent.)
    if args.first().map(String::as_str) != Some("agent") {
        if let Some(line) = std::env::var_os("COMP_LINE") {
            let line = line.to_string_lossy();
            let point = std::env::var("COMP_POINT")
                .ok()
                .and_then(|point| point.parse::<usize>().ok());
            let typed = point.and_then(|point| line.get(..point)).unwrap_or(&line);
            for candidate in caravan_command::complete::candidates(typed) {
                println!("{candidate}");
            }
            return ExitCode::SUCCESS;
        }
    }
    match args.first().map(String::as_str) {
        Some("-autocomplete-install") => {
            return caravan_command::report(caravan_command::complete::install(false))
        }
        Some("-autocomplete-uninstall") => {
            return caravan_command::report(caravan_command::complete::install(true))
        }
        _ => {}
    }
    caravan_tls::install_default_provider();
    match args.first().map(String::as_str) {
        Some("agent") => agent::run(&args[1..]),
        Some("node-sim") => node_sim::run(&args[1..]),
        // Key generation lives in caravan-server; the other keyring
        // commands (list, install, use, remove) are caravan-command's.
        Some("operator")
            if matches!(
                args.iter()
                    .skip(1)
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .as_slice(),
                ["keygen", ..] | ["gossip", "keyring", "generate", ..]
            ) =>
        {
            operator(&args[1..])
        }
        Some("tls") => tls_command::run(&args[1..]),
        Some("version" | "-version" | "--version" | "-v") => {
            println!(
                "Caravan v{} (Nomad API {})",
                caravan_http::version::CARAVAN_VERSION,
                caravan_http::version::NOMAD_VERSION
            );
            ExitCode::SUCCESS
        }
        Some("-h" | "--help" | "-help" | "help") | None => {
            eprint!("{USAGE}");
            if args.is_empty() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Some(_) => {
            // Nomad's aliases: `caravan run`, `stop`, ... for `job ...`;
            // `caravan exec`, `logs`, `fs` for `alloc ...`.
            let mut words = args.clone();
            if matches!(
                words[0].as_str(),
                "run" | "stop" | "init" | "inspect" | "validate"
            ) {
                words.insert(0, "job".to_string());
            }
            if matches!(words[0].as_str(), "exec" | "logs" | "fs") {
                words.insert(0, "alloc".to_string());
            }
            caravan_command::run(&words).unwrap_or_else(|| {
                eprintln!("caravan: unknown command {:?}\n\n{USAGE}", args[0]);
                ExitCode::from(1)
            })
        }
    }
}

fn executor(args: &[String]) -> ExitCode {
    match args {
        [spec] => ExitCode::from(caravan_drivers::executor::run(std::path::Path::new(spec))),
        _ => {
            eprintln!("Usage: caravan executor <spec-file>");
            ExitCode::from(2)
        }
    }
}

/// `caravan operator gossip keyring generate` and `operator keygen`:
/// Nomad's gossip key generator.
fn operator(args: &[String]) -> ExitCode {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["gossip", "keyring", "generate"] | ["keygen"] => {
            println!("{}", caravan_server::keyring::generate_key());
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "Usage: caravan operator gossip keyring generate\n       caravan operator keygen"
            );
            ExitCode::from(1)
        }
    }
}
