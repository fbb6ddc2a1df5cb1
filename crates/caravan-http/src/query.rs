//! The query parameters every read understands (Nomad's `parse()`), with
//! Nomad's error texts.

use std::time::Duration;

use caravan_api_types::duration::parse_go_duration_nanos;
use caravan_config::flags::parse_go_bool;

use crate::error::ApiError;

/// Default blocking wait when `?wait` is missing.
pub const DEFAULT_BLOCKING_WAIT: Duration = Duration::from_secs(300);
/// Longest blocking wait, as Nomad documents it.
pub const MAX_BLOCKING_WAIT: Duration = Duration::from_secs(600);

/// Parsed standard query options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryOptions {
    pub region: Option<String>,
    pub namespace: Option<String>,
    pub stale: bool,
    pub prefix: String,
    pub filter: String,
    pub per_page: i32,
    pub next_token: String,
    pub reverse: bool,
    pub min_index: u64,
    pub wait: Option<Duration>,
    pub pretty: bool,
}

impl QueryOptions {
    /// Parses the options from decoded query pairs.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let mut options = QueryOptions {
            region: get("region").filter(|r| !r.is_empty()).map(str::to_string),
            namespace: get("namespace")
                .filter(|n| !n.is_empty())
                .map(str::to_string),
            prefix: get("prefix").unwrap_or_default().to_string(),
            filter: get("filter").unwrap_or_default().to_string(),
            next_token: get("next_token").unwrap_or_default().to_string(),
            reverse: get("reverse") == Some("true"),
            ..QueryOptions::default()
        };
        if let Some(stale) = get("stale") {
            options.stale = stale.is_empty()
                || parse_go_bool(stale).ok_or_else(|| {
                    ApiError::bad_request(
                        "Expect `true` or `false` for `stale` query string parameter",
                    )
                })?;
        }
        if let Some(per_page) = get("per_page") {
            options.per_page = per_page.parse().map_err(|_| {
                ApiError::bad_request("Expect a number for `per_page` query string parameter")
            })?;
        }
        if let Some(index) = get("index") {
            options.min_index = index
                .parse()
                .map_err(|_| ApiError::bad_request("Invalid index"))?;
        }
        if let Some(wait) = get("wait") {
            let nanos = parse_go_duration_nanos(wait)
                .map_err(|_| ApiError::bad_request("Invalid wait time"))?;
            options.wait = Some(Duration::from_nanos(u64::try_from(nanos).unwrap_or(0)));
        }
        if let Some(pretty) = get("pretty") {
            options.pretty = pretty != "0";
        }
        Ok(options)
    }

    /// How long a blocking query may wait before answering with what it has:
    /// `wait` (5 minutes when absent or zero), capped at 10 minutes.
    pub fn blocking_wait(&self) -> Duration {
        match self.wait {
            Some(wait) if !wait.is_zero() => wait.min(MAX_BLOCKING_WAIT),
            _ => DEFAULT_BLOCKING_WAIT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_nomad_forms() {
        let options = QueryOptions::parse(&pairs(&[
            ("stale", ""),
            ("index", "42"),
            ("wait", "250ms"),
            ("pretty", ""),
            ("per_page", "10"),
        ]))
        .unwrap();
        assert!(options.stale && options.pretty);
        assert_eq!(options.min_index, 42);
        assert_eq!(options.wait, Some(Duration::from_millis(250)));
        assert_eq!(options.per_page, 10);
        // python-nomad sends Python's spelling of booleans.
        assert!(
            !QueryOptions::parse(&pairs(&[("stale", "False")]))
                .unwrap()
                .stale
        );
        assert!(
            !QueryOptions::parse(&pairs(&[("pretty", "0")]))
                .unwrap()
                .pretty
        );
    }

    #[test]
    fn refuses_bad_values_with_nomad_texts() {
        let cases = [
            (
                ("stale", "maybe"),
                "Expect `true` or `false` for `stale` query string parameter",
            ),
            (("index", "abc"), "Invalid index"),
            (("wait", "5"), "Invalid wait time"),
            (("wait", "soon"), "Invalid wait time"),
            (
                ("per_page", "x"),
                "Expect a number for `per_page` query string parameter",
            ),
        ];
        for ((key, value), text) in cases {
            let error = QueryOptions::parse(&pairs(&[(key, value)])).unwrap_err();
            assert_eq!(error.status.as_u16(), 400);
            assert_eq!(error.message, text);
        }
    }

    #[test]
    fn blocking_wait_defaults_and_caps() {
        let mut options = QueryOptions::default();
        assert_eq!(options.blocking_wait(), DEFAULT_BLOCKING_WAIT);
        options.wait = Some(Duration::from_secs(3600));
        assert_eq!(options.blocking_wait(), MAX_BLOCKING_WAIT);
        options.wait = Some(Duration::from_secs(2));
        assert_eq!(options.blocking_wait(), Duration::from_secs(2));
    }
}
