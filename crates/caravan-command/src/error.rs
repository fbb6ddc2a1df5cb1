//! How a command fails: a usage error (the usage is printed) or a failure
//! (its message is). Both exit 1, as Nomad's commands do.

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The command line was wrong: the message, then the command's usage.
    #[error("{message}")]
    Usage { message: String, usage: String },
    /// The command ran and failed (an API error, a missing object, ...).
    #[error("{0}")]
    Failed(String),
    /// The command ran and has nothing more to say, but its exit code is
    /// not 0 (`job plan` with changes, an ambiguous prefix already listed).
    #[error("exit {0}")]
    Exit(u8),
}

impl CommandError {
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    /// "Error <doing>: <the SDK's error>", Nomad's way of reporting a call.
    pub fn call(doing: &str, error: caravan_sdk::Error) -> Self {
        Self::Failed(format!("Error {doing}: {error}"))
    }
}

pub type CommandResult = Result<(), CommandError>;

/// An answer kept as the API's JSON (for `-json` and `-t`, which print it
/// as the server wrote it) read as the type a command formats; a failure
/// is worded as the call's own ("Error <doing>: ...").
pub(crate) fn typed<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    doing: &str,
) -> Result<T, CommandError> {
    serde_json::from_value(value)
        .map_err(|error| CommandError::call(doing, caravan_sdk::Error::Decode(error)))
}
