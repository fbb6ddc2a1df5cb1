//! Laying a file's values over the configuration so far: a key the file
//! sets replaces the value, a key it leaves out keeps it.

use std::net::IpAddr;
use std::time::Duration;

use crate::duration::ConfigDuration;

pub(crate) fn set<T: Clone>(slot: &mut T, value: &Option<T>) {
    if let Some(value) = value {
        *slot = value.clone();
    }
}

pub(crate) fn set_opt<T: Clone>(slot: &mut Option<T>, value: &Option<T>) {
    if value.is_some() {
        *slot = value.clone();
    }
}

pub(crate) fn set_nanos(slot: &mut i64, value: &Option<ConfigDuration>) {
    if let Some(ConfigDuration(nanos)) = value {
        *slot = *nanos;
    }
}

/// A duration key; negative durations are refused, naming `key`.
pub(crate) fn set_duration(
    slot: &mut Duration,
    value: &Option<ConfigDuration>,
    key: &str,
) -> Result<(), (String, String)> {
    if let Some(ConfigDuration(nanos)) = value {
        let nanos = u64::try_from(*nanos)
            .map_err(|_| (key.to_string(), "must not be negative".to_string()))?;
        *slot = Duration::from_nanos(nanos);
    }
    Ok(())
}

pub(crate) fn parse_ip(text: &str) -> Result<IpAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an IP address"))
}
