//! `caravan alloc status`: one allocation, its tasks, their resources
//! and recent events.

use caravan_api_types::alloc::{Allocation, TaskEvent, TaskState};
use caravan_api_types::duration::format_go_duration_nanos;
use caravan_sdk::QueryOptions;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{ibytes, megabytes, resolve_value, ShortId};
use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::output::json_or_template;
use crate::ui;

const USAGE: &str = "Usage: caravan alloc status [options] <allocation>

  Display information about an allocation and its tasks.

Alloc Status Options:

  -short
    Display short output, without the tasks' resources and events.

  -verbose
    Show full-length IDs, exact times and placement metrics.

  -stats
    Display detailed resource usage statistics: each task's measured
    memory and CPU figures (without it, only used/given totals).

  -json
    Output the allocation in its JSON format.

  -t
    Format and display the allocation using a Go template.
";

pub fn status(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("alloc status", USAGE)
        .bool("short")
        .bool("verbose")
        .bool("stats")
        .bool("json")
        .value("t")
        .bool("ui");
    let parsed = flags.parse(args)?;
    let formatted = parsed.bool("json") || parsed.get("t").is_some();
    let client = parsed.client()?;
    if parsed.args.is_empty() && formatted {
        return crate::block_on(async {
            let (allocs, _): (Value, _) = client
                .get("/v1/allocations", &[], &QueryOptions::default())
                .await
                .map_err(|error| CommandError::call("querying allocations", error))?;
            json_or_template(&parsed, &allocs).map(|_| ())
        });
    }
    if parsed.args.len() != 1 {
        return Err(flags.usage_error(
            "This command takes one of the following argument conditions:\n * A single <allocation>\n * No arguments, with output format specified",
        ));
    }
    let verbose = parsed.bool("verbose");
    crate::block_on(async {
        let answer = resolve_value(&client, &parsed.args[0], ShortId::Identifier, verbose).await?;
        if json_or_template(&parsed, &answer)? {
            return Ok(());
        }
        let alloc: Allocation = crate::error::typed(answer, "querying allocation")?;
        if parsed.bool("short") {
            crate::outln!(
                "{}",
                ui::kv(&[
                    ("ID", alloc.id.clone()),
                    ("Name", alloc.name.clone()),
                    ("Created", ui::time_ago(alloc.create_time)),
                    ("Modified", ui::time_ago(alloc.modify_time)),
                ])
            );
            crate::outln!("\nTasks\n{}", short_tasks(&alloc));
            return Ok(());
        }
        crate::outln!("{}", basic_info(&alloc, verbose));
        if let Some(addresses) = addresses(&alloc) {
            crate::outln!("\n{addresses}");
        }
        let stats = match alloc.client_terminal() {
            true => None,
            false => match client.client().allocation_stats(&alloc.id).await {
                Ok(stats) => Some(stats),
                Err(error) => {
                    crate::outln!();
                    eprintln!("Couldn't retrieve stats: {error}");
                    None
                }
            },
        };
        for task in task_order(&alloc) {
            let Some(state) = alloc
                .task_states
                .as_ref()
                .and_then(|states| states.get(&task))
            else {
                continue;
            };
            crate::outln!(
                "\nTask {task:?}{} is {:?}",
                lifecycle_text(&alloc, &task),
                state.state
            );
            if let Some(resources) = task_resources(&alloc, &task, stats.as_ref()) {
                crate::outln!("Task Resources:\n{resources}");
            }
            let usage = stats
                .as_ref()
                .map(|stats| &stats["Tasks"][&task]["ResourceUsage"]);
            if let Some(usage) = usage.filter(|usage| parsed.bool("stats") && !usage.is_null()) {
                crate::outln!();
                crate::out!("{}", verbose_usage(usage));
            }
            crate::outln!();
            print_task_status(state);
        }
        if verbose {
            if let Some(metrics) = &alloc.metrics {
                crate::outln!(
                    "\nPlacement Metrics\n{}",
                    crate::monitor::format_alloc_metrics(metrics, "  ")
                );
            }
        }
        Ok(())
    })
}

