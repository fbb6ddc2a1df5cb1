//! `caravan alloc ...`: one allocation's status, logs and files, and
//! stopping, restarting and signalling it, as Nomad's `alloc` commands.

mod fs;
mod lifecycle;
mod logs;
mod status;

pub use fs::fs;
pub use lifecycle::{restart, signal, stop};
pub(crate) use logs::job_alloc_id;
pub use logs::logs;
pub use status::status;

use caravan_api_types::alloc::{AllocListStub, Allocation};
use caravan_sdk::{Client, QueryOptions};
use serde_json::Value;

use crate::error::CommandError;
use crate::prefix::{pick, uuid_prefix};
use crate::ui;

/// Nomad's estimate of a log line's length, to turn `-n` lines into bytes.
pub(crate) const BYTES_PER_LINE: u64 = 120;
/// Lines `-tail` shows without `-n` or `-c`.
pub(crate) const DEFAULT_TAIL_LINES: u64 = 10;

/// Which text refuses a one-character ID: `alloc status` says
/// "Identifier", the commands that act on an allocation "Alloc ID".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShortId {
    Identifier,
    AllocId,
}

/// The allocation `ident` (an ID or a prefix of one) names, in full.
pub(crate) async fn resolve(
    client: &Client,
    ident: &str,
    short_id: ShortId,
    verbose: bool,
) -> Result<Allocation, CommandError> {
    let answer = resolve_value(client, ident, short_id, verbose).await?;
    crate::error::typed(answer, "querying allocation")
}

/// [`resolve`], the allocation kept as the API's JSON (for `-json`).
pub(crate) async fn resolve_value(
    client: &Client,
    ident: &str,
    short_id: ShortId,
    verbose: bool,
) -> Result<Value, CommandError> {
    if short_id == ShortId::AllocId && ident.chars().count() == 1 {
        return Err(CommandError::failed(
            "Alloc ID must contain at least two characters.",
        ));
    }
    let prefix = uuid_prefix(ident)?;
    let options = QueryOptions {
        prefix: Some(prefix),
        ..QueryOptions::default()
    };
    let query_error = |error| CommandError::call("querying allocation", error);
    let (stubs, _) = client
        .allocations()
        .list(&options)
        .await
        .map_err(query_error)?;
    let stub = pick(
        stubs,
        ident,
        "allocation",
        "allocations",
        |stub| stub.id.as_str(),
        |stubs| stub_list(stubs, verbose),
    )?;
    let options = QueryOptions {
        namespace: Some(stub.namespace.clone()).filter(|namespace| !namespace.is_empty()),
        ..QueryOptions::default()
    };
    let path = format!("/v1/allocation/{}", caravan_sdk::jobs::escape(&stub.id));
    let (alloc, _) = client
        .get(&path, &[], &options)
        .await
        .map_err(query_error)?;
    Ok(alloc)
}

/// Allocations as Nomad lists them (`formatAllocListStubs`): `job status`,
/// `job allocs`, `eval status`, `node status` and a prefix's matches.
pub(crate) fn stub_list(stubs: &[AllocListStub], verbose: bool) -> String {
    if stubs.is_empty() {
        return "No allocations placed".to_string();
    }
    let id = |id: &str| ui::short(id, verbose).to_string();
    if verbose {
        let rows = stubs
            .iter()
            .map(|stub| {
                vec![
                    id(&stub.id),
                    id(&stub.eval_id),
                    id(&stub.node_id),
                    stub.node_name.clone(),
                    stub.task_group.clone(),
                    stub.job_version.to_string(),
                    stub.desired_status.clone(),
                    stub.client_status.clone(),
                    ui::format_unix_nanos(stub.create_time),
                    ui::format_unix_nanos(stub.modify_time),
                ]
            })
            .collect();
        return ui::table(
            &[
                "ID",
                "Eval ID",
                "Node ID",
                "Node Name",
                "Task Group",
                "Version",
                "Desired",
                "Status",
                "Created",
                "Modified",
            ],
            rows,
        );
    }
    let rows = stubs
        .iter()
        .map(|stub| {
            vec![
                id(&stub.id),
                id(&stub.node_id),
                stub.task_group.clone(),
                stub.job_version.to_string(),
                stub.desired_status.clone(),
                stub.client_status.clone(),
                ui::time_ago(stub.create_time),
                ui::time_ago(stub.modify_time),
            ]
        })
        .collect();
    ui::table(
        &[
            "ID",
            "Node ID",
            "Task Group",
            "Version",
            "Desired",
            "Status",
            "Created",
            "Modified",
        ],
        rows,
    )
}

