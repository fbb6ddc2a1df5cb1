//! `caravan namespace ...`: Nomad's `namespace apply`, `list`, `status`,
//! `inspect` and `delete`, their flags, columns, texts and exit codes.
//!
//! `status` and `inspect` take a name prefix, resolved as Nomad's
//! `getNamespace` does: the one namespace the prefix lists, or the one
//! named exactly, else the matches listed and the command failed.

mod apply;
mod spec;

pub use apply::apply;

use caravan_api_types::namespace::Namespace;
use caravan_sdk::{Client, QueryOptions, WriteOptions};
use serde_json::Value;

use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::output::{json_or_template, pretty_json};
use crate::prefix::pick_or;
use crate::server::client;
use crate::ui;

/// Nomad's words for a command given other than its one argument.
const ONE_NAMESPACE: &str = "This command takes one argument: <namespace>";

const LIST_USAGE: &str = "Usage: caravan namespace list [options]

  List is used to list available namespaces.

  If ACLs are enabled, this command requires a management ACL token to view
  all namespaces. A non-management token can be used to list namespaces for
  which it has an associated capability.

List Options:

  -json
    Output the namespaces in a JSON format.

  -t
    Format and display the namespaces using a Go template.
";

const STATUS_USAGE: &str = "Usage: caravan namespace status [options] <namespace>

  Status is used to view the status of a particular namespace.

  If ACLs are enabled, this command requires a management ACL token or a token
  that has a capability associated with the namespace.

Status Specific Options:

  -json
    Output the latest namespace status information in a JSON format.

  -t
    Format and display namespace status information using a Go template.
";

const INSPECT_USAGE: &str = "Usage: caravan namespace inspect [options] <namespace>

  Inspect is used to view raw information about a particular namespace.

  If ACLs are enabled, this command requires a management ACL token or a token
  that has a capability associated with the namespace.

Inspect Options:

  -t
    Format and display the namespaces using a Go template.
";

const DELETE_USAGE: &str = "Usage: caravan namespace delete [options] <namespace>

  Delete is used to remove a namespace.

  If ACLs are enabled, this command requires a management ACL token.

  You cannot delete a namespace that has non-terminal jobs. In federated
  clusters, you cannot delete a namespace that has non-terminal jobs in any of
  the federated regions.
";

pub fn list(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("namespace list", LIST_USAGE)
        .bool("json")
        .value("t");
    let parsed = flags.parse_with(args, 0, 0, "This command takes no arguments")?;
    let client = client(&parsed)?;
    let (namespaces, _) = crate::block_on(client.namespaces().list(&QueryOptions::default()))
        .map_err(|error| CommandError::call("retrieving namespaces", error))?;
    // `-json` keeps the SDK's order (newest first), as Nomad's does; the
    // table is by name.
    if json_or_template(&parsed, &namespaces)? {
        return Ok(());
    }
    crate::outln!("{}", format_namespaces(&namespaces));
    Ok(())
}

pub fn status(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("namespace status", STATUS_USAGE)
        .bool("json")
        .value("t");
    let parsed = flags.parse_with(args, 1, 1, ONE_NAMESPACE)?;
    let client = client(&parsed)?;
    let namespace = crate::block_on(lookup(&client, parsed.arg(0).unwrap_or_default()))?;
    if json_or_template(&parsed, &namespace)? {
        return Ok(());
    }
    crate::outln!("{}", format_status(&namespace));
    Ok(())
}

pub fn inspect(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("namespace inspect", INSPECT_USAGE).value("t");
    let parsed = flags.parse_with(args, 1, 1, ONE_NAMESPACE)?;
    let client = client(&parsed)?;
    let namespace = crate::block_on(lookup(&client, parsed.arg(0).unwrap_or_default()))?;
    // There is no -json: JSON is what inspect prints unless -t is given.
    if json_or_template(&parsed, &namespace)? {
        return Ok(());
    }
    crate::outln!("{}", pretty_json(&namespace)?);
    Ok(())
}

pub fn delete(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("namespace delete", DELETE_USAGE);
    let parsed = flags.parse_with(args, 1, 1, ONE_NAMESPACE)?;
    let name = parsed.arg(0).unwrap_or_default();
    let client = client(&parsed)?;
    crate::block_on(client.namespaces().delete(name, &WriteOptions::default()))
        .map_err(|error| CommandError::call("deleting namespace", error))?;
    crate::outln!("Successfully deleted namespace {name:?}!");
    Ok(())
}

