//! `caravan job init [-short] [FILE]`: writes the example job.

use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;

/// The file `job init` writes unless told another.
const DEFAULT_FILE: &str = "example.nomad.hcl";

const USAGE: &str = "Usage: caravan job init [options] [filename]

  Creates an example job file that can be used as a starting point to
  customize further. When no filename is given, example.nomad.hcl is used.

Init Options:

  -short
    If the short flag is set, a minimal jobspec without comments is emitted.
";

pub fn init(args: &[String]) -> CommandResult {
    let flags = FlagSet::local("job init", USAGE).bool("short");
    let parsed = flags.parse_with(
        args,
        0,
        1,
        "This command takes either no arguments or one: <filename>",
    )?;
    let file = parsed.arg(0).unwrap_or(DEFAULT_FILE);
    match std::fs::symlink_metadata(file) {
        Ok(_) => return Err(CommandError::failed(format!("Job '{file}' already exists"))),
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(CommandError::failed(format!(
                "Failed to stat '{file}': {error}"
            )))
        }
        Err(_) => {}
    }
    let example = caravan_jobspec::example_job();
    let text = match parsed.bool("short") {
        true => without_comments(example),
        false => example.to_string(),
    };
    std::fs::write(file, text)
        .map_err(|error| CommandError::failed(format!("Failed to write '{file}': {error}")))?;
    crate::outln!("Example job file written to {file}");
    Ok(())
}

/// The jobspec without its comments and the blank lines they leave.
fn without_comments(source: &str) -> String {
    let mut out = String::new();
    let mut previous_blank = true;
    for line in source.lines() {
        let code = match line.find(" # ") {
            // A trailing comment after code (`cpu = 100 # MHz`).
            Some(at) if !line.trim_start().starts_with('#') => line[..at].trim_end(),
            _ => line,
        };
        if code.trim_start().starts_with('#') {
            continue;
        }
        let blank = code.trim().is_empty();
        if blank && previous_blank {
            continue;
        }
        previous_blank = blank;
        out.push_str(code);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_example_has_no_comments_and_still_parses() {
        let short = without_comments(caravan_jobspec::example_job());
        assert!(!short.contains('#'), "{short}");
        assert!(!short.starts_with('\n'));
        let options = caravan_jobspec::ParseOptions::default();
        let job = caravan_jobspec::parse(&short, &options).unwrap();
        let full = caravan_jobspec::parse(caravan_jobspec::example_job(), &options).unwrap();
        assert_eq!(job, full);
    }
}
