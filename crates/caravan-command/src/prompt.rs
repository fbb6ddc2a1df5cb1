//! What a command takes from its user besides flags, one way for every
//! command: a yes/no answer ([`confirm`]), a file or stdin ([`read_input`]),
//! and the command line to run again for a list's next page
//! ([`per_page`], [`next_page_hint`]).

use std::ffi::OsString;
use std::io::{BufRead, Read};

use crate::error::CommandError;
use crate::flags::{FlagSet, Parsed};

/// The most [`read_input`] reads: a job file, a policy or a secret is far
/// smaller; more is refused rather than held in memory.
pub(crate) const INPUT_LIMIT: u64 = 16 * 1024 * 1024;

/// Asks `question` on stdout and reads one answer from stdin, with
/// Nomad's rules (`job stop`, `node drain`): exactly `y` confirms; nothing
/// or an answer starting with `n` refuses (`Ok(false)`: the caller says it
/// cancelled, exit 0); another word starting with `y` is not enough (the
/// message, exit 0); anything else fails (exit 1). No answer at all (stdin
/// closed) fails: "Failed to parse answer: EOF".
pub(crate) fn confirm(question: &str) -> Result<bool, CommandError> {
    confirm_from(question, &mut std::io::stdin().lock())
}

fn confirm_from(question: &str, input: &mut impl BufRead) -> Result<bool, CommandError> {
    crate::out!("{question} ");
    let mut line = String::new();
    match input.read_line(&mut line) {
        Ok(0) => {
            crate::outln!();
            return Err(CommandError::failed("Failed to parse answer: EOF"));
        }
        Ok(_) => {}
        Err(error) => {
            return Err(CommandError::failed(format!(
                "Failed to parse answer: {error}"
            )))
        }
    }
    match answer(&line) {
        Answer::Yes => Ok(true),
        Answer::No => Ok(false),
        Answer::NotExact => {
            crate::outln!("For confirmation, an exact 'y' is required.");
            Err(CommandError::Exit(0))
        }
        Answer::Unclear => Err(CommandError::failed(
            "No confirmation detected. For confirmation, an exact 'y' is required.",
        )),
    }
}

/// What an answer to a y/N question means.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Yes,
    No,
    /// `yes`, `Y`: a yes, but not the exact `y` asked for.
    NotExact,
    Unclear,
}

fn answer(line: &str) -> Answer {
    let line = line.trim();
    match line.chars().next().map(|c| c.to_ascii_lowercase()) {
        _ if line == "y" => Answer::Yes,
        None | Some('n') => Answer::No,
        Some('y') => Answer::NotExact,
        Some(_) => Answer::Unclear,
    }
}

/// The file `path` names, or stdin for `-`, as text; at most
/// [`INPUT_LIMIT`] bytes (more, or bytes that are not UTF-8, fail with
/// [`std::io::ErrorKind::InvalidData`]). Callers word the failure.
pub(crate) fn read_input(path: &str) -> std::io::Result<String> {
    match path {
        "-" => read_limited(std::io::stdin().lock(), INPUT_LIMIT),
        _ => read_limited(std::fs::File::open(path)?, INPUT_LIMIT),
    }
}

fn read_limited(input: impl Read, limit: u64) -> std::io::Result<String> {
    let mut bytes = Vec::new();
    input
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} MiB", limit / (1024 * 1024)),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// `-per-page`: a page size, none when unset or 0.
pub(crate) fn per_page(parsed: &Parsed, flags: &FlagSet) -> Result<Option<u32>, CommandError> {
    let Some(text) = parsed.get("per-page") else {
        return Ok(None);
    };
    let size = text.parse::<u32>().map_err(|_| {
        flags.usage_error(format!(
            "invalid value {text:?} for flag -per-page: parse error"
        ))
    })?;
    Ok(Some(size).filter(|size| *size > 0))
}

