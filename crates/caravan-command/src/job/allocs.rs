//! `caravan job allocs [options] JOB`: the job's allocations.

use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::output::json_or_template;

const USAGE: &str = "Usage: caravan job allocs [options] <job>

  Display the allocations of a job.

Allocs Options:

  -all
    Also the allocations of an earlier job that had the same ID.

  -json
    Output the allocations in JSON format.

  -t
    Format and display the allocations using a Go template.

  -verbose
    Display full information.
";

pub fn allocs(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("job allocs", USAGE)
        .bool("all")
        .bool("json")
        .value("t")
        .bool("verbose");
    let parsed = flags.parse_with(args, 1, 1, "This command takes one argument: <job>")?;
    let client = parsed.client()?;
    crate::block_on(async {
        let ident = parsed.arg(0).unwrap_or_default().trim();
        let job = super::resolve(&client, ident).await?;
        let query = super::in_namespace(&job.namespace);
        let (allocs, _) = client
            .jobs()
            .allocations_all(&job.id, parsed.bool("all"), &query)
            .await
            .map_err(|error| CommandError::call("retrieving allocations", error))?;
        if json_or_template(&parsed, &allocs)? {
            return Ok(());
        }
        crate::outln!(
            "{}",
            crate::alloc::stub_list(&allocs, parsed.bool("verbose"))
        );
        Ok(())
    })
}
