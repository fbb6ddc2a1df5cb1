//! `caravan alloc stop`, `restart` and `signal`: acting on a running
//! allocation.

use caravan_sdk::WriteOptions;

use super::{check_task, resolve, ShortId};
use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;

const STOP_USAGE: &str = "Usage: caravan alloc stop [options] <allocation>

  Stop an allocation. Its job places a replacement; a batch job's
  allocation is rescheduled too.

Alloc Stop Options:

  -detach
    Print the evaluation ID and return instead of monitoring it.

  -verbose
    Show full-length IDs.

  -no-shutdown-delay
    Ignore the group's and tasks' shutdown delay.
";

const RESTART_USAGE: &str = "Usage: caravan alloc restart [options] <allocation> <task>

  Restart an allocation's running tasks in place, or one task.

Alloc Restart Options:

  -all-tasks
    Restart every task, those not running too.

  -task <task-name>
    The task to restart.

  -verbose
    Show full-length IDs.
";

const SIGNAL_USAGE: &str = "Usage: caravan alloc signal [options] <allocation> <task>

  Send a signal to an allocation's tasks, or to one task.

Alloc Signal Options:

  -s <signal>
    The signal to send. Default = SIGKILL

  -task <task-name>
    The task to signal.

  -verbose
    Show full-length IDs.
";

pub fn stop(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("alloc stop", STOP_USAGE)
        .bool("detach")
        .bool("verbose")
        .bool("no-shutdown-delay");
    let parsed = flags.parse_with(args, 1, 1, "This command takes one argument: <alloc-id>")?;
    let verbose = parsed.bool("verbose");
    let client = parsed.client()?;
    crate::block_on(async {
        let alloc = resolve(&client, &parsed.args[0], ShortId::AllocId, verbose).await?;
        // A batch job does not replace a stopped allocation unless asked.
        let batch = alloc
            .job
            .as_deref()
            .is_some_and(|job| job.job_type == "batch");
        let answer = client
            .allocations()
            .stop_with(
                &alloc.id,
                batch,
                parsed.bool("no-shutdown-delay"),
                &WriteOptions::default(),
            )
            .await
            .map_err(|error| CommandError::call("stopping allocation", error))?;
        let eval_id = answer["EvalID"].as_str().unwrap_or_default().to_string();
        if parsed.bool("detach") {
            crate::outln!("{eval_id}");
            return Ok(());
        }
        let options = crate::monitor::MonitorOptions {
            verbose,
            namespace: alloc.namespace.clone(),
        };
        crate::monitor::monitor(&client, &eval_id, &options).await
    })
}

pub fn restart(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("alloc restart", RESTART_USAGE)
        .bool("all-tasks")
        .bool("verbose")
        .value("task");
    let parsed = flags.parse_with(
        args,
        1,
        2,
        "This command takes one or two arguments: <alloc-id> <task-name>",
    )?;
    let task = task_argument(parsed.get("task"), parsed.arg(1));
    let all_tasks = parsed.bool("all-tasks");
    if all_tasks && !task.is_empty() {
        return Err(CommandError::failed(
            "The -all-tasks option is not allowed when restarting a specific task.",
        ));
    }
    let client = parsed.client()?;
    crate::block_on(async {
        let alloc = resolve(
            &client,
            &parsed.args[0],
            ShortId::AllocId,
            parsed.bool("verbose"),
        )
        .await?;
        if !task.is_empty() {
            check_task(&alloc, &task)?;
        }
        client
            .client()
            .restart_with(&alloc.id, &task, all_tasks)
            .await
            .map_err(|error| {
                let target = if task.is_empty() {
                    "allocation"
                } else {
                    "task"
                };
                CommandError::failed(format!("Failed to restart {target}:\n\n{error}"))
            })
    })
}

pub fn signal(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("alloc signal", SIGNAL_USAGE)
        .bool("verbose")
        .value("s")
        .value("task");
    let parsed = flags.parse_with(
        args,
        1,
        2,
        "This command takes up to two arguments: <alloc-id> <task>",
    )?;
    let signal = parsed.get("s").unwrap_or("SIGKILL").to_string();
    let task = task_argument(parsed.get("task"), parsed.arg(1));
    let client = parsed.client()?;
    crate::block_on(async {
        let alloc = resolve(
            &client,
            &parsed.args[0],
            ShortId::AllocId,
            parsed.bool("verbose"),
        )
        .await?;
        if !task.is_empty() {
            check_task(&alloc, &task)?;
        }
        client
            .client()
            .signal(&alloc.id, &task, &signal)
            .await
            .map_err(|error| CommandError::call("signalling allocation", error))
    })
}

/// `-task` wins over the task argument; neither means every task.
fn task_argument(flag: Option<&str>, argument: Option<&str>) -> String {
    flag.filter(|task| !task.is_empty())
        .or(argument)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_task_flag_wins_over_the_argument() {
        assert_eq!(task_argument(Some("a"), Some("b")), "a");
        assert_eq!(task_argument(None, Some("b")), "b");
        assert_eq!(task_argument(Some(""), Some("b")), "b");
        assert_eq!(task_argument(None, None), "");
    }
}
