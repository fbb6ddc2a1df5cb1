//! `server members`, `server join` and `server force-leave`.

use std::collections::BTreeMap;

use caravan_api_types::agent::{AgentMember, AgentMembers};
use caravan_sdk::{Client, QueryOptions};

use crate::error::{CommandError, CommandResult};
use crate::flags::{FlagSet, Parsed};
use crate::ui;

/// The API client, or Nomad's failure text for a bad configuration.
pub(crate) fn client(parsed: &Parsed) -> Result<Client, CommandError> {
    parsed
        .client()
        .map_err(|error| CommandError::failed(format!("Error initializing client: {error}")))
}

const MEMBERS_USAGE: &str = "Usage: caravan server members [options]

  Display a list of the known servers and their status. Only servers are
  able to service this command.

  If ACLs are enabled, this option requires a token with the 'node:read'
  capability.

Server Members Options:

  -verbose, -detailed
    Show detailed information about each member, with all its tags.

  -json
    Output the members in JSON format.

  -t
    Format and display the members using a Go template.
";

pub fn members(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("server members", MEMBERS_USAGE)
        .bool("detailed")
        .bool("verbose")
        .bool("json")
        .value("t");
    let parsed = flags.parse_with(args, 0, 0, "This command takes no arguments")?;
    let verbose = parsed.bool("detailed") || parsed.bool("verbose");
    let client = client(&parsed)?;
    let doing = "querying servers";
    let (answer, mut members, leaders) = crate::block_on(async {
        // Kept as the server wrote it, so -json shows the API's JSON.
        let (answer, _): (serde_json::Value, _) = client
            .get("/v1/agent/members", &[], &QueryOptions::default())
            .await
            .map_err(|error| CommandError::call(doing, error))?;
        let members: AgentMembers = crate::error::typed(answer.clone(), doing)?;
        let leaders = region_leaders(&client, &members.members).await;
        Ok::<_, CommandError>((answer, members.members, leaders))
    })?;
    members.sort_by(|a, b| a.name.cmp(&b.name));
    let (leaders, leader_errors) = leaders;
    if parsed.bool("json") || parsed.get("t").is_some() {
        let raw = raw_members(answer, &members, &leaders);
        crate::output::json_or_template(&parsed, &raw)?;
        return Ok(());
    }
    let tag = |member: &AgentMember, name: &str| {
        member
            .tags
            .as_ref()
            .and_then(|tags| tags.get(name))
            .cloned()
            .unwrap_or_default()
    };
    let rows = members
        .iter()
        .map(|member| {
            let mut row = vec![
                member.name.clone(),
                member.addr.clone().unwrap_or_default(),
                member.port.to_string(),
                member.status.clone(),
                is_leader(member, &leaders).to_string(),
            ];
            if verbose {
                row.push(member.protocol_cur.to_string());
            }
            row.extend(["raft_vsn", "build", "dc", "region"].map(|name| tag(member, name)));
            if verbose {
                let tags = member.tags.iter().flatten();
                let pairs: Vec<String> =
                    tags.map(|(key, value)| format!("{key}={value}")).collect();
                row.push(pairs.join(","));
            }
            row
        })
        .collect();
    let header: &[&str] = match verbose {
        true => &[
            "Name",
            "Address",
            "Port",
            "Status",
            "Leader",
            "Protocol",
            "Raft Version",
            "Build",
            "Datacenter",
            "Region",
            "Tags",
        ],
        false => &[
            "Name",
            "Address",
            "Port",
            "Status",
            "Leader",
            "Raft Version",
            "Build",
            "Datacenter",
            "Region",
        ],
    };
    crate::outln!("{}", ui::table(header, rows));
    if !leader_errors.is_empty() {
        crate::outln!();
        return Err(CommandError::failed(format!(
            "Error determining leaders: {}",
            leader_errors.join("; ")
        )));
    }
    Ok(())
}

/// Each region's leader (`ip:port`), and the regions whose leader could
/// not be asked.
async fn region_leaders(
    client: &Client,
    members: &[AgentMember],
) -> (BTreeMap<String, String>, Vec<String>) {
    let regions: std::collections::BTreeSet<String> = members
        .iter()
        .filter(|member| member.status != "left")
        .filter_map(|member| member.tags.as_ref()?.get("region").cloned())
        .collect();
    let mut leaders = BTreeMap::new();
    let mut errors = Vec::new();
    for region in regions {
        match client.status().region_leader(&region).await {
            Ok(leader) => {
                leaders.insert(region, leader);
            }
            Err(error) => errors.push(format!("Region {region:?}: {error}")),
        }
    }
    (leaders, errors)
}

