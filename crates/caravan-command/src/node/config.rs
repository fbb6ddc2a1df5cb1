//! `node config -servers` and `node config -update-servers`: a client
//! agent's server list, as Nomad's `node config` shows and replaces it.

use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::server::client;

const USAGE: &str = "Usage: caravan node config [options]

  View or modify a client node's configuration details. This command only works
  on client nodes, and can be used to update the running client configurations
  it supports.

  The arguments behave differently depending on the flags given. See each
  flag's description for its specific requirements.

Client Config Options:

  -servers
    List the known server addresses of the client node. Client nodes do not
    participate in the gossip pool, and instead register with these servers
    periodically over the network.

    If ACLs are enabled, this option requires a token with the 'agent:read'
    capability.

  -update-servers
    Updates the client's server list using the provided arguments. Multiple
    server addresses may be passed using multiple arguments. IMPORTANT: When
    updating the servers list, you must specify ALL of the server nodes you
    wish to configure. The set is updated atomically.

    If ACLs are enabled, this option requires a token with the 'agent:write'
    capability.

    Example:
      $ caravan node config -update-servers foo:4647 bar:4647
";

pub fn config(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("node config", USAGE)
        .bool("servers")
        .bool("update-servers");
    let parsed = flags.parse(args)?;
    let (list, update) = (parsed.bool("servers"), parsed.bool("update-servers"));
    if !list && !update {
        return Err(flags.usage_error("The '-servers' or '-update-servers' flag(s) must be set"));
    }
    if update && parsed.args.is_empty() {
        return Err(flags.usage_error(
            "If the '-update-servers' flag is set, at least one server argument must be provided",
        ));
    }
    let client = client(&parsed)?;
    if update {
        let addresses: Vec<&str> = parsed.args.iter().map(String::as_str).collect();
        crate::block_on(client.agent().set_servers(&addresses))
            .map_err(|error| CommandError::call("updating server list", error))?;
        crate::outln!("Updated server list");
        return Ok(());
    }
    let servers = crate::block_on(client.agent().servers())
        .map_err(|error| CommandError::call("querying server list", error))?;
    for server in servers {
        crate::outln!("{server}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage_message(args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        match config(&args) {
            Err(CommandError::Usage { message, .. }) => message,
            other => panic!("not a usage error: {other:?}"),
        }
    }

    #[test]
    fn a_flag_and_for_updates_an_address_are_required() {
        assert_eq!(
            usage_message(&[]),
            "The '-servers' or '-update-servers' flag(s) must be set"
        );
        assert_eq!(
            usage_message(&["-update-servers"]),
            "If the '-update-servers' flag is set, at least one server argument must be provided"
        );
    }
}
