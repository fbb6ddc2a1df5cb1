//! `caravan node status`: the node list, or one node in detail (its
//! drain, drivers, events, resources and allocations).

use caravan_api_types::alloc::Allocation;
use caravan_api_types::node::{Node, NodeListStub};
use caravan_sdk::{Client, QueryOptions};
use serde_json::Value;

use super::resources::{allocated_resources, allocation_utilization, host_stats, host_utilization};
use super::{local_node_id, resolve, NotFound};
use crate::alloc::stub_list;
use crate::error::{CommandError, CommandResult};
use crate::flags::{FlagSet, Parsed};
use crate::output::json_or_template;
use crate::ui;

const USAGE: &str = "Usage: caravan node status [options] <node>

  Display status information about a given node. Without a node ID, list
  every node. With -self, the node of the agent at the address.

Node Status Options:

  -self
    Query the status of the local node.

  -stats
    Display detailed resource usage statistics.

  -allocs
    Display a count of running allocations for each node.

  -short
    Display short output. Used only when a single node is being queried.

  -verbose
    Display full information.

  -os
    Display operating system name.

  -quiet
    Display only node IDs.

  -per-page, -page-token, -filter
    Paginate and filter the node list.

  -json
    Output the node in its JSON format.

  -t
    Format and display node using a Go template.
";

fn flags() -> FlagSet {
    FlagSet::new("node status", USAGE)
        .bool("self")
        .bool("stats")
        .bool("allocs")
        .bool("short")
        .bool("verbose")
        .bool("os")
        .bool("quiet")
        .bool("json")
        .value("t")
        .value("filter")
        .value("per-page")
        .value("page-token")
}

pub fn status(args: &[String]) -> CommandResult {
    let flags = flags();
    let parsed = flags.parse(args)?;
    if parsed.args.len() > 1 {
        return Err(flags.usage_error("This command takes either one or no arguments"));
    }
    let client = parsed.client()?;
    crate::block_on(async {
        if parsed.args.is_empty() && !parsed.bool("self") {
            return list(&client, &parsed, &flags).await;
        }
        let ident = match parsed.arg(0) {
            Some(ident) if !parsed.bool("self") => ident.to_string(),
            _ => local_node_id(&client).await?,
        };
        let verbose = parsed.bool("verbose");
        let doing = "querying node info";
        let stub = resolve(&client, &ident, doing, NotFound::Prefix, verbose).await?;
        // Kept as the server wrote it, so -json shows the API's JSON.
        let path = format!("/v1/node/{}", caravan_sdk::jobs::escape(&stub.id));
        let (answer, _): (Value, _) = client
            .get(&path, &[], &QueryOptions::default())
            .await
            .map_err(|error| CommandError::call(doing, error))?;
        if json_or_template(&parsed, &answer)? {
            return Ok(());
        }
        let node: Node = crate::error::typed(answer, doing)?;
        detail(&client, &node, &parsed).await
    })
}

async fn list(client: &Client, parsed: &Parsed, flags: &FlagSet) -> CommandResult {
    let verbose = parsed.bool("verbose");
    let quiet = parsed.bool("quiet");
    if quiet && (verbose || parsed.bool("json")) {
        return Err(CommandError::failed(
            "-quiet cannot be used with -verbose or -json",
        ));
    }
    let per_page = crate::prompt::per_page(parsed, flags)?;
    let options = QueryOptions {
        filter: parsed.get("filter").map(str::to_string),
        per_page,
        next_token: parsed.get("page-token").map(str::to_string),
        ..QueryOptions::default()
    };
    let os = parsed.bool("os");
    let extra = match os {
        true => vec![("os", "true".to_string())],
        false => Vec::new(),
    };
    let doing = "querying node status";
    let (answer, meta): (Value, _) = client
        .get("/v1/nodes", &extra, &options)
        .await
        .map_err(|error| CommandError::call(doing, error))?;
    if json_or_template(parsed, &answer)? {
        return Ok(());
    }
    let nodes: Vec<NodeListStub> = crate::error::typed(answer, doing)?;
    if nodes.is_empty() {
        crate::outln!("No nodes registered");
        return Ok(());
    }
    if quiet {
        for node in &nodes {
            crate::outln!("{}", node.id);
        }
        return Ok(());
    }
    let mut header = vec!["ID", "Node Pool", "DC", "Name", "Class"];
    if os {
        header.push("OS");
    }
    if verbose {
        header.extend(["Address", "Version"]);
    }
    header.extend(["Drain", "Eligibility", "Status"]);
    if parsed.bool("allocs") {
        header.push("Running Allocs");
    }
    let mut rows = Vec::new();
    for node in &nodes {
        let mut row = vec![
            ui::short(&node.id, verbose).to_string(),
            node.node_pool.clone(),
            node.datacenter.clone(),
            node.name.clone(),
            node.node_class.clone(),
        ];
        if os {
            let name = node
                .attributes
                .as_ref()
                .and_then(|attributes| attributes.get("os.name"));
            row.push(name.cloned().unwrap_or_default());
        }
        if verbose {
            row.extend([node.address.clone(), node.version.clone()]);
        }
        row.extend([
            node.drain.to_string(),
            node.scheduling_eligibility.clone(),
            node.status.clone(),
        ]);
        if parsed.bool("allocs") {
            row.push(running_allocs(client, &node.id).await?.len().to_string());
        }
        rows.push(row);
    }
    crate::outln!("{}", ui::table(&header, rows));
    if let Some(token) = meta.next_token {
        crate::outln!("{}", crate::prompt::next_page_hint(&token));
    }
    Ok(())
}

