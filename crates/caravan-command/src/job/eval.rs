//! `caravan job eval [options] JOB`: a new evaluation of a job (after a
//! node came back, or to replace failed allocations now), as `nomad job
//! eval`; followed like `job run` unless `-detach`.

use caravan_sdk::WriteOptions;

use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::monitor::{monitor, MonitorOptions};

const USAGE: &str = "Usage: caravan job eval [options] <job>

  Force an evaluation of the job: the scheduler looks at it again.

Eval Options:

  -force-reschedule
    Replace failed allocations now, even if their reschedule delay has
    not passed.

  -detach
    Print the evaluation ID and return instead of monitoring it.

  -verbose
    Display full IDs.
";

pub fn eval(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("job eval", USAGE)
        .bool("force-reschedule")
        .bool("detach")
        .bool("verbose");
    let parsed = flags.parse_with(args, 1, 1, "This command takes one argument: <job>")?;
    let client = parsed.client()?;
    crate::block_on(async {
        let stub = super::resolve(&client, parsed.args[0].trim()).await?;
        let options = WriteOptions {
            namespace: Some(stub.namespace.clone()),
            ..WriteOptions::default()
        };
        let answer = client
            .jobs()
            .evaluate(&stub.id, parsed.bool("force-reschedule"), &options)
            .await
            .map_err(|error| CommandError::call("evaluating job", error))?;
        let eval_id = answer["EvalID"].as_str().unwrap_or_default().to_string();
        if parsed.bool("detach") {
            crate::outln!("Created eval ID: \"{eval_id}\"");
            return Ok(());
        }
        let options = MonitorOptions {
            verbose: parsed.bool("verbose"),
            namespace: stub.namespace.clone(),
        };
        monitor(&client, &eval_id, &options).await
    })
}