/// The namespace `prefix` names (Nomad's `getNamespace`): the only one
/// listed under it, or the one named exactly among several.
async fn lookup(client: &Client, prefix: &str) -> Result<Namespace, CommandError> {
    let (namespaces, _) = client
        .namespaces()
        .prefix_list(prefix, &QueryOptions::default())
        .await
        .map_err(|error| CommandError::call("retrieving namespaces", error))?;
    pick_or(
        namespaces,
        prefix,
        "Prefix matched multiple namespaces",
        |namespace| namespace.name.as_str(),
        format_namespaces,
        || {
            CommandError::failed(format!(
                "Error retrieving namespaces: Namespace {prefix:?} matched no namespaces"
            ))
        },
    )
}

/// The `Name  Description` table, by name (Nomad's `formatNamespaces`).
fn format_namespaces(namespaces: &[Namespace]) -> String {
    if namespaces.is_empty() {
        return "No namespaces found".to_string();
    }
    let mut sorted: Vec<&Namespace> = namespaces.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let rows = sorted
        .into_iter()
        .map(|namespace| vec![namespace.name.clone(), namespace.description.clone()])
        .collect();
    ui::table(&["Name", "Description"], rows)
}

/// What `namespace status` prints: the basics, then each section the
/// namespace has. Nomad's "Quota Limits" section is not printed: it reads
/// the quota's usage from Nomad Enterprise's quota endpoints, which
/// Caravan does not have; the quota's name is in the basics.
fn format_status(namespace: &Namespace) -> String {
    let mut text = format_basics(namespace);
    if let Some(meta) = namespace.meta.as_ref().filter(|meta| !meta.is_empty()) {
        // A BTreeMap: already in key order, as Nomad sorts its lines.
        let pairs: Vec<(&str, String)> = meta
            .iter()
            .map(|(key, value)| (key.as_str(), value.clone()))
            .collect();
        text.push_str("\n\nMetadata\n");
        text.push_str(&ui::kv(&pairs));
    }
    let sections = [
        (
            "Node Pool Configuration",
            &namespace.node_pool_configuration,
        ),
        ("Vault Configuration", &namespace.vault_configuration),
        ("Consul Configuration", &namespace.consul_configuration),
    ];
    for (title, config) in sections {
        if let Some(config) = config.as_ref().filter(|config| !config.is_null()) {
            text.push_str(&format!("\n\n{title}\n"));
            text.push_str(&format_cluster_config(config));
        }
    }
    text
}

/// Name, description, quota and capabilities (Nomad's
/// `formatNamespaceBasics`): no enabled list reads `*`, everything is.
fn format_basics(namespace: &Namespace) -> String {
    let joined = |list: Option<&Vec<String>>, none: &str| match list {
        Some(list) if !list.is_empty() => list.join(","),
        _ => none.to_string(),
    };
    let capabilities = namespace.capabilities.as_ref();
    let field =
        |pick: fn(&caravan_api_types::namespace::NamespaceCapabilities) -> Option<&Vec<String>>| {
            capabilities.and_then(pick)
        };
    ui::kv(&[
        ("Name", namespace.name.clone()),
        ("Description", namespace.description.clone()),
        ("Quota", namespace.quota.clone()),
        (
            "Enabled Drivers",
            joined(field(|c| c.enabled_task_drivers.as_ref()), "*"),
        ),
        (
            "Disabled Drivers",
            joined(field(|c| c.disabled_task_drivers.as_ref()), ""),
        ),
        (
            "Enabled Network Modes",
            joined(field(|c| c.enabled_network_modes.as_ref()), "*"),
        ),
        (
            "Disabled Network Modes",
            joined(field(|c| c.disabled_network_modes.as_ref()), ""),
        ),
    ])
}

/// A node pool, Vault or Consul configuration: its default, then the
/// allowed and denied lists when there are any.
fn format_cluster_config(config: &Value) -> String {
    let mut pairs = vec![("Default", ui::cell(&config["Default"]))];
    for key in ["Allowed", "Denied"] {
        let items: Vec<String> = config[key]
            .as_array()
            .map(|items| items.iter().map(ui::cell).collect())
            .unwrap_or_default();
        if !items.is_empty() {
            pairs.push((key, items.join(", ")));
        }
    }
    ui::kv(&pairs)
}

#[cfg(test)]
mod tests;
