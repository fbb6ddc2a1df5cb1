//! Command-line flags parsed the way Go's `flag` package parses them, since
//! Nomad users (and python-nomad's CI) write `-dev`, `--acl-enabled`,
//! `-node=name` and `-node name` interchangeably.

use crate::error::ConfigError;

/// Whether a flag takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    Bool,
    Value,
}

/// A parsed flag occurrence, in command-line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagValue {
    pub name: String,
    pub value: String,
}

/// Parses `args` against `known` flags. Stops at `--` or at the first
/// argument that is not a flag; remaining arguments are returned.
pub fn parse_go_flags(
    args: &[String],
    known: &[(&str, FlagKind)],
) -> Result<(Vec<FlagValue>, Vec<String>), ConfigError> {
    let mut flags = Vec::new();
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        if arg == "--" {
            index += 1;
            break;
        }
        let Some(body) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|body| !body.is_empty() && !body.starts_with('-'))
        else {
            break;
        };
        let (name, inline_value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (body, None),
        };
        let kind = known
            .iter()
            .find(|(known_name, _)| *known_name == name)
            .map(|(_, kind)| *kind)
            .ok_or_else(|| ConfigError::Flag(format!("flag provided but not defined: -{name}")))?;
        let value = match (kind, inline_value) {
            (_, Some(value)) => value,
            (FlagKind::Bool, None) => "true".to_string(),
            (FlagKind::Value, None) => {
                index += 1;
                args.get(index)
                    .cloned()
                    .ok_or_else(|| ConfigError::Flag(format!("flag needs an argument: -{name}")))?
            }
        };
        if kind == FlagKind::Bool {
            parse_go_bool(&value).ok_or_else(|| {
                ConfigError::Flag(format!(
                    "invalid boolean value \"{value}\" for -{name}: parse error"
                ))
            })?;
        }
        flags.push(FlagValue {
            name: name.to_string(),
            value,
        });
        index += 1;
    }
    Ok((flags, args[index..].to_vec()))
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[(&str, FlagKind)] = &[
        ("dev", FlagKind::Bool),
        ("acl-enabled", FlagKind::Bool),
        ("node", FlagKind::Value),
        ("config", FlagKind::Value),
    ];

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| arg.to_string()).collect()
    }

    #[test]
    fn accepts_every_go_spelling() {
        let (flags, rest) = parse_go_flags(
            &args(&[
                "-dev",
                "-node",
                "pynomad1",
                "--acl-enabled",
                "--config=a.hcl",
                "-config",
                "b.hcl",
            ]),
            KNOWN,
        )
        .unwrap();
        let pairs: Vec<_> = flags
            .iter()
            .map(|flag| (flag.name.as_str(), flag.value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("dev", "true"),
                ("node", "pynomad1"),
                ("acl-enabled", "true"),
                ("config", "a.hcl"),
                ("config", "b.hcl")
            ]
        );
        assert!(rest.is_empty());
    }

    #[test]
    fn bool_flags_take_inline_values_only() {
        let (flags, rest) = parse_go_flags(&args(&["-dev=false", "extra"]), KNOWN).unwrap();
        assert_eq!(flags[0].value, "false");
        assert_eq!(rest, ["extra"]);
        assert!(parse_go_flags(&args(&["-dev=maybe"]), KNOWN).is_err());
    }

    #[test]
    fn unknown_and_incomplete_flags_are_errors() {
        let error = parse_go_flags(&args(&["-bogus"]), KNOWN).unwrap_err();
        assert_eq!(error.to_string(), "flag provided but not defined: -bogus");
        let error = parse_go_flags(&args(&["-node"]), KNOWN).unwrap_err();
        assert_eq!(error.to_string(), "flag needs an argument: -node");
    }
}
