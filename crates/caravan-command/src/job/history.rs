//! `caravan job history [options] JOB`: the versions the server keeps of a
//! job, newest first, as `nomad job history` lists them.

use serde_json::Value;

use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::output::json_or_template;
use crate::ui;

const USAGE: &str = "Usage: caravan job history [options] <job>

  Display the versions of a job the server keeps, newest first.

History Options:

  -full
    Display the full job definition of each version.

  -version <job version>
    Display only this version.

  -json
    Output the versions in their JSON format.

  -t
    Format and display the versions using a Go template.
";

pub fn history(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("job history", USAGE)
        .bool("full")
        .bool("p")
        .value("version")
        .bool("json")
        .value("t");
    let parsed = flags.parse_with(args, 1, 1, "This command takes one argument: <job>")?;
    let formatted = parsed.bool("json") || parsed.get("t").is_some();
    if formatted && (parsed.bool("p") || parsed.bool("full")) {
        return Err(flags.usage_error("-json and -t are exclusive with -p and -full"));
    }
    if parsed.bool("p") {
        return Err(CommandError::failed(
            "-p (the differences between versions) is not supported yet",
        ));
    }
    let wanted = match parsed.get("version") {
        None => None,
        Some(text) => Some(text.parse::<u64>().map_err(|error| {
            CommandError::failed(format!("Error parsing version value {text:?}: {error}"))
        })?),
    };
    let client = parsed.client()?;
    crate::block_on(async {
        let stub = super::resolve(&client, parsed.args[0].trim()).await?;
        let (mut versions, _) = client
            .jobs()
            .versions(&stub.id, &super::in_namespace(&stub.namespace))
            .await
            .map_err(|error| CommandError::call("retrieving job versions", error))?;
        if let Some(wanted) = wanted {
            versions.retain(|version| version["Version"].as_u64() == Some(wanted));
            if versions.is_empty() {
                return Err(CommandError::failed(format!(
                    "Job {:?} has no version {wanted}",
                    stub.id
                )));
            }
        }
        // One version asked for is one object, as Nomad prints it.
        let printed = match (wanted, versions.as_slice()) {
            (Some(_), [only]) => json_or_template(&parsed, only)?,
            _ => json_or_template(&parsed, &versions)?,
        };
        if printed {
            return Ok(());
        }
        let full = parsed.bool("full");
        let blocks: Result<Vec<String>, CommandError> = versions
            .iter()
            .map(|version| version_block(version, full))
            .collect();
        crate::outln!("{}", blocks?.join("\n\n"));
        Ok(())
    })
}

/// One version: `Version`, `Stable`, `Submit Date`, and with `-full` the
/// whole job.
fn version_block(version: &Value, full: bool) -> Result<String, CommandError> {
    let submit = version["SubmitTime"].as_i64().unwrap_or(0);
    let mut text = ui::kv(&[
        ("Version", ui::cell(&version["Version"])),
        ("Stable", ui::cell(&version["Stable"])),
        ("Submit Date", ui::format_unix_nanos(submit)),
    ]);
    if full {
        text.push('\n');
        text.push_str(&super::pretty_json(version)?);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_version_reads_as_nomad_prints_it() {
        let version = json!({"Version": 2, "Stable": false, "SubmitTime": 0});
        assert_eq!(
            version_block(&version, false).unwrap(),
            "Version     = 2\nStable      = false\nSubmit Date = <none>"
        );
    }
}
