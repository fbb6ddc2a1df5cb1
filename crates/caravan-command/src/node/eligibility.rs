//! `caravan node eligibility` and `caravan node purge`: whether a node
//! takes new work, and forgetting a node.

use caravan_sdk::WriteOptions;

use super::{node_argument, resolve, NotFound};
use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;

const ELIGIBILITY_USAGE: &str = "Usage: caravan node eligibility [options] <node>

  Toggle the scheduling eligibility of a node. An ineligible node keeps
  its allocations but is given no new ones.

Node Eligibility Options:

  -enable
    Mark the node as eligible for scheduling.

  -disable
    Mark the node as ineligible for scheduling.

  -self
    Set the eligibility of the local node.
";

const PURGE_USAGE: &str = "Usage: caravan node purge [options] <node>

  Remove a node from the cluster's state. Its allocations are marked lost
  and replaced; a live client registers again on its next heartbeat.
";

pub fn eligibility(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("node eligibility", ELIGIBILITY_USAGE)
        .bool("enable")
        .bool("disable")
        .bool("self");
    let parsed = flags.parse(args)?;
    let (enable, disable) = (parsed.bool("enable"), parsed.bool("disable"));
    if enable == disable {
        return Err(flags.usage_error("Either the '-enable' or '-disable' flag must be set"));
    }
    let self_node = parsed.bool("self");
    if (self_node && !parsed.args.is_empty()) || (!self_node && parsed.args.len() != 1) {
        return Err(flags.usage_error("Node ID must be specified if -self isn't being used"));
    }
    let client = parsed.client()?;
    crate::block_on(async {
        let ident = node_argument(&client, &parsed.args, self_node).await?;
        let doing = "updating scheduling eligibility";
        let stub = resolve(&client, &ident, doing, NotFound::PrefixOrId, true).await?;
        client
            .nodes()
            .eligibility(&stub.id, enable, &WriteOptions::default())
            .await
            .map_err(|error| CommandError::call(doing, error))?;
        let state = if enable { "eligible" } else { "ineligible" };
        crate::outln!(
            "Node {:?} scheduling eligibility set: {state} for scheduling",
            stub.id
        );
        Ok(())
    })
}

pub fn purge(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("node purge", PURGE_USAGE);
    let parsed = flags.parse_with(args, 1, 1, "This command takes one argument: <node>")?;
    let client = parsed.client()?;
    crate::block_on(async {
        let ident = &parsed.args[0];
        let doing = "purging node";
        let stub = resolve(&client, ident, doing, NotFound::PrefixOrId, true).await?;
        client
            .nodes()
            .purge(&stub.id, &WriteOptions::default())
            .await
            .map_err(|error| CommandError::call(doing, error))?;
        crate::outln!("Node {:?} purged", stub.id);
        Ok(())
    })
}