/// The lines printed under a paginated list: the command to run for the
/// next page, which is the command line as typed, its `-page-token`
/// replaced by `token` and the value of any `-token` hidden.
pub(crate) fn next_page_hint(token: &str) -> String {
    format!(
        "\nResults have been paginated. To get the next page run:\n\n{} -page-token {token}",
        next_page_command(std::env::args_os())
    )
}

fn next_page_command(args: impl IntoIterator<Item = OsString>) -> String {
    let mut out = Vec::new();
    let mut args = args
        .into_iter()
        .map(|arg| arg.to_string_lossy().into_owned());
    while let Some(arg) = args.next() {
        let name = match arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) {
            Some(flag) if arg != "-" && arg != "--" => flag.split('=').next().unwrap_or(flag),
            _ => {
                out.push(arg);
                continue;
            }
        };
        let inline = arg.contains('=');
        match name {
            "page-token" => {
                if !inline {
                    args.next();
                }
            }
            "token" => match inline {
                true => {
                    let (flag, _) = arg.split_once('=').unwrap_or((&arg, ""));
                    out.push(format!("{flag}=<redacted>"));
                }
                false => {
                    out.push(arg);
                    if args.next().is_some() {
                        out.push("<redacted>".to_string());
                    }
                }
            },
            _ => out.push(arg),
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_follow_nomads_rules() {
        assert_eq!(answer("y\n"), Answer::Yes);
        assert_eq!(answer(" y "), Answer::Yes);
        for no in ["", "\n", "n", "No", "  nope \r\n"] {
            assert_eq!(answer(no), Answer::No, "{no:?}");
        }
        for not_exact in ["Y", "yes", " YES \n", "yep"] {
            assert_eq!(answer(not_exact), Answer::NotExact, "{not_exact:?}");
        }
        assert_eq!(answer("sure"), Answer::Unclear);
    }

    #[test]
    fn confirm_takes_one_answer_and_fails_at_eof() {
        let mut input = std::io::Cursor::new(b"y\n".to_vec());
        assert!(confirm_from("Go?", &mut input).unwrap());
        let mut input = std::io::Cursor::new(b"no\n".to_vec());
        assert!(!confirm_from("Go?", &mut input).unwrap());
        let mut input = std::io::Cursor::new(b"yes\n".to_vec());
        assert!(matches!(
            confirm_from("Go?", &mut input),
            Err(CommandError::Exit(0))
        ));
        let mut input = std::io::Cursor::new(b"what\n".to_vec());
        let unclear = confirm_from("Go?", &mut input).unwrap_err();
        assert!(unclear.to_string().contains("exact 'y' is required"));
        let mut input = std::io::Cursor::new(Vec::new());
        let eof = confirm_from("Go?", &mut input).unwrap_err();
        assert_eq!(eof.to_string(), "Failed to parse answer: EOF");
    }

    #[test]
    fn input_is_bounded() {
        assert_eq!(read_limited(&b"abc"[..], 3).unwrap(), "abc");
        let error = read_limited(&b"abcd"[..], 3).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
        assert!(read_limited(&b"\xff"[..], 3).is_err());
    }

    #[test]
    fn the_next_page_command_hides_the_token() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            next_page_command(args(&[
                "caravan",
                "eval",
                "list",
                "-token",
                "s3cret",
                "-page-token",
                "old",
                "-per-page=2"
            ])),
            "caravan eval list -token <redacted> -per-page=2"
        );
        assert_eq!(
            next_page_command(args(&[
                "caravan",
                "--token=s3cret",
                "--page-token=old",
                "-status",
                "x"
            ])),
            "caravan --token=<redacted> -status x"
        );
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            let odd = vec![
                OsString::from("caravan"),
                OsString::from_vec(b"-filter=\xff".to_vec()),
            ];
            assert_eq!(next_page_command(odd), "caravan -filter=\u{fffd}");
        }
    }
}
