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
            let text = serde_json::to_string_pretty(&value()?).map_err(|error| {
                CommandError::failed(format!("Error formatting the output: {error}"))
            })?;
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
