//! The `caravan` command: `caravan agent ...` runs an agent; more commands
//! follow Nomad's CLI.

mod agent;
mod listener;
mod node_sim;
mod tls_command;

use std::process::ExitCode;

const USAGE: &str = "Usage: caravan <command> [args]

Commands:
    agent      Runs a Caravan agent (server, client or both; -dev for a one-node cluster)
    node-sim   Registers and heartbeats many simulated nodes against a server
    operator   Operator tools: `operator gossip keyring generate` (or `operator keygen`)
    tls        Certificates for TLS: `tls ca create`, `tls cert create -server|-client|-cli`
    version    Prints the Caravan version
";

fn main() -> ExitCode {
    caravan_tls::install_default_provider();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("agent") => agent::run(&args[1..]),
        Some("node-sim") => node_sim::run(&args[1..]),
        Some("operator") => operator(&args[1..]),
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
        Some(other) => {
            eprintln!("caravan: unknown command {other:?}\n\n{USAGE}");
            ExitCode::from(1)
        }
    }
}

/// `caravan operator ...`: so far only Nomad's gossip key generator.
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
