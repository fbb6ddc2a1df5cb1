//! `caravan job validate [options] FILE`: the job file parsed here, then
//! checked by the server's `/v1/validate/job` when an agent answers.

use caravan_sdk::WriteOptions;
use serde_json::Value;

use super::jobfile;
use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;

const USAGE: &str = "Usage: caravan job validate [options] <path>
Alias: caravan validate

  Checks that a job specification is valid: the file is parsed here, then
  the agent validates the job (drivers, constraints, resources). When no
  agent can be reached only the parse is checked. \"-\" reads stdin.

Validate Options:

  -json
    Parse the job file as JSON.

  -var 'key=value'
    A value for a variable the job file declares; repeatable.

  -var-file=path
    A file of variable values (HCL); repeatable.
";

pub fn validate(args: &[String]) -> CommandResult {
    let flags =
        jobfile::with_job_file_flags(FlagSet::new("job validate", USAGE)).value("vault-namespace");
    let parsed = flags.parse_with(args, 1, 1, "This command takes one argument: <path>")?;
    let path = parsed.arg(0).unwrap_or("-");
    let mut job = jobfile::load(&parsed, path)?;
    if let Some(namespace) = parsed.get("vault-namespace") {
        job["VaultNamespace"] = Value::String(namespace.to_string());
    }
    let client = parsed.client()?;
    let write = WriteOptions {
        region: job
            .get("Region")
            .and_then(Value::as_str)
            .filter(|region| !region.is_empty())
            .map(str::to_string),
        ..WriteOptions::default()
    };
    let answer = crate::block_on(client.jobs().validate_value(&job, &write));
    let answer = match answer {
        Ok(answer) => answer,
        // No agent: the local parse is all that can be checked.
        Err(caravan_sdk::Error::Transport { .. }) => {
            crate::outln!("Driver configuration not validated since connection to Nomad agent couldn't be established.\n");
            crate::outln!("Job validation successful");
            return Ok(());
        }
        Err(error) => return Err(CommandError::call("validating job", error)),
    };
    let text = |key: &str| {
        answer
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let error = text("Error");
    if !error.is_empty() {
        return Err(CommandError::failed(format!(
            "Job validation errors:\n{}",
            error.trim_end()
        )));
    }
    let warnings = text("Warnings");
    if !warnings.is_empty() {
        crate::outln!("Job Warnings:\n{}\n", warnings.trim_end());
    }
    crate::outln!("Job validation successful");
    Ok(())
}
