//! `system gc` and `system reconcile summaries`: the `/v1/system`
//! maintenance calls. Both print nothing on success, as Nomad's do.

use caravan_sdk::WriteOptions;

use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::server::client;

const GC_USAGE: &str = "Usage: caravan system gc [options]

  Initializes a garbage collection of jobs, evaluations, allocations, and nodes.

  If ACLs are enabled, this option requires a management token.
";

const RECONCILE_SUMMARIES_USAGE: &str = "Usage: caravan system reconcile summaries [options]

  Reconciles the summaries of all registered jobs.

  If ACLs are enabled, this option requires a management token.
";

/// Nomad's words for a command given arguments it does not take.
const NO_ARGUMENTS: &str = "This command takes no arguments";

pub fn gc(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("system gc", GC_USAGE);
    // Nomad reports extra arguments but then collects anyway and exits 0;
    // here they stop the command (exit 1), as every other command's do,
    // so a mistyped line does not collect.
    let parsed = flags.parse_with(args, 0, 0, NO_ARGUMENTS)?;
    let client = client(&parsed)?;
    crate::block_on(client.system().gc(&WriteOptions::default()))
        .map_err(|error| CommandError::call("running system garbage-collection", error))?;
    Ok(())
}

pub fn reconcile_summaries(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("system reconcile summaries", RECONCILE_SUMMARIES_USAGE);
    let parsed = flags.parse_with(args, 0, 0, NO_ARGUMENTS)?;
    let client = client(&parsed)?;
    crate::block_on(
        client
            .system()
            .reconcile_summaries(&WriteOptions::default()),
    )
    .map_err(|error| CommandError::call("running system summary reconciliation", error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::complete::candidates;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|word| word.to_string()).collect()
    }

    #[test]
    fn arguments_are_a_usage_error() {
        for run in [gc, reconcile_summaries] {
            let Err(CommandError::Usage { message, usage }) = run(&args(&["extra"])) else {
                panic!("extra arguments were accepted");
            };
            assert_eq!(message, NO_ARGUMENTS);
            assert!(usage.starts_with("For additional help try 'caravan system "));
        }
    }

    #[test]
    fn help_is_the_usage_with_the_api_flags() {
        let Err(CommandError::Usage { usage, .. }) = gc(&args(&["-help"])) else {
            panic!("-help did not answer with the usage");
        };
        assert!(usage.starts_with("Usage: caravan system gc [options]"));
        assert!(usage.contains("management token"));
        assert!(usage.contains("-address=<addr>"));
    }

    #[test]
    fn the_group_lists_both_and_completion_finds_them() {
        let words: Vec<&str> = crate::group(&args(&["system"]))
            .iter()
            .map(|command| command.words)
            .collect();
        assert_eq!(words, ["system gc", "system reconcile summaries"]);
        assert!(candidates("caravan ").contains(&"system".to_string()));
        assert_eq!(candidates("caravan system "), ["gc", "reconcile"]);
        assert_eq!(candidates("caravan system reconcile "), ["summaries"]);
        let flags = candidates("caravan system gc -");
        assert!(flags.contains(&"-token".to_string()), "{flags:?}");
    }

    #[test]
    fn the_longest_words_name_the_command() {
        let line = args(&["system", "reconcile", "summaries", "-token", "x"]);
        let (command, rest) = crate::find(&line).expect("found");
        assert_eq!(command.words, "system reconcile summaries");
        assert_eq!(rest, &args(&["-token", "x"])[..]);
    }
}