fn basic_info(alloc: &Allocation, verbose: bool) -> String {
    let id = |id: &str| ui::short(id, verbose).to_string();
    let time = |nanos: i64| match verbose {
        true => ui::format_unix_nanos(nanos),
        false => ui::time_ago(nanos),
    };
    let version = alloc.job.as_deref().map_or(0, |job| job.version);
    let mut basic = vec![
        ("ID", alloc.id.clone()),
        ("Eval ID", id(&alloc.eval_id)),
        ("Name", alloc.name.clone()),
        ("Node ID", id(&alloc.node_id)),
        ("Node Name", alloc.node_name.clone()),
        ("Job ID", alloc.job_id.clone()),
        ("Job Version", version.to_string()),
        ("Client Status", alloc.client_status.clone()),
        ("Client Description", alloc.client_description.clone()),
        ("Desired Status", alloc.desired_status.clone()),
        ("Desired Description", alloc.desired_description.clone()),
        ("Created", time(alloc.create_time)),
        ("Modified", time(alloc.modify_time)),
    ];
    if !alloc.deployment_id.is_empty() {
        let status = alloc.deployment_status.as_ref();
        let health = match status.and_then(|status| status.healthy) {
            Some(true) => "healthy",
            Some(false) => "unhealthy",
            None => "unset",
        };
        basic.push(("Deployment ID", id(&alloc.deployment_id)));
        basic.push(("Deployment Health", health.to_string()));
        if status.is_some_and(|status| status.canary) {
            basic.push(("Canary", "true".to_string()));
        }
    }
    if !alloc.next_allocation.is_empty() {
        basic.push(("Replacement Alloc ID", id(&alloc.next_allocation)));
    }
    if let (true, Some(metrics)) = (verbose, &alloc.metrics) {
        basic.extend([
            ("Evaluated Nodes", metrics.nodes_evaluated.to_string()),
            ("Filtered Nodes", metrics.nodes_filtered.to_string()),
            ("Exhausted Nodes", metrics.nodes_exhausted.to_string()),
            (
                "Allocation Time",
                format_go_duration_nanos(metrics.allocation_time),
            ),
            ("Failures", metrics.coalesced_failures.to_string()),
        ]);
    }
    ui::kv(&basic)
}

/// The tasks by name, prestart tasks before sidecars before main tasks.
fn task_order(alloc: &Allocation) -> Vec<String> {
    let mut names: Vec<String> = alloc
        .task_states
        .as_ref()
        .map(|states| states.keys().cloned().collect())
        .unwrap_or_default();
    let rank = |name: &String| match lifecycle(alloc, name) {
        Some((_, false)) => 0,
        Some((_, true)) => 1,
        None => 2,
    };
    names.sort_by_key(|name| rank(name));
    names
}

/// The task's lifecycle hook and whether it is a sidecar.
fn lifecycle(alloc: &Allocation, task: &str) -> Option<(String, bool)> {
    let job = alloc.job.as_deref()?;
    let group = job
        .task_groups
        .iter()
        .find(|group| group.name == alloc.task_group)?;
    let task = group
        .tasks
        .iter()
        .find(|candidate| candidate.name == task)?;
    let lifecycle = task
        .lifecycle
        .as_ref()
        .filter(|lifecycle| !lifecycle.hook.is_empty())?;
    Some((lifecycle.hook.clone(), lifecycle.sidecar))
}

fn lifecycle_text(alloc: &Allocation, task: &str) -> String {
    match lifecycle(alloc, task) {
        Some((hook, true)) => format!(" ({hook} sidecar)"),
        Some((hook, false)) => format!(" ({hook})"),
        None => String::new(),
    }
}

/// `-short`'s one line per task.
fn short_tasks(alloc: &Allocation) -> String {
    let rows = task_order(alloc)
        .into_iter()
        .filter_map(|task| {
            let state = alloc.task_states.as_ref()?.get(&task)?;
            let last = state.events.as_ref().and_then(|events| events.last());
            Some(vec![
                task.clone(),
                state.state.clone(),
                last.map(|event| event.event_type.clone())
                    .unwrap_or_default(),
                last.map(|event| ui::format_unix_nanos(event.time))
                    .unwrap_or_default(),
                lifecycle(alloc, &task)
                    .map(|(hook, sidecar)| match sidecar {
                        true => format!("{hook} sidecar"),
                        false => hook,
                    })
                    .unwrap_or_else(|| "main".to_string()),
            ])
        })
        .collect();
    ui::table(&["Name", "State", "Last Event", "Time", "Lifecycle"], rows)
}

