//! `caravan node ...`: the client nodes, their drains and eligibility, as
//! Nomad's `node` commands show and change them.

mod config;
mod drain;
mod eligibility;
mod resources;
mod status;

pub use config::config;
pub use drain::drain;
pub use eligibility::{eligibility, purge};
pub use status::status;

use caravan_api_types::node::NodeListStub;
use caravan_sdk::{Client, QueryOptions};

use crate::error::CommandError;
use crate::prefix::{pick_or, uuid_prefix};
use crate::ui;

/// How a command reports a node ID that matched nothing: `node status`
/// says "with prefix", the commands that change a node "with prefix or id".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotFound {
    Prefix,
    PrefixOrId,
}

/// The ID of the node the agent at the client's address runs (`-self`).
pub(crate) async fn local_node_id(client: &Client) -> Result<String, CommandError> {
    let me = client
        .agent()
        .this()
        .await
        .map_err(|error| CommandError::failed(format!("Error querying agent info: {error}")))?;
    let Some(stats) = me["stats"]["client"].as_object() else {
        return Err(CommandError::failed("Caravan not running in client mode"));
    };
    stats
        .get("node_id")
        .and_then(|id| id.as_str())
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| CommandError::failed("Failed to determine node ID"))
}

/// The one node `ident` (an ID or a prefix of one) names. `doing` words
/// the failure of the list call ("querying node info").
pub(crate) async fn resolve(
    client: &Client,
    ident: &str,
    doing: &str,
    not_found: NotFound,
    verbose: bool,
) -> Result<NodeListStub, CommandError> {
    let prefix = uuid_prefix(ident)?;
    let options = QueryOptions {
        prefix: Some(prefix.clone()),
        ..QueryOptions::default()
    };
    let (nodes, _) = client
        .nodes()
        .list(&options)
        .await
        .map_err(|error| CommandError::call(doing, error))?;
    pick_or(
        nodes,
        ident,
        "Prefix matched multiple nodes",
        |node| node.id.as_str(),
        |nodes| stub_list(nodes, verbose),
        || not_found_error(not_found, &prefix),
    )
}

/// No node has the (sanitised) `prefix`.
fn not_found_error(not_found: NotFound, prefix: &str) -> CommandError {
    CommandError::failed(match not_found {
        NotFound::Prefix => format!("No node(s) with prefix {prefix:?} found"),
        NotFound::PrefixOrId => format!("No node(s) with prefix or id {prefix:?} found"),
    })
}

/// Nodes as listed when a prefix matched several of them.
pub(crate) fn stub_list(nodes: &[NodeListStub], verbose: bool) -> String {
    let rows = nodes
        .iter()
        .map(|node| {
            vec![
                ui::short(&node.id, verbose).to_string(),
                node.datacenter.clone(),
                node.name.clone(),
                node.node_class.clone(),
                node.drain.to_string(),
                node.scheduling_eligibility.clone(),
                node.status.clone(),
            ]
        })
        .collect();
    ui::table(
        &[
            "ID",
            "DC",
            "Name",
            "Class",
            "Drain",
            "Eligibility",
            "Status",
        ],
        rows,
    )
}

/// The node argument, or the local node with `-self`; exactly one of them
/// (`usage_error` words a wrong combination).
pub(crate) async fn node_argument(
    client: &Client,
    args: &[String],
    self_node: bool,
) -> Result<String, CommandError> {
    match (self_node, args) {
        (true, []) => local_node_id(client).await,
        (false, [id]) => Ok(id.clone()),
        _ => Err(CommandError::failed(
            "Node ID must be specified if -self isn't being used",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stub(id: &str) -> NodeListStub {
        serde_json::from_value(serde_json::json!({
            "Address": "127.0.0.1", "ID": id, "Datacenter": "dc1", "Name": "n",
            "NodeClass": "", "NodePool": "default", "Version": "1", "Drain": false,
            "SchedulingEligibility": "eligible", "Status": "ready",
            "StatusDescription": "", "Drivers": {}, "HostVolumes": {},
            "LastDrain": null, "CreateIndex": 1, "ModifyIndex": 1
        }))
        .unwrap()
    }

    fn pick_node(
        nodes: Vec<NodeListStub>,
        ident: &str,
        prefix: &str,
        not_found: NotFound,
    ) -> Result<NodeListStub, CommandError> {
        pick_or(
            nodes,
            ident,
            "Prefix matched multiple nodes",
            |node| node.id.as_str(),
            |nodes| stub_list(nodes, false),
            || not_found_error(not_found, prefix),
        )
    }

    #[test]
    fn node_prefixes_resolve_as_nomad_reports_them() {
        let picked = pick_node(vec![stub("abcd1")], "abc", "ab", NotFound::Prefix);
        assert_eq!(picked.unwrap().id, "abcd1");
        let none = pick_node(vec![], "abc", "ab", NotFound::Prefix).unwrap_err();
        assert_eq!(none.to_string(), "No node(s) with prefix \"ab\" found");
        let none = pick_node(vec![], "ab", "ab", NotFound::PrefixOrId).unwrap_err();
        assert_eq!(
            none.to_string(),
            "No node(s) with prefix or id \"ab\" found"
        );
        let many = pick_node(
            vec![stub("ab11"), stub("ab22")],
            "ab",
            "ab",
            NotFound::Prefix,
        )
        .unwrap_err()
        .to_string();
        assert!(
            many.starts_with("Prefix matched multiple nodes\n\nID "),
            "{many}"
        );
        assert!(many.contains("ab11") && many.contains("ab22"), "{many}");
    }
}
