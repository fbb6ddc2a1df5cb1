//! `-json` and `-t`: a command's data as the API's JSON, or through a
//! Go-template-like format (see [`crate::template`]).

use serde::Serialize;

use crate::error::CommandError;
use crate::flags::Parsed;

/// Prints `data` as `-json` or `-t` ask, and says whether it did (the
/// command then prints nothing else). Both at once is Nomad's error.
pub fn json_or_template<T: Serialize>(parsed: &Parsed, data: &T) -> Result<bool, CommandError> {
    let json = parsed.bool("json");
    let template = parsed.get("t");
    let value = || {
        serde_json::to_value(data)
            .map_err(|error| CommandError::failed(format!("Error formatting the output: {error}")))
    };
    match (json, template) {
        (true, Some(_)) => Err(CommandError::failed(
            "Both json and template formatting are not allowed",
        )),
        (true, None) => {
            // Nomad indents -json output with four spaces.
            let text = pretty_json(&value()?)?;
            crate::outln!("{text}");
            Ok(true)
        }
        (false, Some(template)) => {
            let text = crate::template::render(template, &value()?).map_err(|error| {
                CommandError::failed(format!("Error formatting the data: {error}"))
            })?;
            crate::outln!("{text}");
            Ok(true)
        }
        (false, None) => Ok(false),
    }
}

/// JSON indented four spaces, as Nomad's CLI prints it (`-json`, `job
/// inspect`, `job run -output`).
pub fn pretty_json<T: Serialize>(value: &T) -> Result<String, CommandError> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    value
        .serialize(&mut serializer)
        .map_err(|error| CommandError::failed(format!("Error formatting the output: {error}")))?;
    String::from_utf8(out)
        .map_err(|error| CommandError::failed(format!("Error formatting the output: {error}")))
}
