//! Reading a job file as Nomad's `JobGetter` does, for `job run` and
//! `job validate`: HCL2 parsed here (no agent needed), JSON taken as it is,
//! `-` for stdin, `-var` / `-var-file` / `NOMAD_VAR_*` for variables.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::CommandError;
use crate::flags::{FlagSet, Parsed};

/// The flags every command that reads a job file takes.
pub fn with_job_file_flags(flags: FlagSet) -> FlagSet {
    flags
        .bool("json")
        .bool("hcl2-strict")
        .value("var")
        .value("var-file")
}

/// The job in the file `path` names, as the API's job JSON.
pub fn load(parsed: &Parsed, path: &str) -> Result<Value, CommandError> {
    let source = read_source(path)
        .map_err(|error| CommandError::failed(format!("Error getting job struct: {error}")))?;
    let as_json = parsed.bool("json") || path.ends_with(".json");
    let job = match as_json {
        true => from_json(&source),
        false => from_hcl(parsed, path, &source),
    };
    job.map_err(|error| CommandError::failed(format!("Error getting job struct: {error}")))
}

fn read_source(path: &str) -> Result<String, String> {
    crate::prompt::read_input(path).map_err(|error| match path {
        "-" => format!("Failed to read stdin: {error}"),
        _ => format!("Error reading job file {path:?}: {error}"),
    })
}

/// A JSON job file: the job itself, or `{"Job": ...}` as `job inspect` and
/// `job run -output` print it.
fn from_json(source: &str) -> Result<Value, String> {
    let value: Value = serde_json::from_str(source)
        .map_err(|error| format!("Failed to parse JSON job: {error}"))?;
    match value {
        Value::Object(mut object) => match object.remove("Job") {
            Some(job @ Value::Object(_)) => Ok(job),
            Some(_) => Err("Failed to parse JSON job: \"Job\" is not an object".to_string()),
            None => Ok(Value::Object(object)),
        },
        _ => Err("Failed to parse JSON job: not an object".to_string()),
    }
}

fn from_hcl(parsed: &Parsed, path: &str, source: &str) -> Result<Value, String> {
    let vars = var_flags(&parsed.all("var"))?;
    let var_files = parsed.all("var-file");
    // Several -var-file flags: later files override earlier ones, as one
    // file with their assignments in order would.
    let mut var_file: Option<String> = None;
    for file in &var_files {
        let text = std::fs::read_to_string(file)
            .map_err(|error| format!("Error reading var file {file:?}: {error}"))?;
        let combined = var_file.take().unwrap_or_default();
        var_file = Some(format!("{combined}{text}\n"));
    }
    let options = caravan_jobspec::ParseOptions {
        file_name: match path {
            "-" => "<stdin>".to_string(),
            _ => path.to_string(),
        },
        vars,
        env_vars: env_vars(std::env::vars()),
        var_file,
        var_file_name: var_files.first().copied().unwrap_or("").to_string(),
    };
    caravan_jobspec::parse(source, &options).map_err(|error| error.to_string())
}

/// `-var name=value` flags as a map (a later flag wins).
pub fn var_flags(flags: &[&str]) -> Result<HashMap<String, String>, String> {
    flags
        .iter()
        .map(|flag| match flag.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => {
                Ok((name.trim().to_string(), value.to_string()))
            }
            _ => Err(format!("invalid variable {flag:?}: expected name=value")),
        })
        .collect()
}

/// `NOMAD_VAR_<name>` variables, keyed by `<name>`.
pub fn env_vars(vars: impl Iterator<Item = (String, String)>) -> HashMap<String, String> {
    vars.filter_map(|(name, value)| {
        name.strip_prefix("NOMAD_VAR_")
            .filter(|name| !name.is_empty())
            .map(|name| (name.to_string(), value))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_jobs_with_or_without_the_job_wrapper() {
        let bare = from_json(r#"{"ID": "a"}"#).unwrap();
        assert_eq!(bare["ID"], "a");
        let wrapped = from_json(r#"{"Job": {"ID": "b"}}"#).unwrap();
        assert_eq!(wrapped["ID"], "b");
        assert!(from_json("[1]").is_err());
        assert!(from_json("{").is_err());
    }

    #[test]
    fn var_flags_need_an_equals_sign() {
        let vars = var_flags(&["a=1", "b=x=y", "a=2"]).unwrap();
        assert_eq!(vars["a"], "2");
        assert_eq!(vars["b"], "x=y");
        assert!(var_flags(&["novalue"]).is_err());
        assert!(var_flags(&["=1"]).is_err());
    }

    #[test]
    fn env_vars_take_the_nomad_var_prefix() {
        let env = [
            ("NOMAD_VAR_count".to_string(), "3".to_string()),
            ("NOMAD_VAR_".to_string(), "x".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let vars = env_vars(env.into_iter());
        assert_eq!(vars.len(), 1);
        assert_eq!(vars["count"], "3");
    }
}
