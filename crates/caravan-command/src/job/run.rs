//! `caravan job run [options] FILE`: parses the job here, registers it,
//! then monitors its evaluation (see [`crate::monitor`]).

use caravan_sdk::jobs::RegisterOptions;
use caravan_sdk::WriteOptions;
use serde_json::Value;

use super::jobfile;
use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::monitor::{monitor, MonitorOptions};

const USAGE: &str = "Usage: caravan job run [options] <path>
Alias: caravan run

  Starts running a new job or updates an existing job using the
  specification at <path> (\"-\" reads it from stdin). The job is parsed
  locally; the evaluation it creates is then monitored until its
  allocations are placed and have started.

  Exit code 0: the job was placed; 2: some allocations could not be placed
  (constraints, exhausted resources); 1: any other error.

Run Options:

  -check-index
    Register only if the job's modify index on the server is this one;
    0 registers only a job that does not exist yet.

  -detach
    Print the evaluation ID and return instead of monitoring.

  -json
    Parse the job file as JSON (also when the file name ends in .json). An
    outer \"Job\" object, as `job inspect` prints, is unwrapped.

  -output
    Print the JSON that would be submitted, without submitting it.

  -policy-override
    Override soft-mandatory policies.

  -preserve-counts
    Keep the existing task group counts when updating a job.

  -preserve-resources
    Keep the existing task resources when updating a job.

  -eval-priority
    The priority of the evaluation the registration creates (1-100);
    the job's priority by default.

  -var 'key=value'
    A value for a variable the job file declares; repeatable.

  -var-file=path
    A file of variable values (HCL); repeatable.

  -verbose
    Display full IDs.
";

pub fn run(args: &[String]) -> CommandResult {
    let flags = jobfile::with_job_file_flags(FlagSet::new("job run", USAGE))
        .bool("detach")
        .bool("output")
        .bool("verbose")
        .bool("policy-override")
        .bool("preserve-counts")
        .bool("preserve-resources")
        .value("check-index")
        .value("eval-priority")
        .value("consul-namespace")
        .value("vault-namespace");
    let parsed = flags.parse_with(args, 1, 1, "This command takes one argument: <path>")?;
    let path = parsed.arg(0).unwrap_or("-");
    let mut job = jobfile::load(&parsed, path)?;
    if let Some(namespace) = parsed.get("vault-namespace") {
        job["VaultNamespace"] = Value::String(namespace.to_string());
    }
    if let Some(namespace) = parsed.get("consul-namespace") {
        job["ConsulNamespace"] = Value::String(namespace.to_string());
    }
    if parsed.bool("output") {
        crate::outln!(
            "{}",
            super::pretty_json(&serde_json::json!({ "Job": job }))?
        );
        return Ok(());
    }
    let enforce_index = match parsed.get("check-index") {
        None => None,
        Some(text) => Some(text.parse::<u64>().map_err(|error| {
            CommandError::failed(format!("Error parsing check-index value {text:?}: {error}"))
        })?),
    };
    let register = RegisterOptions {
        enforce_index,
        policy_override: parsed.bool("policy-override"),
        preserve_counts: parsed.bool("preserve-counts"),
        preserve_resources: parsed.bool("preserve-resources"),
        eval_priority: super::eval_priority(parsed.get("eval-priority"))?,
    };
    let client = parsed.client()?;
    // A job that names its region or namespace is sent there, as Nomad's
    // CLI does.
    let write = WriteOptions {
        region: string_field(&job, "Region"),
        namespace: string_field(&job, "Namespace"),
        ..WriteOptions::default()
    };
    let namespace = write
        .namespace
        .clone()
        .or_else(|| client.config().namespace.clone())
        .unwrap_or_default();
    crate::block_on(async {
        let answer = client
            .jobs()
            .register_value(&job, &register, &write)
            .await
            .map_err(submit_error)?;
        if !answer.warnings.is_empty() {
            crate::outln!("Job Warnings:\n{}\n", answer.warnings);
        }
        let periodic = job.get("Periodic").is_some_and(|value| !value.is_null());
        let parameterized = job
            .get("ParameterizedJob")
            .is_some_and(|value| !value.is_null());
        if parsed.bool("detach") || periodic || parameterized || answer.eval_id.is_empty() {
            crate::outln!("Job registration successful");
            if !parameterized && !answer.eval_id.is_empty() {
                crate::outln!("Evaluation ID: {}", answer.eval_id);
            }
            return Ok(());
        }
        let options = MonitorOptions {
            verbose: parsed.bool("verbose"),
            namespace,
        };
        monitor(&client, &answer.eval_id, &options).await
    })
}

/// A string field of the job JSON, when set and not empty.
fn string_field(job: &Value, name: &str) -> Option<String> {
    job.get(name)
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
        .map(str::to_string)
}

/// A failed register; a `-check-index` mismatch as Nomad words it.
fn submit_error(error: caravan_sdk::Error) -> CommandError {
    let text = error.to_string();
    match enforce_index_text(&text) {
        Some(reason) => CommandError::failed(format!("{reason}\nJob not updated")),
        None => CommandError::failed(format!("Error submitting job: {text}")),
    }
}

/// The server's `Enforcing job modify index ...` reason inside an error.
fn enforce_index_text(error: &str) -> Option<&str> {
    let start = error.find("Enforcing job modify index")?;
    let reason = &error[start..];
    Some(reason.strip_suffix(')').unwrap_or(reason).trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enforce_index_reason_is_cut_out() {
        let error = "Unexpected response code: 500 (Enforcing job modify index 7: job exists with conflicting job modify index: 12)";
        assert_eq!(
            enforce_index_text(error),
            Some("Enforcing job modify index 7: job exists with conflicting job modify index: 12")
        );
        assert_eq!(
            enforce_index_text("Unexpected response code: 500 (boom)"),
            None
        );
    }

    #[test]
    fn string_fields_skip_empty_values() {
        let job = serde_json::json!({"Region": "", "Namespace": "prod", "ID": 3});
        assert_eq!(string_field(&job, "Region"), None);
        assert_eq!(string_field(&job, "Namespace").as_deref(), Some("prod"));
        assert_eq!(string_field(&job, "ID"), None);
    }
}
