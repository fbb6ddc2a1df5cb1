//! `caravan node drain`: starts or ends a node's drain, and follows it
//! until every allocation has left the node (unless `-detach`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use caravan_api_types::alloc::Allocation;
use caravan_api_types::duration::parse_go_duration_nanos;
use caravan_api_types::node::{DrainSpec, Node, DRAIN_STATUS_CANCELED, NODE_STATUS_DOWN};
use caravan_sdk::{Client, QueryOptions, WriteOptions};
use chrono::Utc;
use futures::future::Either;

use super::{node_argument, resolve, NotFound};
use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::ui;

const USAGE: &str = "Usage: caravan node drain [options] <node>

  Toggle drain mode on a given node. Draining stops new allocations from
  being placed on the node and migrates the allocations it runs.

Node Drain Options:

  -disable
    Disable draining for the specified node.

  -enable
    Enable draining for the specified node.

  -deadline <duration>
    Time after which the remaining allocations are force stopped.
    Default = 1h

  -detach
    Return immediately instead of entering monitor mode.

  -monitor
    Enter monitor mode directly without modifying the drain status.

  -force
    Force remove allocations off the node immediately.

  -no-deadline
    No deadline: wait for the allocations to leave on their own.

  -ignore-system
    Ignore system allocations while draining.

  -keep-ineligible
    Keep the node ineligible for scheduling when the drain is disabled.

  -m <message>, -meta <key>=<value>
    A message and metadata kept with the drain.

  -self
    Set the drain status of the local node.

  -yes
    Automatic yes to prompts.
";

/// The deadline when none is given (Nomad's `defaultDrainDuration`).
const DEFAULT_DEADLINE_NANOS: i64 = 3_600 * 1_000_000_000;
/// How long each blocking read of the monitor waits for a change.
const WATCH_WAIT: Duration = Duration::from_secs(5);

fn flags() -> FlagSet {
    FlagSet::new("node drain", USAGE)
        .bool("enable")
        .bool("disable")
        .value("deadline")
        .bool("detach")
        .bool("force")
        .bool("no-deadline")
        .bool("ignore-system")
        .bool("keep-ineligible")
        .bool("self")
        .bool("yes")
        .bool("monitor")
        .value("m")
        .value("meta")
}

/// The deadline the flags ask for, in nanoseconds (`-force` is -1s).
fn deadline_nanos(
    deadline: Option<&str>,
    force: bool,
    no_deadline: bool,
) -> Result<i64, CommandError> {
    if force {
        return Ok(-1_000_000_000);
    }
    if no_deadline {
        return Ok(0);
    }
    let Some(text) = deadline else {
        return Ok(DEFAULT_DEADLINE_NANOS);
    };
    let nanos = parse_go_duration_nanos(text).map_err(|error| {
        CommandError::failed(format!("Failed to parse deadline {text:?}: {error}"))
    })?;
    if nanos <= 0 {
        return Err(CommandError::failed(
            "A positive drain duration must be given",
        ));
    }
    Ok(nanos)
}

pub fn drain(args: &[String]) -> CommandResult {
    let flags = flags();
    let parsed = flags.parse(args)?;
    let (enable, disable, monitor) = (
        parsed.bool("enable"),
        parsed.bool("disable"),
        parsed.bool("monitor"),
    );
    if monitor && (enable || disable) {
        return Err(flags.usage_error(
            "The -monitor flag cannot be used with the '-enable' or '-disable' flags",
        ));
    }
    if (enable && disable) || (!monitor && !enable && !disable) {
        return Err(flags.usage_error(
            "Either the '-enable' or '-disable' flag must be set, unless using '-monitor'",
        ));
    }
    let self_node = parsed.bool("self");
    if (self_node && !parsed.args.is_empty()) || (!self_node && parsed.args.len() != 1) {
        return Err(flags.usage_error("Node ID must be specified if -self isn't being used"));
    }
    let (force, no_deadline) = (parsed.bool("force"), parsed.bool("no-deadline"));
    let deadline = parsed.get("deadline");
    if disable && (deadline.is_some() || force || no_deadline || parsed.bool("ignore-system")) {
        return Err(
            flags.usage_error("-disable can't be combined with flags configuring drain strategy")
        );
    }
    if deadline.is_some() && (force || no_deadline) {
        return Err(flags.usage_error("-deadline can't be combined with -force or -no-deadline"));
    }
    if force && no_deadline {
        return Err(flags.usage_error("-force and -no-deadline are mutually exclusive"));
    }
    let deadline = deadline_nanos(deadline, force, no_deadline)?;
    let ignore_system = parsed.bool("ignore-system");
    let client = parsed.client()?;
    crate::block_on(async {
        let ident = node_argument(&client, &parsed.args, self_node).await?;
        let doing = "toggling drain mode";
        let stub = resolve(&client, &ident, doing, NotFound::PrefixOrId, true).await?;
        let (node, meta) = client
            .nodes()
            .info(&stub.id, &QueryOptions::default())
            .await
            .map_err(|error| CommandError::call(doing, error))?;
        if monitor {
            if node.drain_strategy.is_none() {
                eprintln!("No drain strategy set");
                return Ok(());
            }
            say(&format!(
                "Monitoring node {:?}: Ctrl-C to detach monitoring",
                node.id
            ));
            return follow_drain(&client, &node.id, meta.last_index, ignore_system).await;
        }
        if ident != node.id && !parsed.bool("yes") {
            let verb = if disable { "disable" } else { "enable" };
            let question = format!(
                "Are you sure you want to {verb} drain mode for node {:?}? [y/N]",
                node.id
            );
            if !crate::prompt::confirm(&question)? {
                crate::outln!("Canceling drain toggle");
                return Ok(());
            }
        }
        let spec = enable.then_some(DrainSpec {
            deadline,
            ignore_system_jobs: ignore_system,
        });
        let drain_meta = drain_meta(&node, disable, parsed.get("m"), &parsed.all("meta"));
        let (_, written) = client
            .nodes()
            .drain_with(
                &node.id,
                spec,
                !parsed.bool("keep-ineligible"),
                Some(drain_meta),
                &WriteOptions::default(),
            )
            .await
            .map_err(|error| CommandError::call("updating drain specification", error))?;
        if disable {
            crate::outln!("Node {:?} drain strategy unset", node.id);
            return Ok(());
        }
        if parsed.bool("detach") {
            crate::outln!("Node {:?} drain strategy set", node.id);
            return Ok(());
        }
        say("Ctrl-C to stop monitoring: will not cancel the node drain");
        say(&format!("Node {:?} drain strategy set", node.id));
        follow_drain(&client, &node.id, written.last_index, ignore_system).await
    })
}