/// Whether `member` leads its region: its RPC address is the leader's.
/// The members as the API wrote them, sorted by name, each with its
/// leadership added to its tags (Nomad does so for -json and -t).
fn raw_members(
    answer: serde_json::Value,
    members: &[AgentMember],
    leaders: &BTreeMap<String, String>,
) -> Vec<serde_json::Value> {
    let serde_json::Value::Object(mut answer) = answer else {
        return Vec::new();
    };
    let mut raw = match answer.remove("Members") {
        Some(serde_json::Value::Array(raw)) => raw,
        _ => Vec::new(),
    };
    raw.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    for member in &mut raw {
        let leader = members
            .iter()
            .find(|typed| Some(typed.name.as_str()) == member["Name"].as_str())
            .is_some_and(|typed| is_leader(typed, leaders));
        let Some(object) = member.as_object_mut() else {
            continue;
        };
        let tags = object
            .entry("Tags")
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if tags.is_null() {
            *tags = serde_json::Value::Object(Default::default());
        }
        if let Some(tags) = tags.as_object_mut() {
            tags.insert("Leader".to_string(), leader.to_string().into());
        }
    }
    raw
}

fn is_leader(member: &AgentMember, leaders: &BTreeMap<String, String>) -> bool {
    let Some(tags) = &member.tags else {
        return false;
    };
    let address = format!(
        "{}:{}",
        member.addr.as_deref().unwrap_or_default(),
        tags.get("port").map(String::as_str).unwrap_or_default()
    );
    tags.get("region")
        .and_then(|region| leaders.get(region))
        .is_some_and(|leader| *leader == address)
}

const JOIN_USAGE: &str = "Usage: caravan server join [options] <addr> [<addr>...]

  Joins the local server to one or more servers. The addresses are the other
  servers' gossip (serf) addresses, host:port; the port defaults to 4648.
";

pub fn join(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("server join", JOIN_USAGE);
    let parsed = flags.parse_with(
        args,
        1,
        usize::MAX,
        "One or more node addresses must be given as arguments",
    )?;
    let client = client(&parsed)?;
    let addresses: Vec<&str> = parsed.args.iter().map(String::as_str).collect();
    let joined = crate::block_on(client.agent().join(&addresses))
        .map_err(|error| CommandError::failed(format!("Error joining: failed joining: {error}")))?;
    match (joined.num_joined, joined.error.is_empty()) {
        (0, false) => Err(CommandError::failed(format!(
            "Error joining: failed joining: {}",
            joined.error
        ))),
        (count, false) => {
            eprintln!(
                "Joined {count} servers successfully but got warning: {}",
                joined.error
            );
            Ok(())
        }
        (count, true) => {
            crate::outln!("Joined {count} servers successfully");
            Ok(())
        }
    }
}

const FORCE_LEAVE_USAGE: &str = "Usage: caravan server force-leave [options] <node>

  Forces a server to enter the \"left\" state. This can be used to eject
  server nodes which are not responding to keep-alives. Servers in the
  \"failed\" state are removed from the list of members after a timeout;
  -prune removes them at once.

Server Force-Leave Options:

  -prune
    Remove the server from the list of members at once.
";

pub fn force_leave(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("server force-leave", FORCE_LEAVE_USAGE).bool("prune");
    let parsed = flags.parse_with(args, 1, 1, "This command takes one argument: <node>")?;
    let node = parsed.arg(0).unwrap_or_default();
    let client = client(&parsed)?;
    crate::block_on(client.agent().force_leave(node, parsed.bool("prune"))).map_err(|error| {
        CommandError::failed(format!("Error force-leaving server {node}: {error}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, addr: &str, tags: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "Name": name, "Addr": addr, "Port": 4648, "Tags": tags, "Status": "alive",
            "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
            "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4
        })
    }

    #[test]
    fn json_members_keep_what_the_types_lack() {
        let mut b = member(
            "b",
            "10.0.0.2",
            serde_json::json!({"region": "global", "port": "4647"}),
        );
        b["Extra"] = 1.into();
        let members = serde_json::json!([member("a", "10.0.0.1", serde_json::Value::Null), b]);
        let answer = serde_json::json!({"ServerName": "a", "ServerRegion": "global",
            "ServerDC": "dc1", "Members": members});
        let typed: AgentMembers = serde_json::from_value(answer.clone()).unwrap();
        let leaders = BTreeMap::from([("global".to_string(), "10.0.0.2:4647".to_string())]);
        let raw = raw_members(answer, &typed.members, &leaders);
        assert_eq!(raw[0]["Name"], "a");
        assert_eq!(raw[0]["Tags"]["Leader"], "false");
        assert_eq!(raw[1]["Extra"], 1);
        assert_eq!(raw[1]["Tags"]["Leader"], "true");
        assert_eq!(raw[1]["Tags"]["region"], "global");
    }
}