/// The task's CPU, memory and disk, as used/given when stats are known.
fn task_resources(alloc: &Allocation, task: &str, stats: Option<&Value>) -> Option<String> {
    let resources = alloc.allocated_resources.as_ref()?;
    let given = resources.tasks.get(task)?;
    let usage = stats.map(|stats| &stats["Tasks"][task]["ResourceUsage"]);
    let cpu = match usage {
        Some(usage) if !usage.is_null() => format!(
            "{}/{} MHz",
            usage["CpuStats"]["TotalTicks"]
                .as_f64()
                .unwrap_or(0.0)
                .floor(),
            given.cpu.cpu_shares
        ),
        _ => format!("{} MHz", given.cpu.cpu_shares),
    };
    let memory = match usage {
        Some(usage) if !usage.is_null() => {
            let memory = &usage["MemoryStats"];
            let used = match memory["Usage"].as_u64().unwrap_or(0) {
                0 => memory["RSS"].as_u64().unwrap_or(0),
                used => used,
            };
            format!("{}/{}", ibytes(used), megabytes(given.memory.memory_mb))
        }
        _ => megabytes(given.memory.memory_mb),
    };
    let mut rows = vec![vec![
        cpu,
        memory,
        megabytes(resources.shared.disk_mb),
        String::new(),
    ]];
    let max = given.memory.memory_max_mb;
    if max != 0 && max != given.memory.memory_mb {
        rows.push(vec![
            String::new(),
            format!("Max: {}", megabytes(max)),
            String::new(),
            String::new(),
        ]);
    }
    Some(ui::table(&["CPU", "Memory", "Disk", "Addresses"], rows))
}

/// `-stats`: the memory and CPU figures the client measured, as Nomad's
/// `outputVerboseResourceUsage` shows them.
fn verbose_usage(usage: &Value) -> String {
    let measured = |stats: &Value| -> Vec<String> {
        let mut names: Vec<String> = stats["Measured"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|name| name.as_str().map(str::to_string))
            .collect();
        names.sort();
        names
    };
    let mut text = String::new();
    let memory = &usage["MemoryStats"];
    let names = measured(memory);
    if !names.is_empty() {
        fn field(name: &str) -> &str {
            match name {
                "Max Usage" => "MaxUsage",
                "Kernel Usage" => "KernelUsage",
                "Kernel Max Usage" => "KernelMaxUsage",
                other => other,
            }
        }
        let row = names
            .iter()
            .map(|name| ibytes(memory[field(name)].as_u64().unwrap_or(0)))
            .collect();
        let header: Vec<&str> = names.iter().map(String::as_str).collect();
        text.push_str(&format!(
            "Memory Stats\n{}\n\n",
            ui::table(&header, vec![row])
        ));
    }
    let cpu = &usage["CpuStats"];
    let names = measured(cpu);
    if !names.is_empty() {
        let row = names
            .iter()
            .map(|name| {
                let number = |field: &str| cpu[field].as_f64().unwrap_or(0.0);
                match name.as_str() {
                    "Percent" => format!("{:.2}%", number("Percent")),
                    "User Mode" => format!("{:.2}%", number("UserMode")),
                    "System Mode" => format!("{:.2}%", number("SystemMode")),
                    "Throttled Periods" => number("ThrottledPeriods").to_string(),
                    "Throttled Time" => number("ThrottledTime").to_string(),
                    _ => String::new(),
                }
            })
            .collect();
        let header: Vec<&str> = names.iter().map(String::as_str).collect();
        text.push_str(&format!("CPU Stats\n{}\n", ui::table(&header, vec![row])));
    }
    text
}

fn task_time(time: &Option<DateTime<Utc>>) -> String {
    time.as_ref()
        .map(ui::format_time)
        .unwrap_or_else(|| "N/A".to_string())
}

