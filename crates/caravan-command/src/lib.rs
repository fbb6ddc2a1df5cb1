//! The `caravan` CLI's commands: Nomad's verbs, flags, columns, exit codes
//! and habits, over [`caravan_sdk`]. `caravan agent` (which runs the server
//! and client) lives in the binary; every other command is here.
//!
//! A command is a function from its arguments (after its words, e.g. after
//! `job status`) to a [`CommandResult`]; [`run`] finds the longest command
//! the words name, runs it, prints a failure to stderr and turns it into
//! Nomad's exit code (1).

pub mod complete;
/// `println!` for a command's output: a closed stdout (`caravan job status
/// | head`) ends the command quietly, as SIGPIPE ends a Go program, where
/// `println!` would panic. (SIGPIPE itself stays ignored: its default would
/// also kill the command on a socket write to a server that hung up.)
#[macro_export]
macro_rules! outln {
    () => {
        $crate::ui::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::ui::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for a command's output; see [`outln!`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::ui::write_out(format_args!($($arg)*))
    };
}

pub mod error;
pub mod flags;
pub mod output;
pub mod prefix;
pub mod template;
pub mod ui;

mod acl;
mod agent_info;
mod alloc;
mod alloc_exec;
mod eval;
mod job;
mod monitor;
mod namespace;
mod node;
mod operator;
mod prompt;
mod server;
mod status;
mod system;

use std::process::ExitCode;

pub use error::{CommandError, CommandResult};

/// A command: its words, what runs it, and its one-line synopsis.
pub struct Command {
    pub words: &'static str,
    pub run: fn(&[String]) -> CommandResult,
    pub synopsis: &'static str,
}

/// Every command, Nomad's names. Groups (`job`, `node`, ...) are the words
/// several commands share; `caravan job` lists its commands.
pub const COMMANDS: &[Command] = &[
    cmd(
        "status",
        status::run,
        "Display the status output for a resource",
    ),
    cmd(
        "agent-info",
        agent_info::run,
        "Display status information about the local agent",
    ),
    cmd(
        "server members",
        server::members,
        "Display a list of known servers and their status",
    ),
    cmd("server join", server::join, "Join server nodes together"),
    cmd(
        "server force-leave",
        server::force_leave,
        "Force a server into the 'left' state",
    ),
    cmd(
        "node status",
        node::status,
        "Display status information about nodes",
    ),
    cmd(
        "node drain",
        node::drain,
        "Toggle drain mode on a given node",
    ),
    cmd(
        "node eligibility",
        node::eligibility,
        "Toggle scheduling eligibility for a given node",
    ),
    cmd("node purge", node::purge, "Purge a node from the cluster"),
    cmd(
        "node config",
        node::config,
        "View or modify client configuration details",
    ),
    cmd("job init", job::init, "Create an example job file"),
    cmd(
        "job run",
        job::run,
        "Run a new job or update an existing job",
    ),
    cmd(
        "job status",
        job::status,
        "Display status information about a job",
    ),
    cmd("job stop", job::stop, "Stop a running job"),
    cmd("job inspect", job::inspect, "Inspect a submitted job"),
    cmd(
        "job validate",
        job::validate,
        "Check a job specification for syntax errors",
    ),
    cmd("job allocs", job::allocs, "List allocations for a job"),
    cmd(
        "job history",
        job::history,
        "Display all tracked versions of a job",
    ),
    cmd("job eval", job::eval, "Force an evaluation for the job"),
    cmd(
        "job deployments",
        job::deployments,
        "List deployments for a job",
    ),
    cmd(
        "alloc status",
        alloc::status,
        "Display allocation status information and metadata",
    ),
    cmd("alloc logs", alloc::logs, "Streams the logs of a task"),
    cmd(
        "alloc fs",
        alloc::fs,
        "Inspect the contents of an allocation directory",
    ),
    cmd(
        "alloc stop",
        alloc::stop,
        "Stop and reschedule a running allocation",
    ),
    cmd(
        "alloc restart",
        alloc::restart,
        "Restart a running allocation",
    ),
    cmd("alloc signal", alloc::signal, "Signal a running allocation"),
    cmd("alloc exec", alloc_exec::run, "Execute commands in task"),
    cmd(
        "eval status",
        eval::status,
        "Display evaluation status and placement failure reasons",
    ),
    cmd("eval list", eval::list, "List the set of evaluations"),
    cmd("eval delete", eval::delete, "Delete evaluations"),
    cmd(
        "acl bootstrap",
        acl::bootstrap,
        "Bootstrap the ACL system for initial token",
    ),
    cmd(
        "acl policy apply",
        acl::policy_apply,
        "Create or update an ACL policy",
    ),
    cmd("acl policy list", acl::policy_list, "List ACL policies"),
    cmd(
        "acl policy info",
        acl::policy_info,
        "Fetch info on an existing ACL policy",
    ),
    cmd(
        "acl policy delete",
        acl::policy_delete,
        "Delete an existing ACL policy",
    ),
    cmd(
        "acl token create",
        acl::token_create,
        "Create a new ACL token",
    ),
    cmd("acl token list", acl::token_list, "List ACL tokens"),
    cmd(
        "acl token info",
        acl::token_info,
        "Fetch information on an existing ACL token",
    ),
    cmd("acl token self", acl::token_self, "Lookup self ACL token"),
    cmd(
        "acl token update",
        acl::token_update,
        "Update an existing ACL token",
    ),
    cmd(
        "acl token delete",
        acl::token_delete,
        "Delete an existing ACL token",
    ),
    cmd(
        "namespace apply",
        namespace::apply,
        "Create or update a namespace",
    ),
    cmd("namespace list", namespace::list, "List namespaces"),
    cmd(
        "namespace status",
        namespace::status,
        "Display a namespace's status",
    ),
    cmd(
        "namespace inspect",
        namespace::inspect,
        "Inspect a namespace",
    ),
    cmd("namespace delete", namespace::delete, "Delete a namespace"),
    cmd(
        "operator raft list-peers",
        operator::raft_list_peers,
        "Display the current Raft peer configuration",
    ),
    cmd(
        "operator raft remove-peer",
        operator::raft_remove_peer,
        "Remove a Nomad server from the Raft configuration",
    ),
    cmd(
        "operator raft transfer-leadership",
        operator::raft_transfer_leadership,
        "Transfer leadership to a specified Nomad server",
    ),
    cmd(
        "operator autopilot get-config",
        operator::autopilot_get,
        "Display the current Autopilot configuration",
    ),
    cmd(
        "operator autopilot set-config",
        operator::autopilot_set,
        "Modify the current Autopilot configuration",
    ),
    cmd(
        "operator autopilot health",
        operator::autopilot_health,
        "Display the current Autopilot health",
    ),
    cmd(
        "operator scheduler get-config",
        operator::scheduler_get,
        "Display the current scheduler configuration",
    ),
    cmd(
        "operator scheduler set-config",
        operator::scheduler_set,
        "Modify the current scheduler configuration",
    ),
    cmd(
        "operator gossip keyring list",
        operator::keyring_list,
        "List gossip encryption keys",
    ),
    cmd(
        "operator gossip keyring install",
        operator::keyring_install,
        "Install a gossip encryption key",
    ),
    cmd(
        "operator gossip keyring use",
        operator::keyring_use,
        "Change the gossip encryption key",
    ),
    cmd(
        "operator gossip keyring remove",
        operator::keyring_remove,
        "Remove a gossip encryption key",
    ),
    cmd("operator api", operator::api, "Query the HTTP API"),
    cmd(
        "system gc",
        system::gc,
        "Run the system garbage collection process",
    ),
    cmd(
        "system reconcile summaries",
        system::reconcile_summaries,
        "Reconciles the summaries of all registered jobs",
    ),
];

