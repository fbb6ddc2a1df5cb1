//! What a call can fail with.

/// Why a call failed. An answer from the server keeps its status and text,
/// as Nomad's `api` package's `UnexpectedResponseError` does.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a non-2xx status.
    #[error("Unexpected response code: {status} ({text})")]
    Api { status: u16, text: String },
    /// The server could not be reached, or the connection failed. The
    /// text names the cause (`Connection refused`, a certificate refused),
    /// not only reqwest's "error sending request".
    #[error("failed to reach {address}: {}", causes(source))]
    Transport {
        address: String,
        #[source]
        source: reqwest::Error,
    },
    /// The answer was not what the API says it is.
    #[error("failed to decode the response: {0}")]
    Decode(#[from] serde_json::Error),
    /// An answer's body was larger than the call reads.
    #[error("the response body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The configuration (an environment variable, an address) is wrong.
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The HTTP status of an answer from the server, if it was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// An error and the errors under it, as one line.
fn causes(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut next = std::error::Error::source(error);
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        // hyper and the OS sometimes repeat the same words a level down.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        next = cause.source();
    }
    text
}