async fn node_allocs(client: &Client, id: &str) -> Result<Vec<Allocation>, CommandError> {
    let (mut allocs, _) = client
        .nodes()
        .allocations(id, &QueryOptions::default())
        .await
        .map_err(|error| CommandError::call("querying node allocations", error))?;
    // Newest first, as Nomad's client sorts them.
    allocs.sort_by_key(|alloc| std::cmp::Reverse(alloc.create_index));
    Ok(allocs)
}

async fn running_allocs(client: &Client, id: &str) -> Result<Vec<Allocation>, CommandError> {
    let mut allocs = node_allocs(client, id).await?;
    allocs.retain(|alloc| alloc.client_status == "running");
    Ok(allocs)
}

/// The drain as one line: `true; <time> deadline; ignoring system jobs`.
pub(crate) fn drain_text(node: &Node) -> String {
    let Some(strategy) = &node.drain_strategy else {
        return node.drain.to_string();
    };
    let mut text = "true".to_string();
    if strategy.deadline < 0 {
        text.push_str("; force drain");
    } else if let Some(deadline) = &strategy.force_deadline {
        text.push_str(&format!("; {} deadline", ui::format_time(deadline)));
    } else {
        text.push_str("; no deadline");
    }
    if strategy.ignore_system_jobs {
        text.push_str("; ignoring system jobs");
    }
    text
}