fn print_task_status(state: &TaskState) {
    crate::outln!(
        "Task Events:\n{}",
        ui::kv(&[
            ("Started At", task_time(&state.started_at)),
            ("Finished At", task_time(&state.finished_at)),
            ("Total Restarts", state.restarts.to_string()),
            ("Last Restart", task_time(&state.last_restart)),
        ])
    );
    let rows = state
        .events
        .iter()
        .flatten()
        .rev()
        .map(|event| {
            vec![
                ui::format_unix_nanos(event.time),
                event.event_type.clone(),
                event_description(event),
            ]
        })
        .collect();
    crate::outln!(
        "\nRecent Events:\n{}",
        ui::table(&["Time", "Type", "Description"], rows)
    );
}

/// An event's description: the server's display message, else one made
/// from its fields as Nomad makes it.
pub(crate) fn event_description(event: &TaskEvent) -> String {
    if !event.display_message.is_empty() {
        return event.display_message.clone();
    }
    let or = |text: &str, fallback: &str| match text.is_empty() {
        true => fallback.to_string(),
        false => text.to_string(),
    };
    match event.event_type.as_str() {
        "Started" => "Task started by client".to_string(),
        "Received" => "Task received by client".to_string(),
        "Failed Validation" => or(&event.validation_error, "Validation of task failed"),
        "Setup Failure" => or(&event.setup_error, "Task setup failed"),
        "Driver Failure" => or(&event.driver_error, "Failed to start task"),
        "Downloading Artifacts" => "Client is downloading artifacts".to_string(),
        "Failed Artifact Download" => or(&event.download_error, "Failed to download artifacts"),
        "Killing" if !event.kill_reason.is_empty() => {
            format!("Killing task: {}", event.kill_reason)
        }
        "Killing" if event.kill_timeout != 0 => format!(
            "Sent interrupt. Waiting {} before force killing",
            format_go_duration_nanos(event.kill_timeout)
        ),
        "Killing" => "Sent interrupt".to_string(),
        "Killed" => or(&event.kill_error, "Task successfully killed"),
        "Terminated" => {
            let mut parts = vec![format!("Exit Code: {}", event.exit_code)];
            if event.signal != 0 {
                parts.push(format!("Signal: {}", event.signal));
            }
            if !event.message.is_empty() {
                parts.push(format!("Exit Message: {:?}", event.message));
            }
            parts.join(", ")
        }
        "Restarting" => {
            let delay = format!(
                "Task restarting in {}",
                format_go_duration_nanos(event.start_delay)
            );
            match event.restart_reason.as_str() {
                "" | "Restart within policy" => delay,
                reason => format!("{reason} - {delay}"),
            }
        }
        "Not Restarting" => or(&event.restart_reason, "Task exceeded restart policy"),
        "Sibling Task Failed" if !event.failed_sibling.is_empty() => {
            format!("Task's sibling {:?} failed", event.failed_sibling)
        }
        "Sibling Task Failed" => "Task's sibling failed".to_string(),
        "Signaling" => match (
            event.task_signal.as_str(),
            event.task_signal_reason.as_str(),
        ) {
            ("", "") => "Task being sent a signal".to_string(),
            ("", reason) => reason.to_string(),
            (signal, "") => format!("Task being sent signal {signal}"),
            (signal, reason) => format!("Task being sent signal {signal}: {reason}"),
        },
        "Restart Signaled" => or(&event.restart_reason, "Task signaled to restart"),
        "Driver" => event.driver_message.clone(),
        "Leader Task Dead" => "Leader Task in Group dead".to_string(),
        "Reconnected" => "Client reconnected".to_string(),
        _ => event.message.clone(),
    }
}