/// The drain's metadata: a cancel keeps the last drain's, `-m` becomes
/// `message` (or `cancel_message`), `-meta k=v` pairs are added.
fn drain_meta(
    node: &Node,
    disable: bool,
    message: Option<&str>,
    pairs: &[&str],
) -> BTreeMap<String, String> {
    let mut meta = BTreeMap::new();
    if disable {
        if let Some(last) = node.last_drain.as_ref().and_then(|last| last.meta.clone()) {
            meta = last;
        }
    }
    if let Some(message) = message.filter(|message| !message.is_empty()) {
        let key = if disable { "cancel_message" } else { "message" };
        meta.insert(key.to_string(), message.to_string());
    }
    for pair in pairs.iter().filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        meta.insert(key.to_string(), value.to_string());
    }
    meta
}

/// A line of the drain's progress, with the time it was seen.
fn say(message: &str) {
    crate::outln!("{}: {message}", ui::format_time(&Utc::now()));
}

/// A warning line (Nomad's `Ui.Warn`): on stderr, the command goes on.
fn warn(message: &str) {
    eprintln!("{}: {message}", ui::format_time(&Utc::now()));
}

/// Follows the drain of `node_id` until the node's drain is over and its
/// allocations have stopped (Nomad's `MonitorDrain`). A drain that ends
/// without completing (cancelled, by this or another user) ends the watch
/// at once: its allocations go on running, there is nothing to wait for.
async fn follow_drain(
    client: &Client,
    node_id: &str,
    index: u64,
    ignore_system: bool,
) -> CommandResult {
    let node = std::pin::pin!(follow_node(client, node_id, index));
    let allocs = std::pin::pin!(follow_allocs(client, node_id, ignore_system));
    match futures::future::select(node, allocs).await {
        Either::Left((ended, allocs)) => match ended? {
            DrainEnd::Complete => allocs.await,
            DrainEnd::Stopped => Ok(()),
        },
        Either::Right((stopped, node)) => {
            stopped?;
            node.await.map(|_| ())
        }
    }
}

/// How the node's drain ended.
#[derive(Debug, PartialEq, Eq)]
enum DrainEnd {
    /// Every allocation was told to move: they are stopping.
    Complete,
    /// Cancelled (or otherwise ended): the allocations stay.
    Stopped,
}

/// How a node without a drain strategy any more ended its drain.
fn drain_end(node: &Node) -> DrainEnd {
    match node.last_drain.as_ref().map(|last| last.status.as_str()) {
        Some(DRAIN_STATUS_CANCELED) => DrainEnd::Stopped,
        _ => DrainEnd::Complete,
    }
}

async fn follow_node(client: &Client, node_id: &str, index: u64) -> Result<DrainEnd, CommandError> {
    let mut options = QueryOptions {
        allow_stale: true,
        wait_index: index,
        wait_time: Some(WATCH_WAIT),
        ..QueryOptions::default()
    };
    let mut last_strategy = None;
    loop {
        let (node, meta) = client
            .nodes()
            .info(node_id, &options)
            .await
            .map_err(|error| failed_line(format!("Error monitoring node: {error}")))?;
        let Some(strategy) = node.drain_strategy.clone() else {
            let end = drain_end(&node);
            match end {
                DrainEnd::Complete => say(&format!("Drain complete for node {node_id}")),
                DrainEnd::Stopped => say(&format!(
                    "Drain canceled for node {node_id}: no longer monitoring its allocations"
                )),
            }
            return Ok(end);
        };
        if node.status == NODE_STATUS_DOWN {
            warn(&format!("Node {node_id:?} down"));
        }
        if last_strategy.as_ref().is_some_and(|last| *last != strategy) {
            say(&format!(
                "Node {node_id:?} drain updated: {}",
                super::status::drain_text(&Node {
                    drain_strategy: Some(strategy.clone()),
                    ..Node::default()
                })
            ));
        }
        last_strategy = Some(strategy);
        options.wait_index = meta.last_index;
    }
}