const fn cmd(
    words: &'static str,
    run: fn(&[String]) -> CommandResult,
    synopsis: &'static str,
) -> Command {
    Command {
        words,
        run,
        synopsis,
    }
}

/// The command `args` name, and the arguments after its words.
pub fn find(args: &[String]) -> Option<(&'static Command, &[String])> {
    COMMANDS
        .iter()
        .filter_map(|command| {
            let words: Vec<&str> = command.words.split(' ').collect();
            let matches =
                args.len() >= words.len() && words.iter().zip(args).all(|(word, arg)| word == arg);
            matches.then_some((command, words.len()))
        })
        .max_by_key(|(_, length)| *length)
        .map(|(command, length)| (command, &args[length..]))
}

/// The commands under `group` (`["job"]`), for `caravan job` and typos.
pub fn group(prefix: &[String]) -> Vec<&'static Command> {
    COMMANDS
        .iter()
        .filter(|command| {
            let words: Vec<&str> = command.words.split(' ').collect();
            words.len() > prefix.len() && words.iter().zip(prefix).all(|(word, arg)| word == arg)
        })
        .collect()
}

/// Runs the command `args` name. `None` when no command (and no group)
/// has these words: the binary's own commands and usage are then tried.
pub fn run(args: &[String]) -> Option<ExitCode> {
    if let Some((command, rest)) = find(args) {
        if rest
            .iter()
            .take_while(|arg| arg.as_str() != "--")
            .any(|arg| matches!(arg.as_str(), "-h" | "-help" | "--help"))
        {
            return Some(help(command));
        }
        return Some(report((command.run)(rest)));
    }
    // A group's words alone (`caravan job`) or a group with an unknown
    // subcommand: the group's commands.
    let depth = (1..=args.len())
        .rev()
        .find(|depth| !group(&args[..*depth]).is_empty())?;
    let commands = group(&args[..depth]);
    let mut text = format!(
        "Usage: caravan {} <subcommand> [options] [args]\n\nSubcommands:\n",
        args[..depth].join(" ")
    );
    let width = commands.iter().map(|c| c.words.len()).max().unwrap_or(0);
    for command in &commands {
        text.push_str(&format!(
            "    {:width$}    {}\n",
            command.words, command.synopsis
        ));
    }
    let is_help = |arg: &String| matches!(arg.as_str(), "-h" | "-help" | "--help");
    if args[depth..].iter().all(is_help) {
        eprint!("{text}");
        return Some(ExitCode::SUCCESS);
    }
    eprintln!("caravan: unknown command {:?}\n\n{text}", args.join(" "));
    Some(ExitCode::from(1))
}

fn help(command: &Command) -> ExitCode {
    // Each command prints its own usage when asked with `-help` as a flag;
    // running it with only `-help` reaches its parser's usage path.
    match (command.run)(&["-help".to_string()]) {
        Err(CommandError::Usage { usage, .. }) => {
            eprintln!("{usage}");
            ExitCode::SUCCESS
        }
        other => report(other),
    }
}

/// Prints a command's failure and turns its result into an exit code.
pub fn report(result: CommandResult) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CommandError::Usage { message, usage }) => {
            if message.is_empty() || message == "flag provided but not defined: -help" {
                eprintln!("{usage}");
            } else {
                eprintln!("{message}\n\n{usage}");
            }
            ExitCode::from(1)
        }
        Err(CommandError::Failed(message)) => {
            eprintln!("{message}");
            ExitCode::from(1)
        }
        Err(CommandError::Exit(code)) => ExitCode::from(code),
    }
}

/// Runs `future` on a runtime of its own (a command makes a few calls).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(error) => {
            eprintln!("Error starting the command's runtime: {error}");
            std::process::exit(1)
        }
    }
}
