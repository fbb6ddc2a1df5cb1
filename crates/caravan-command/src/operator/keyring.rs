//! `operator gossip keyring list|install|use|remove`: the servers' gossip
//! encryption keys, as Nomad 1.4+ names and prints them. (`generate` lives
//! in the binary, which has the key generator.)

use caravan_sdk::Client;

use crate::error::{CommandError, CommandResult};
use crate::flags::{FlagSet, Parsed};
use crate::ui;

const LIST_USAGE: &str = "Usage: caravan operator gossip keyring list [options]

  List all gossip keys currently in use within the cluster.

  This command can only be run against server nodes. It returns 0 if all nodes
  reply and there are no errors. If any node fails to reply or reports failure,
  the exit code will be 1.

  If ACLs are enabled, this command requires a token with the 'agent:write'
  capability.
";

const INSTALL_USAGE: &str = "Usage: caravan operator gossip keyring install [options] <key>

  Install a new encryption key used for gossip. The key is installed on the
  server the command talks to; give each server the same key.

  This command can only be run against server nodes. It returns 0 if all nodes
  reply and there are no errors. If any node fails to reply or reports failure,
  the exit code will be 1.

  If ACLs are enabled, this command requires a token with the 'agent:write'
  capability.
";

const USE_USAGE: &str = "Usage: caravan operator gossip keyring use [options] <key>

  Change the encryption key used for gossip. The key must already be installed
  before this operation can succeed.

  This command can only be run against server nodes. It returns 0 if all nodes
  reply and there are no errors. If any node fails to reply or reports failure,
  the exit code will be 1.

  If ACLs are enabled, this command requires a token with the 'agent:write'
  capability.
";

const REMOVE_USAGE: &str = "Usage: caravan operator gossip keyring remove [options] <key>

  Remove the given key from the cluster. This operation may only be performed
  on keys which are not currently the primary key.

  This command can only be run against server nodes. It returns 0 if all nodes
  reply and there are no errors. If any node fails to reply or reports failure,
  the exit code will be 1.

  If ACLs are enabled, this command requires a token with the 'agent:write'
  capability.
";

/// The client, with Nomad's words for a bad configuration.
fn client(parsed: &Parsed) -> Result<Client, CommandError> {
    parsed.client().map_err(|error| {
        CommandError::failed(format!("Error creating caravan cli client: {error}"))
    })
}

/// A call's failure, as Nomad's keyring commands report it.
fn call_failed(error: caravan_sdk::Error) -> CommandError {
    CommandError::failed(format!("error: {error}"))
}

pub fn keyring_list(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("operator gossip keyring list", LIST_USAGE);
    let parsed = flags.parse_with(args, 0, 0, "This command takes no arguments")?;
    let client = client(&parsed)?;
    crate::outln!("Gathering installed encryption keys...");
    let answer = crate::block_on(client.agent().keyring_list()).map_err(call_failed)?;
    crate::outln!("{}", key_table(answer.keys.into_keys()));
    Ok(())
}

/// Nomad's list: a `Key` header over the keys, one a line.
fn key_table(keys: impl Iterator<Item = String>) -> String {
    let mut rows = vec![vec!["Key".to_string()]];
    rows.extend(keys.map(|key| vec![key]));
    ui::columns(&rows)
}

pub fn keyring_install(args: &[String]) -> CommandResult {
    change(
        args,
        "operator gossip keyring install",
        INSTALL_USAGE,
        "Installing new gossip encryption key...",
        Change::Install,
    )
}

pub fn keyring_use(args: &[String]) -> CommandResult {
    change(
        args,
        "operator gossip keyring use",
        USE_USAGE,
        "Changing primary gossip encryption key...",
        Change::Use,
    )
}

pub fn keyring_remove(args: &[String]) -> CommandResult {
    change(
        args,
        "operator gossip keyring remove",
        REMOVE_USAGE,
        "Removing gossip encryption key...",
        Change::Remove,
    )
}

#[derive(Clone, Copy)]
enum Change {
    Install,
    Use,
    Remove,
}

/// install, use and remove: one key argument, a line saying what is done,
/// and nothing more unless it fails.
fn change(
    args: &[String],
    name: &'static str,
    usage: &str,
    doing: &str,
    change: Change,
) -> CommandResult {
    let flags = FlagSet::new(name, usage);
    let parsed = flags.parse_with(args, 1, 1, "This command requires one argument: <key>")?;
    let key = parsed.arg(0).unwrap_or_default();
    let client = client(&parsed)?;
    crate::outln!("{doing}");
    let agent = client.agent();
    crate::block_on(async {
        match change {
            Change::Install => agent.keyring_install(key).await,
            Change::Use => agent.keyring_use(key).await,
            Change::Remove => agent.keyring_remove(key).await,
        }
    })
    .map_err(call_failed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_listed_under_a_key_header() {
        let keys = ["a=".to_string(), "bb=".to_string()];
        assert_eq!(key_table(keys.into_iter()), "Key\na=\nbb=");
        assert_eq!(key_table(std::iter::empty()), "Key");
    }

    #[test]
    fn a_key_argument_is_required() {
        let error = keyring_install(&[]).unwrap_err();
        assert!(
            matches!(&error, CommandError::Usage { message, .. }
                if message == "This command requires one argument: <key>"),
            "{error:?}"
        );
        let error = keyring_list(&["extra".to_string()]).unwrap_err();
        assert!(
            matches!(&error, CommandError::Usage { message, .. }
                if message == "This command takes no arguments"),
            "{error:?}"
        );
    }
}