async fn follow_allocs(client: &Client, node_id: &str, ignore_system: bool) -> CommandResult {
    let mut options = QueryOptions {
        allow_stale: true,
        wait_time: Some(WATCH_WAIT),
        ..QueryOptions::default()
    };
    let mut seen: HashMap<String, Allocation> = HashMap::new();
    loop {
        let (allocs, meta) = client
            .nodes()
            .allocations(node_id, &options)
            .await
            .map_err(|error| failed_line(format!("Error monitoring allocations: {error}")))?;
        options.wait_index = meta.last_index;
        let mut running = 0;
        for alloc in allocs {
            if let Some(before) = seen.get(&alloc.id) {
                if let Some(change) = alloc_change(before, &alloc) {
                    crate::outln!(
                        "{}: Alloc {:?} {change}",
                        ui::format_time(&Utc::now()),
                        alloc.id
                    );
                }
            }
            let counts = match alloc.job.as_deref() {
                Some(job) => !(ignore_system && job.job_type == "system"),
                None => false,
            };
            if counts && matches!(alloc.client_status.as_str(), "pending" | "running") {
                running += 1;
            }
            seen.insert(alloc.id.clone(), alloc);
        }
        if running == 0 {
            say(&format!("All allocations on node {node_id:?} have stopped"));
            return Ok(());
        }
    }
}

/// What changed for an allocation since it was last seen, as a drain
/// reports it.
fn alloc_change(before: &Allocation, now: &Allocation) -> Option<String> {
    let migrating = |alloc: &Allocation| alloc.desired_transition.migrate == Some(true);
    if before.client_status != now.client_status {
        Some(format!(
            "status {} -> {}",
            before.client_status, now.client_status
        ))
    } else if migrating(now) && !migrating(before) {
        Some("marked for migration".to_string())
    } else if migrating(now)
        && before.desired_status != now.desired_status
        && now.desired_status == "stop"
    {
        Some("draining".to_string())
    } else {
        None
    }
}

/// An error of the monitor, printed as its other lines are.
fn failed_line(message: String) -> CommandError {
    CommandError::failed(format!("{}: {message}", ui::format_time(&Utc::now())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_follow_the_flags() {
        assert_eq!(deadline_nanos(None, true, false).unwrap(), -1_000_000_000);
        assert_eq!(deadline_nanos(None, false, true).unwrap(), 0);
        assert_eq!(
            deadline_nanos(None, false, false).unwrap(),
            DEFAULT_DEADLINE_NANOS
        );
        assert_eq!(
            deadline_nanos(Some("90s"), false, false).unwrap(),
            90_000_000_000
        );
        let bad = deadline_nanos(Some("soon"), false, false).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "Failed to parse deadline \"soon\": time: invalid duration \"soon\""
        );
        let negative = deadline_nanos(Some("-5m"), false, false).unwrap_err();
        assert_eq!(
            negative.to_string(),
            "A positive drain duration must be given"
        );
    }

    #[test]
    fn a_cancelled_drain_stops_the_watch() {
        let mut node = Node::default();
        assert_eq!(drain_end(&node), DrainEnd::Complete);
        node.last_drain = Some(caravan_api_types::node::LastDrain {
            status: DRAIN_STATUS_CANCELED.to_string(),
            ..Default::default()
        });
        assert_eq!(drain_end(&node), DrainEnd::Stopped);
    }

    #[test]
    fn meta_takes_message_and_pairs() {
        let node = Node::default();
        let meta = drain_meta(&node, false, Some("maintenance"), &["ticket=42", "flag"]);
        assert_eq!(meta["message"], "maintenance");
        assert_eq!(meta["ticket"], "42");
        assert_eq!(meta["flag"], "");
        let meta = drain_meta(&node, true, Some("done"), &[]);
        assert_eq!(meta["cancel_message"], "done");
    }

    #[test]
    fn alloc_changes_are_worded_as_nomad_words_them() {
        let before = Allocation {
            client_status: "running".into(),
            desired_status: "run".into(),
            ..Allocation::default()
        };
        let mut now = before.clone();
        assert_eq!(alloc_change(&before, &now), None);
        now.desired_transition.migrate = Some(true);
        assert_eq!(alloc_change(&before, &now).unwrap(), "marked for migration");
        let marked = now.clone();
        now.desired_status = "stop".into();
        assert_eq!(alloc_change(&marked, &now).unwrap(), "draining");
        now.client_status = "complete".into();
        assert_eq!(
            alloc_change(&marked, &now).unwrap(),
            "status running -> complete"
        );
    }
}