/// The names of the tasks of the allocation's group, in the job's order.
pub(crate) fn task_names(alloc: &Allocation) -> Result<Vec<String>, CommandError> {
    let group = alloc.job.as_deref().and_then(|job| {
        job.task_groups
            .iter()
            .find(|group| group.name == alloc.task_group)
    });
    match group {
        Some(group) => Ok(group.tasks.iter().map(|task| task.name.clone()).collect()),
        None => Err(CommandError::failed(format!(
            "Could not find allocation task group: {}",
            alloc.task_group
        ))),
    }
}

/// Fails unless the allocation's group has a task named `task`.
pub(crate) fn check_task(alloc: &Allocation, task: &str) -> Result<(), CommandError> {
    let names = task_names(alloc)?;
    if names.iter().any(|name| name == task) {
        return Ok(());
    }
    Err(CommandError::failed(format!(
        "Could not find task named: {task}, found:\n{}",
        names.join("\n")
    )))
}

/// The allocation's only task; several are listed for the user to pick.
pub(crate) fn only_task(alloc: &Allocation) -> Result<String, CommandError> {
    let names = task_names(alloc)?;
    if let [only] = names.as_slice() {
        return Ok(only.clone());
    }
    let mut text = format!(
        "Allocation {:?} is running the following tasks:\n",
        ui::limit(&alloc.id, ui::SHORT_ID)
    );
    for name in &names {
        text.push_str(&format!("  * {name}\n"));
    }
    text.push_str("\nPlease specify the task.");
    Err(CommandError::failed(text))
}

/// Bytes as Nomad prints sizes (go-humanize's `IBytes`: `1.5 KiB`).
pub(crate) fn ibytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 10 {
        return format!("{bytes} B");
    }
    let exponent = ((bytes as f64).ln() / 1024f64.ln()).floor() as usize;
    let exponent = exponent.min(UNITS.len() - 1);
    let value = (bytes as f64 / 1024f64.powi(exponent as i32) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[exponent])
    } else {
        format!("{value:.0} {}", UNITS[exponent])
    }
}

/// Megabytes (as resources count them) as [`ibytes`] prints them.
pub(crate) fn megabytes(megabytes: i64) -> String {
    ibytes(
        u64::try_from(megabytes)
            .unwrap_or(0)
            .saturating_mul(1024 * 1024),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_allocations() {
        assert_eq!(stub_list(&[], false), "No allocations placed");
    }

    #[test]
    fn sizes_print_as_go_humanize_does() {
        assert_eq!(ibytes(0), "0 B");
        assert_eq!(ibytes(9), "9 B");
        assert_eq!(ibytes(500), "500 B");
        assert_eq!(ibytes(1024), "1.0 KiB");
        assert_eq!(ibytes(1536), "1.5 KiB");
        assert_eq!(ibytes(300 * 1024 * 1024), "300 MiB");
        assert_eq!(megabytes(256), "256 MiB");
        assert_eq!(megabytes(-1), "0 B");
    }

    #[test]
    fn tasks_are_found_in_the_job() {
        let alloc: Allocation = serde_json::from_value(serde_json::json!({
            "ID": "0123456789", "TaskGroup": "g",
            "Job": {"ID": "j", "TaskGroups": [{"Name": "g", "Tasks": [
                {"Name": "a", "Driver": "raw_exec"}, {"Name": "b", "Driver": "raw_exec"}
            ]}]}
        }))
        .unwrap();
        assert_eq!(task_names(&alloc).unwrap(), ["a", "b"]);
        assert!(check_task(&alloc, "a").is_ok());
        let missing = check_task(&alloc, "c").unwrap_err().to_string();
        assert_eq!(missing, "Could not find task named: c, found:\na\nb");
        let several = only_task(&alloc).unwrap_err().to_string();
        assert_eq!(
            several,
            "Allocation \"01234567\" is running the following tasks:\n  * a\n  * b\n\nPlease specify the task."
        );
    }
}