/// Nomad's `Allocation Addresses (mode = "host"):` table, when the
/// allocation's network has ports: `*label` for the group's ports (all
/// chosen by the scheduler), else the network's own dynamic and reserved
/// ports.
fn addresses(alloc: &Allocation) -> Option<String> {
    let shared = &alloc.allocated_resources.as_ref()?.shared;
    let network = shared.networks.as_ref()?.first()?;
    let mut rows = Vec::new();
    let mut add = |label: String, value: i64, to: i64, host: &str| {
        let mut address = format!("{host}:{value}");
        if to > 0 {
            address.push_str(&format!(" -> {to}"));
        }
        rows.push(vec![label, "yes".to_string(), address]);
    };
    match shared.ports.as_deref() {
        Some(ports) if !ports.is_empty() => {
            for port in ports {
                let (value, to) = (i64::from(port.value), i64::from(port.to));
                add(format!("*{}", port.label), value, to, &port.host_ip);
            }
        }
        _ => {
            let listed = [&network.dynamic_ports, &network.reserved_ports];
            for port in listed.into_iter().flatten().flatten() {
                let (value, to) = (i64::from(port.value), i64::from(port.to));
                add(port.label.clone(), value, to, &network.ip);
            }
        }
    }
    if rows.is_empty() {
        return None;
    }
    let mode = match network.mode.is_empty() {
        true => String::new(),
        false => format!(" (mode = {:?})", network.mode),
    };
    Some(format!(
        "Allocation Addresses{mode}:\n{}",
        ui::table(&["Label", "Dynamic", "Address"], rows)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_as_nomad_prints_them() {
        let alloc: Allocation = serde_json::from_value(serde_json::json!({
            "AllocatedResources": {"Shared": {
                "Networks": [{"Mode": "host", "IP": "10.0.0.1"}],
                "Ports": [{"Label": "http", "Value": 24561, "HostIP": "10.0.0.1"},
                          {"Label": "db", "Value": 5432, "To": 5433, "HostIP": "10.0.0.1"}]
            }}
        }))
        .unwrap();
        assert_eq!(
            addresses(&alloc).unwrap(),
            "Allocation Addresses (mode = \"host\"):\nLabel  Dynamic  Address\n*http  yes      10.0.0.1:24561\n*db    yes      10.0.0.1:5432 -> 5433"
        );
        assert!(addresses(&Allocation::default()).is_none());
    }

    fn event(event_type: &str) -> TaskEvent {
        TaskEvent {
            event_type: event_type.to_string(),
            ..TaskEvent::default()
        }
    }

    #[test]
    fn stats_show_what_was_measured() {
        let usage = serde_json::json!({
            "MemoryStats": {"RSS": 2048, "Usage": 4096, "MaxUsage": 0, "Measured": ["RSS", "Max Usage"]},
            "CpuStats": {"Percent": 12.345, "ThrottledPeriods": 3, "Measured": ["Throttled Periods", "Percent"]}
        });
        let text = verbose_usage(&usage);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Memory Stats");
        assert_eq!(lines[1], "Max Usage  RSS");
        assert_eq!(lines[2], "0 B        2.0 KiB");
        assert_eq!(lines[4], "CPU Stats");
        assert_eq!(lines[5], "Percent  Throttled Periods");
        assert_eq!(lines[6], "12.35%   3");
        assert_eq!(verbose_usage(&serde_json::json!({})), "");
    }

    #[test]
    fn events_are_described_from_their_fields() {
        assert_eq!(
            event_description(&event("Started")),
            "Task started by client"
        );
        let mut terminated = event("Terminated");
        terminated.exit_code = 2;
        terminated.signal = 9;
        assert_eq!(event_description(&terminated), "Exit Code: 2, Signal: 9");
        let mut killing = event("Killing");
        killing.kill_timeout = 5_000_000_000;
        assert_eq!(
            event_description(&killing),
            "Sent interrupt. Waiting 5s before force killing"
        );
        let mut restarting = event("Restarting");
        restarting.start_delay = 15_000_000_000;
        restarting.restart_reason = "Restart within policy".into();
        assert_eq!(event_description(&restarting), "Task restarting in 15s");
        let mut signaling = event("Signaling");
        signaling.task_signal = "SIGHUP".into();
        assert_eq!(
            event_description(&signaling),
            "Task being sent signal SIGHUP"
        );
        let mut shown = event("Started");
        shown.display_message = "custom".into();
        assert_eq!(event_description(&shown), "custom");
    }
}
