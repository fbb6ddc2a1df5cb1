//! `caravan eval delete [options] [EVAL_ID]`: removes terminal evaluations
//! (by ID, or all that `-filter` matches) and their terminal allocations,
//! as `nomad eval delete`. The server refuses any that is still in use.

use caravan_sdk::WriteOptions;

use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;

const USAGE: &str = "Usage: caravan eval delete [options] <evaluation>

  Delete evaluations that are done (complete, failed or canceled) and
  whose allocations are terminal: by ID, or every evaluation a filter
  matches. Deleting by filter asks first unless -yes.

Eval Delete Options:

  -filter
    A filter expression (as ?filter= takes) choosing the evaluations.

  -yes
    Do not ask before deleting by filter.
";

pub fn delete(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("eval delete", USAGE)
        .value("filter")
        .bool("yes");
    let parsed = flags.parse_with(args, 0, 1, "This command takes one argument: <eval-id>")?;
    let filter = parsed.get("filter").filter(|filter| !filter.is_empty());
    let ids: Vec<String> = parsed.args.clone();
    match (ids.is_empty(), filter.is_none()) {
        (true, true) => {
            return Err(flags.usage_error("Either an evaluation ID or -filter is required"))
        }
        (false, false) => {
            return Err(flags.usage_error("An evaluation ID and -filter cannot be used together"))
        }
        _ => {}
    }
    if let (Some(filter), false) = (filter, parsed.bool("yes")) {
        let question = format!("Delete every evaluation matching {filter:?}? [y/N]");
        if !crate::prompt::confirm(&question)? {
            crate::outln!("Cancelling eval deletion");
            return Ok(());
        }
    }
    let client = parsed.client()?;
    let answer = crate::block_on(client.evaluations().delete(
        &ids,
        filter,
        &WriteOptions::default(),
    ))
    .map_err(|error| CommandError::call("deleting evaluations", error))?;
    let count = answer["Count"].as_u64().unwrap_or(0);
    match count {
        0 => crate::outln!("No evaluations were deleted"),
        1 => crate::outln!("Successfully deleted 1 evaluation"),
        count => crate::outln!("Successfully deleted {count} evaluations"),
    }
    Ok(())
}
