//! `caravan job inspect [options] JOB`: the job as the server holds it,
//! `{"Job": ...}` as Nomad prints it (a file `job run` takes back).

use caravan_sdk::QueryOptions;
use serde_json::Value;

use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::output::json_or_template;

const USAGE: &str = "Usage: caravan job inspect [options] <job>
Alias: caravan inspect

  Inspect a submitted job: its specification as the server stores it, in
  JSON. With -json or -t and no job, every job of the list.

Inspect Options:

  -version <job version>
    Display the job at the given version.

  -json
    Output the job in its JSON format.

  -t
    Format and display the job using a Go template.
";

pub fn inspect(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("job inspect", USAGE)
        .bool("json")
        .value("t")
        .value("version");
    let parsed = flags.parse_with(args, 0, 1, "This command takes one argument: <job>")?;
    let formatted = parsed.bool("json") || parsed.get("t").is_some();
    if parsed.args.is_empty() && !formatted {
        return Err(flags.usage_error("This command takes one argument: <job>"));
    }
    let version = match parsed.get("version") {
        None => None,
        Some(text) => Some(text.parse::<u64>().map_err(|error| {
            CommandError::failed(format!("Error parsing version value {text:?}: {error}"))
        })?),
    };
    let client = parsed.client()?;
    crate::block_on(async {
        let Some(ident) = parsed.arg(0) else {
            let (jobs, _) = client
                .jobs()
                .list(&QueryOptions::default())
                .await
                .map_err(|error| CommandError::call("querying jobs", error))?;
            json_or_template(&parsed, &jobs)?;
            return Ok(());
        };
        let stub = super::resolve(&client, ident.trim()).await?;
        let query = super::in_namespace(&stub.namespace);
        let inspecting = |error| CommandError::call("inspecting job", error);
        let job = match version {
            None => {
                client
                    .jobs()
                    .info_value(&stub.id, &query)
                    .await
                    .map_err(inspecting)?
                    .0
            }
            Some(version) => {
                let (versions, _) = client
                    .jobs()
                    .versions(&stub.id, &query)
                    .await
                    .map_err(inspecting)?;
                versions
                    .into_iter()
                    .find(|job| job.get("Version").and_then(Value::as_u64) == Some(version))
                    .ok_or_else(|| {
                        CommandError::failed(format!(
                            "Error inspecting job: job {:?} with version {version} couldn't be found",
                            stub.id
                        ))
                    })?
            }
        };
        if json_or_template(&parsed, &job)? {
            return Ok(());
        }
        crate::outln!(
            "{}",
            super::pretty_json(&serde_json::json!({ "Job": job }))?
        );
        Ok(())
    })
}
