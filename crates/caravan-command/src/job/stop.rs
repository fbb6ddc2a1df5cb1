//! `caravan job stop [options] JOB...`: deregisters jobs (asking first
//! when a job was named by a prefix), then monitors each stop evaluation.

use std::io::BufRead;

use caravan_sdk::jobs::DeregisterOptions;
use caravan_sdk::WriteOptions;

use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::monitor::{monitor, MonitorOptions};

const USAGE: &str = "Usage: caravan job stop [options] <job>...
Alias: caravan stop

  Stop existing jobs: their allocations are stopped, and the stop's
  evaluation is monitored unless -detach is given. A job named by a prefix
  of its ID is only stopped after a confirmation (or with -yes).

Stop Options:

  -detach
    Print the evaluation ID and return instead of monitoring.

  -eval-priority
    The priority of the stop's evaluation (1-100).

  -global
    Stop a multi-region job in all its regions.

  -no-shutdown-delay
    Ignore the groups' and tasks' shutdown_delay.

  -purge
    Stop the job and purge it from the system.

  -yes
    Automatic yes to prompts.

  -verbose
    Display full information.
";

/// What an answer to the confirmation means.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Yes,
    /// No (or nothing): cancel, successfully.
    No,
    /// Not an exact `y`: cancel with this message and exit code.
    Unclear(&'static str, u8),
}

fn interpret(answer: &str) -> Answer {
    let answer = answer.trim();
    let lower = answer.to_lowercase();
    if answer.is_empty() || lower.starts_with('n') {
        Answer::No
    } else if answer == "y" {
        Answer::Yes
    } else if lower.starts_with('y') {
        Answer::Unclear("For confirmation, an exact ‘y’ is required.", 0)
    } else {
        Answer::Unclear(
            "No confirmation detected. For confirmation, an exact 'y' is required.",
            1,
        )
    }
}

/// Asks `question` on stdout and reads a line from stdin. No line at all
/// (stdin closed, nothing typed) is an error: the stop is not confirmed.
fn ask(question: &str) -> Result<String, CommandError> {
    use std::io::Write;
    print!("{question} ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let read = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|error| CommandError::failed(format!("Failed to parse answer: {error}")))?;
    if read == 0 {
        println!();
        return Err(CommandError::failed(
            "Failed to parse answer: no answer on stdin; cancelling job stop (use -yes to skip the prompt)",
        ));
    }
    Ok(line)
}

pub fn stop(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("job stop", USAGE)
        .bool("detach")
        .bool("purge")
        .bool("yes")
        .bool("global")
        .bool("no-shutdown-delay")
        .bool("verbose")
        .value("eval-priority");
    let parsed = flags.parse_with(
        args,
        1,
        usize::MAX,
        "This command takes at least one argument: <job>",
    )?;
    let deregister = DeregisterOptions {
        purge: parsed.bool("purge"),
        global: parsed.bool("global"),
        eval_priority: super::eval_priority(parsed.get("eval-priority"))?,
        no_shutdown_delay: parsed.bool("no-shutdown-delay"),
    };
    let client = parsed.client()?;
    let single = parsed.args.len() == 1;
    crate::block_on(async {
        let mut exit_code = 0;
        for ident in &parsed.args {
            let ident = ident.trim();
            let stopped = async {
                let job = super::resolve(&client, ident).await?;
                // Only one job named by a prefix is confirmed: stopping
                // several at once is taken as meant.
                if single && job.id != ident && !parsed.bool("yes") {
                    let question =
                        format!("Are you sure you want to stop job \"{}\"? [y/N]", job.id);
                    match interpret(&ask(&question)?) {
                        Answer::Yes => {}
                        Answer::No => {
                            println!("Cancelling job stop");
                            return Ok(());
                        }
                        Answer::Unclear(message, 0) => {
                            println!("{message}");
                            return Ok(());
                        }
                        Answer::Unclear(message, code) => {
                            println!("{message}");
                            return Err(CommandError::Exit(code));
                        }
                    }
                }
                let write = WriteOptions {
                    namespace: (!job.namespace.is_empty()).then(|| job.namespace.clone()),
                    ..WriteOptions::default()
                };
                let answer = client
                    .jobs()
                    .deregister_with(&job.id, &deregister, &write)
                    .await
                    .map_err(|error| {
                        CommandError::failed(format!(
                            "Error deregistering job with id {ident} err: {error}"
                        ))
                    })?;
                // Periodic and parameterized jobs get no evaluation.
                if answer.eval_id.is_empty() {
                    return Ok(());
                }
                if parsed.bool("detach") {
                    println!("{}", answer.eval_id);
                    return Ok(());
                }
                let options = MonitorOptions {
                    verbose: parsed.bool("verbose"),
                    namespace: job.namespace.clone(),
                };
                monitor(&client, &answer.eval_id, &options).await
            };
            // Every job is tried; each failure is reported as it happens
            // and the first one decides the exit code.
            if let Err(error) = stopped.await {
                let code = match &error {
                    CommandError::Exit(code) => *code,
                    _ => 1,
                };
                crate::report(Err(error));
                if exit_code == 0 {
                    exit_code = code;
                }
            }
        }
        match exit_code {
            0 => Ok(()),
            code => Err(CommandError::Exit(code)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_exact_y_confirms() {
        assert_eq!(interpret("y\n"), Answer::Yes);
        assert_eq!(interpret(""), Answer::No);
        assert_eq!(interpret("No"), Answer::No);
        assert!(matches!(interpret("yes"), Answer::Unclear(_, 0)));
        assert!(matches!(interpret("sure"), Answer::Unclear(_, 1)));
    }
}
