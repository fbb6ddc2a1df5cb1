//! Why a configuration could not be loaded.

/// Why the configuration could not be loaded. Every variant names where the
/// problem is: the flag, or the file and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Flag(String),
    #[error("error reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("error parsing {path}: {message}")]
    Parse { path: String, message: String },
    #[error("error in {path}: {key}: {message}")]
    Key {
        path: String,
        key: String,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}
