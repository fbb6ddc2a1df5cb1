//! HCL2 jobspecs to the JSON Nomad's `api.Job` encodes to: what
//! `nomad job run -output` prints and `POST /v1/jobs/parse` answers (before
//! Canonicalize). Keys are the api's Go field names (`TaskGroups`,
//! `MemoryMB`, `LTarget`), durations integer nanoseconds, and a field the
//! jobspec does not set is absent.
//!
//! The output is a `serde_json::Value` rather than a typed job so the HTTP
//! layer decodes it with the same case-insensitive body decoder a JSON job
//! goes through: one path for both, and this crate needs none of the typed
//! structs.
//!
//! The steps: parse with hcl-edit (positions for every error), resolve
//! `variable`/`locals` (`variables`), then decode the `job` block against the
//! `schema` tables (`decode`), evaluating each expression (`eval`, `funcs`)
//! with client-side references (`${attr.kernel.name}`, `${NOMAD_PORT_http}`)
//! left as text, and apply jobspec2's normalizations (`normalize`).

mod decode;
mod dynamic;
mod error;
mod eval;
mod funcs;
mod normalize;
mod schema;
mod source;
mod variables;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_blocks;
#[cfg(test)]
mod tests_eval;

use std::collections::HashMap;

use hcl::edit::structure::Structure;

pub use error::{ErrorKind, Location, ParseError};
use source::Source;

/// What a parse is given besides the jobspec.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// The name errors in the jobspec are reported against.
    pub file_name: String,
    /// `-var name=value` assignments (values as typed on the command line).
    pub vars: HashMap<String, String>,
    /// `NOMAD_VAR_<name>` environment values, keyed by `<name>`: the lowest
    /// precedence, and ignored for variables the jobspec does not declare.
    pub env_vars: HashMap<String, String>,
    /// The contents of a var file (`name = value` lines), if any.
    pub var_file: Option<String>,
    /// The name errors in `var_file` are reported against.
    pub var_file_name: String,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            file_name: "input.hcl".to_string(),
            vars: HashMap::new(),
            env_vars: HashMap::new(),
            var_file: None,
            var_file_name: "variables.hcl".to_string(),
        }
    }
}

/// Parses an HCL2 jobspec into api-package Job JSON.
pub fn parse(source: &str, options: &ParseOptions) -> Result<serde_json::Value, ParseError> {
    let src = Source {
        file: &options.file_name,
        text: source,
    };
    let body = src.parse_body()?;
    let var_file = options.var_file.as_deref().map(|text| Source {
        file: &options.var_file_name,
        text,
    });
    let inputs = variables::Inputs {
        env: &options.env_vars,
        var_file,
        args: &options.vars,
    };
    let resolved = variables::resolve(&body, src, inputs)?;
    let ev = eval::Evaluator::new(src, resolved.vars, resolved.locals);

    let mut jobs = body.iter().filter_map(|s| match s {
        Structure::Block(block) if block.ident.as_str() == "job" => Some(block),
        _ => None,
    });
    let block = jobs
        .next()
        .ok_or_else(|| ParseError::new(ErrorKind::MissingJob))?;
    if let Some(second) = jobs.next() {
        return Err(src.error_at(
            ErrorKind::DuplicateBlock { name: "job".into() },
            &second.ident,
        ));
    }
    let label = variables::single_label(src, block)?;
    let mut job = decode::decode_body(&ev, &schema::JOB, &block.body, None, block)?;
    normalize::job(&mut job, &label);
    Ok(serde_json::Value::Object(job))
}

/// The jobspec `caravan job init` writes: a service job whose one task runs
/// `/bin/sleep` with the `raw_exec` driver, so it runs on any Linux client
/// without images or downloads.
pub fn example_job() -> &'static str {
    include_str!("example.nomad.hcl")
}
