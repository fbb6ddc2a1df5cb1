//! `caravan job stop [options] JOB...`: deregisters jobs (asking first
//! when a job was named by a prefix), then monitors each stop evaluation.

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
                    if !crate::prompt::confirm(&question)? {
                        crate::outln!("Cancelling job stop");
                        return Ok(());
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
                    crate::outln!("{}", answer.eval_id);
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
