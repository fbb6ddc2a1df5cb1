//! `operator raft list-peers`, `remove-peer` and `transfer-leadership`.

use caravan_sdk::{QueryOptions, WriteOptions};

use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::server::client;
use crate::ui;

const LIST_USAGE: &str = "Usage: caravan operator raft list-peers [options]

  Displays the current Raft peer configuration.

  If ACLs are enabled, this command requires a management token.

List Peers Options:

  -stale=[true|false]
    By default the leader answers. In an outage without a leader, -stale
    lets any server answer with its own view of the configuration.
";

pub fn raft_list_peers(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("operator raft list-peers", LIST_USAGE).bool("stale");
    let parsed = flags.parse_with(args, 0, 0, "This command takes no arguments")?;
    let client = client(&parsed)?;
    let options = QueryOptions {
        allow_stale: parsed.bool("stale"),
        ..QueryOptions::default()
    };
    let (mut configuration, _) = crate::block_on(client.operator().raft_configuration(&options))
        .map_err(|error| {
            CommandError::failed(format!("Failed to retrieve raft configuration: {error}"))
        })?;
    configuration.servers.sort_by(|a, b| a.node.cmp(&b.node));
    let rows = configuration
        .servers
        .into_iter()
        .map(|server| {
            let state = if server.leader { "leader" } else { "follower" };
            vec![
                server.node,
                server.id,
                server.address,
                state.to_string(),
                server.voter.to_string(),
                server.raft_protocol,
            ]
        })
        .collect();
    crate::outln!(
        "{}",
        ui::table(
            &["Node", "ID", "Address", "State", "Voter", "RaftProtocol"],
            rows
        )
    );
    Ok(())
}

const REMOVE_USAGE: &str = "Usage: caravan operator raft remove-peer [options]

  Removes the server with the given -peer-id (or -peer-address) from the
  Raft configuration. Use it for a server that is gone but left behind in
  the configuration; a server still listed by 'caravan server members' is
  better removed with 'caravan server force-leave'.

  If ACLs are enabled, this command requires a management token.

Remove Peer Options:

  -peer-id=<id>
    The Raft ID of the server to remove.

  -peer-address=<ip:port>
    The Raft (RPC) address of the server to remove.
";

pub fn raft_remove_peer(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("operator raft remove-peer", REMOVE_USAGE)
        .value("peer-id")
        .value("peer-address");
    let parsed = flags.parse_with(args, 0, 0, "This command takes no arguments")?;
    let target = peer(
        parsed.get("peer-id"),
        parsed.get("peer-address"),
        "an address or id is required for the peer to remove",
    )
    .map_err(|message| CommandError::failed(format!("Error removing peer: {message}")))?;
    let client = client(&parsed)?;
    let operator = client.operator();
    let options = WriteOptions::default();
    let result = crate::block_on(async {
        match target {
            Peer::Id(id) => operator.raft_remove_peer(id, &options).await,
            Peer::Address(address) => {
                operator
                    .raft_remove_peer_by_address(address, &options)
                    .await
            }
        }
    });
    result.map_err(|error| CommandError::failed(format!("Error removing peer: {error}")))?;
    crate::outln!("Removed peer with {}", target.describe());
    Ok(())
}

const TRANSFER_USAGE: &str = "Usage: caravan operator raft transfer-leadership [options]

  Transfers leadership to the server with the given -peer-id or
  -peer-address in the Raft configuration. It needs an established leader.

  If ACLs are enabled, this command requires a management token.

Transfer Leadership Options:

  -peer-id=<id>
    The Raft ID of the server to hand leadership to.

  -peer-address=<ip:port>
    The Raft (RPC) address of the server to hand leadership to.
";

pub fn raft_transfer_leadership(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("operator raft transfer-leadership", TRANSFER_USAGE)
        .value("peer-id")
        .value("peer-address");
    let parsed = flags.parse_with(args, 0, 0, "This command takes no arguments")?;
    let failed = |message: String| {
        CommandError::failed(format!("Error transferring leadership to peer: {message}"))
    };
    let target = peer(
        parsed.get("peer-id"),
        parsed.get("peer-address"),
        "an address or id is required for the destination peer",
    )
    .map_err(failed)?;
    let client = client(&parsed)?;
    let operator = client.operator();
    let options = WriteOptions::default();
    let result = crate::block_on(async {
        match target {
            Peer::Id(id) => operator.raft_transfer_leadership_by_id(id, &options).await,
            Peer::Address(address) => {
                operator
                    .raft_transfer_leadership_by_address(address, &options)
                    .await
            }
        }
    });
    result.map_err(|error| failed(error.to_string()))?;
    crate::outln!("Transferred leadership to peer with {}", target.describe());
    Ok(())
}

/// A server named by exactly one of its Raft ID and its address.
#[derive(Clone, Copy)]
enum Peer<'a> {
    Id(&'a str),
    Address(&'a str),
}

impl Peer<'_> {
    fn describe(&self) -> String {
        match self {
            Peer::Id(id) => format!("id {id:?}"),
            Peer::Address(address) => format!("address {address:?}"),
        }
    }
}

fn peer<'a>(
    id: Option<&'a str>,
    address: Option<&'a str>,
    missing: &str,
) -> Result<Peer<'a>, String> {
    let id = id.filter(|id| !id.is_empty());
    let address = address.filter(|address| !address.is_empty());
    match (id, address) {
        (Some(id), None) => Ok(Peer::Id(id)),
        (None, Some(address)) => Ok(Peer::Address(address)),
        (Some(_), Some(_)) => Err("cannot give both an address and id".to_string()),
        (None, None) => Err(missing.to_string()),
    }
}