/// The detected drivers, unhealthy ones marked (`Driver Status`).
fn driver_status(node: &Node) -> String {
    node.drivers
        .iter()
        .filter(|(_, info)| info.detected)
        .map(|(name, info)| match info.healthy {
            true => name.clone(),
            false => format!("{name} (unhealthy)"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Names of a JSON object's keys, sorted and comma-joined.
fn key_names(value: Option<&Value>) -> String {
    let mut names: Vec<&str> = value
        .and_then(Value::as_object)
        .map(|map| map.keys().map(String::as_str).collect())
        .unwrap_or_default();
    names.sort_unstable();
    names.join(",")
}

async fn detail(client: &Client, node: &Node, parsed: &Parsed) -> CommandResult {
    let verbose = parsed.bool("verbose");
    let allocs = node_allocs(client, &node.id).await?;
    let running: Vec<&Allocation> = allocs
        .iter()
        .filter(|alloc| alloc.client_status == "running")
        .collect();
    let volumes = node
        .host_volumes
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    let networks = key_names(node.host_networks.as_ref());
    let mut basic = vec![
        ("ID", node.id.clone()),
        ("Name", node.name.clone()),
        ("Node Pool", node.node_pool.clone()),
        ("Class", node.node_class.clone()),
        ("DC", node.datacenter.clone()),
        ("Drain", drain_text(node)),
        ("Eligibility", node.scheduling_eligibility.clone()),
        ("Status", node.status.clone()),
        (
            "CSI Controllers",
            key_names(node.csi_controller_plugins.as_ref()),
        ),
        ("CSI Drivers", key_names(node.csi_node_plugins.as_ref())),
    ];
    if parsed.bool("short") {
        let drivers: Vec<&str> = node
            .attributes
            .iter()
            .filter(|(key, value)| key.matches('.').count() == 1 && value.as_str() == "1")
            .filter_map(|(key, _)| key.strip_prefix("driver."))
            .collect();
        basic.extend([
            ("Host Volumes", volumes),
            ("Host Networks", networks),
            ("CSI Volumes", String::new()),
            ("Drivers", drivers.join(",")),
        ]);
        crate::outln!("{}", ui::kv(&basic));
        crate::outln!("\nAllocations\n{}", alloc_list(&allocs, verbose));
        return Ok(());
    }
    let host = match client.client().host_stats(Some(&node.id)).await {
        Ok(stats) => Some(stats),
        Err(error) => {
            crate::outln!();
            eprintln!("error fetching node stats: {error}");
            None
        }
    };
    if let Some(uptime) = host.as_ref().and_then(|stats| stats["Uptime"].as_u64()) {
        let nanos = i64::try_from(uptime.saturating_mul(1_000_000_000)).unwrap_or(i64::MAX);
        basic.push((
            "Uptime",
            caravan_api_types::duration::format_go_duration_nanos(nanos),
        ));
    }
    if !verbose {
        basic.extend([
            ("Host Volumes", volumes),
            ("Host Networks", networks),
            ("CSI Volumes", String::new()),
            ("Driver Status", driver_status(node)),
        ]);
    }
    crate::outln!("{}", ui::kv(&basic));
    if verbose {
        verbose_sections(node);
    }
    crate::outln!("\nNode Events\n{}", events(node, verbose));
    crate::outln!(
        "\nAllocated Resources\n{}",
        allocated_resources(node, &running)
    );
    if let Some(used) = allocation_utilization(client, node, &running).await {
        crate::outln!("\nAllocation Resource Utilization\n{used}");
    }
    match &host {
        Some(stats) => crate::outln!(
            "\nHost Resource Utilization\n{}",
            host_utilization(node, stats)
        ),
        None => {
            crate::outln!();
            eprintln!("error fetching node stats: actual resource usage not present");
        }
    }
    if let (Some(stats), true) = (&host, parsed.bool("stats")) {
        host_stats(stats);
    }
    crate::outln!("\nAllocations\n{}", alloc_list(&allocs, verbose));
    if verbose {
        let attributes: Vec<(&str, String)> = node
            .attributes
            .iter()
            .map(|(key, value)| (key.as_str(), value.clone()))
            .collect();
        crate::outln!("\nAttributes\n{}", ui::kv(&attributes));
        let meta: Vec<(&str, String)> = node
            .meta
            .iter()
            .map(|(key, value)| (key.as_str(), value.clone()))
            .collect();
        crate::outln!("\nMeta\n{}", ui::kv(&meta));
    }
    Ok(())
}

fn alloc_list(allocs: &[Allocation], verbose: bool) -> String {
    let stubs: Vec<_> = allocs
        .iter()
        .map(|alloc| alloc.stub(false, false))
        .collect();
    stub_list(&stubs, verbose)
}

/// `-verbose`'s host volume and driver tables.
fn verbose_sections(node: &Node) {
    if !node.host_volumes.is_empty() {
        let rows = node
            .host_volumes
            .iter()
            .map(|(name, info)| vec![name.clone(), info.read_only.to_string(), info.path.clone()])
            .collect();
        crate::outln!(
            "\nHost Volumes\n{}",
            ui::table(&["Name", "ReadOnly", "Source"], rows)
        );
    }
    let rows = node
        .drivers
        .iter()
        .map(|(name, info)| {
            vec![
                name.clone(),
                info.detected.to_string(),
                info.healthy.to_string(),
                info.health_description.clone(),
                info.update_time
                    .as_ref()
                    .map(ui::format_time)
                    .unwrap_or_default(),
            ]
        })
        .collect();
    crate::outln!(
        "\nDrivers\n{}",
        ui::table(&["Driver", "Detected", "Healthy", "Message", "Time"], rows)
    );
}

/// The node's events, newest first.
fn events(node: &Node, verbose: bool) -> String {
    let rows = node
        .events
        .iter()
        .rev()
        .map(|event| {
            let details = event.details.clone().unwrap_or_default();
            let subsystem = match details.get("driver") {
                Some(driver) if !driver.is_empty() => format!("Driver: {driver}"),
                _ => event.subsystem.clone(),
            };
            let mut row = vec![
                event
                    .timestamp
                    .as_ref()
                    .map(ui::format_time)
                    .unwrap_or_default(),
                subsystem,
                event.message.clone(),
            ];
            if verbose {
                let text: Vec<String> = details
                    .iter()
                    .map(|(key, value)| format!("{key}: {value}"))
                    .collect();
                row.push(text.join(", "));
            }
            row
        })
        .collect();
    match verbose {
        true => ui::table(&["Time", "Subsystem", "Message", "Details"], rows),
        false => ui::table(&["Time", "Subsystem", "Message"], rows),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn drains_read_as_one_line() {
        let mut node = Node::default();
        assert_eq!(drain_text(&node), "false");
        node.drain_strategy = Some(caravan_api_types::node::DrainStrategy {
            deadline: -1,
            ..Default::default()
        });
        assert_eq!(drain_text(&node), "true; force drain");
        node.drain_strategy = Some(caravan_api_types::node::DrainStrategy {
            deadline: 0,
            ignore_system_jobs: true,
            ..Default::default()
        });
        assert_eq!(drain_text(&node), "true; no deadline; ignoring system jobs");
        let at = Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap();
        node.drain_strategy = Some(caravan_api_types::node::DrainStrategy {
            deadline: 3_600_000_000_000,
            force_deadline: Some(at),
            ..Default::default()
        });
        assert_eq!(
            drain_text(&node),
            format!("true; {} deadline", ui::format_time(&at))
        );
    }
}
