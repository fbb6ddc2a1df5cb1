//! Signal names as jobspecs and the API write them (`kill_signal`,
//! `nomad alloc signal -s`): with or without the `SIG` prefix, in any case.

use nix::sys::signal::Signal;

use crate::DriverError;

/// The signal an empty name means (Nomad's default `kill_signal`).
pub const DEFAULT_SIGNAL: Signal = Signal::SIGTERM;

/// Parses `SIGTERM`, `term`, `SigHup`, ...; the empty name is SIGTERM.
/// Unknown names are `DriverError::InvalidSignal`.
pub fn parse_signal(name: &str) -> Result<Signal, DriverError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Ok(DEFAULT_SIGNAL);
    }
    let upper = trimmed.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    // Old names some programs still document; the kernel gives them the
    // numbers of the newer ones.
    let canonical = match bare {
        "IOT" => "ABRT",
        "POLL" => "IO",
        "CLD" => "CHLD",
        other => other,
    };
    let wanted = format!("SIG{canonical}");
    Signal::iterator()
        .find(|signal| signal.as_str() == wanted)
        .ok_or_else(|| DriverError::InvalidSignal(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_or_without_prefix_in_any_case() {
        for (name, expected) in [
            ("SIGTERM", Signal::SIGTERM),
            ("sigterm", Signal::SIGTERM),
            ("TERM", Signal::SIGTERM),
            ("SIGINT", Signal::SIGINT),
            ("hup", Signal::SIGHUP),
            ("SigUsr1", Signal::SIGUSR1),
            ("USR2", Signal::SIGUSR2),
            ("SIGKILL", Signal::SIGKILL),
            ("SIGQUIT", Signal::SIGQUIT),
            ("SIGWINCH", Signal::SIGWINCH),
            ("SIGIOT", Signal::SIGABRT),
        ] {
            assert_eq!(parse_signal(name).unwrap(), expected, "{name}");
        }
    }

    #[test]
    fn empty_name_is_sigterm() {
        assert_eq!(parse_signal("").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("  ").unwrap(), Signal::SIGTERM);
    }

    #[test]
    fn unknown_names_are_invalid_signals() {
        for name in ["SIGFOO", "15", "SIG", "TERMINATE"] {
            let error = parse_signal(name).unwrap_err();
            assert!(matches!(error, DriverError::InvalidSignal(_)), "{name}");
            assert!(error.to_string().contains("invalid signal"), "{error}");
        }
    }
}
