//! The evaluation monitor `job run` and `job stop` enter: Nomad's lines
//! (`==> <time>: Monitoring evaluation "<id>"`, allocations created,
//! status changes, placement failures), then, because Caravan has no
//! deployments to follow, the placed allocations until they have started.
//!
//! Progress: on a terminal a live line is drawn and rewritten while
//! waiting; otherwise only plain lines are printed.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use caravan_api_types::alloc::AllocListStub;
use caravan_api_types::eval::{AllocMetric, Evaluation};
use caravan_sdk::{Client, QueryOptions};
use chrono::Utc;

use crate::error::{CommandError, CommandResult};
use crate::ui;

/// How long one poll may block waiting for a change (Nomad polls each
/// second; a blocking query answers sooner when something changes).
const POLL_WAIT: Duration = Duration::from_secs(1);

/// How long the placed allocations are followed before giving up on them
/// starting (the job keeps running; `job status` shows the rest).
const FOLLOW_LIMIT: Duration = Duration::from_secs(300);

/// How the monitor runs.
#[derive(Debug, Clone, Default)]
pub(crate) struct MonitorOptions {
    /// Full IDs instead of eight characters.
    pub verbose: bool,
    /// The namespace of the job whose evaluation this is.
    pub namespace: String,
}

/// What is known of one allocation of the evaluation.
#[derive(Debug, Clone, Default, PartialEq)]
struct AllocState {
    id: String,
    group: String,
    node: String,
    desired: String,
    client: String,
    client_description: String,
    create_index: u64,
}

/// What is known of the evaluation (Nomad's `evalState`).
#[derive(Debug, Clone, PartialEq)]
struct EvalState {
    status: String,
    node: String,
    job: String,
    deployment: String,
    allocs: BTreeMap<String, AllocState>,
    index: u64,
}

impl EvalState {
    fn pending() -> Self {
        Self {
            status: "pending".to_string(),
            node: String::new(),
            job: String::new(),
            deployment: String::new(),
            allocs: BTreeMap::new(),
            index: 0,
        }
    }

    fn of(eval: &Evaluation, allocs: &[AllocListStub]) -> Self {
        Self {
            status: eval.status.clone(),
            node: eval.node_id.clone(),
            job: eval.job_id.clone(),
            deployment: eval.deployment_id.clone(),
            allocs: alloc_states(allocs),
            index: eval.create_index,
        }
    }
}

fn alloc_states(allocs: &[AllocListStub]) -> BTreeMap<String, AllocState> {
    allocs
        .iter()
        .map(|alloc| {
            let state = AllocState {
                id: alloc.id.clone(),
                group: alloc.task_group.clone(),
                node: alloc.node_id.clone(),
                desired: alloc.desired_status.clone(),
                client: alloc.client_status.clone(),
                client_description: alloc.client_description.clone(),
                create_index: alloc.create_index,
            };
            (alloc.id.clone(), state)
        })
        .collect()
}

/// The lines a change from `old` to `new` prints (Nomad's `update`), each
/// with its four-space indent; `now` is the time they are stamped with.
fn changes(old: &EvalState, new: &EvalState, verbose: bool, now: &str) -> Vec<String> {
    let id = |id: &str| ui::short(id, verbose).to_string();
    let mut lines = Vec::new();
    if old.node.is_empty() && !new.node.is_empty() {
        lines.push(format!(
            "    {now}: Evaluation triggered by node \"{}\"",
            id(&new.node)
        ));
    }
    if old.job.is_empty() && !new.job.is_empty() {
        lines.push(format!(
            "    {now}: Evaluation triggered by job \"{}\"",
            new.job
        ));
    }
    if old.deployment.is_empty() && !new.deployment.is_empty() {
        lines.push(format!(
            "    {now}: Evaluation within deployment: \"{}\"",
            id(&new.deployment)
        ));
    }
    for alloc in new.allocs.values() {
        match old.allocs.get(&alloc.id) {
            None if alloc.create_index < new.index => lines.push(format!(
                "    {now}: Allocation \"{}\" modified: node \"{}\", group \"{}\"",
                id(&alloc.id),
                id(&alloc.node),
                alloc.group
            )),
            None if alloc.desired == "run" => lines.push(format!(
                "    {now}: Allocation \"{}\" created: node \"{}\", group \"{}\"",
                id(&alloc.id),
                id(&alloc.node),
                alloc.group
            )),
            None => {}
            Some(before) if before.client != alloc.client => {
                let description = match alloc.client_description.is_empty() {
                    true => String::new(),
                    false => format!(" ({})", alloc.client_description),
                };
                lines.push(format!(
                    "    {now}: Allocation \"{}\" status changed: \"{}\" -> \"{}\"{description}",
                    id(&alloc.id),
                    before.client,
                    alloc.client
                ));
            }
            Some(_) => {}
        }
    }
    // A move back to pending is not news (Nomad skips it too).
    if !old.status.is_empty() && new.status != "pending" && old.status != new.status {
        lines.push(format!(
            "    {now}: Evaluation status changed: \"{}\" -> \"{}\"",
            old.status, new.status
        ));
    }
    lines
}

/// Why a group could not be placed, one `* ...` line each (Nomad's
/// `formatAllocMetrics` without scores), every line starting `prefix`.
pub(crate) fn format_alloc_metrics(metrics: &AllocMetric, prefix: &str) -> String {
    let mut lines = Vec::new();
    if metrics.nodes_evaluated == 0 {
        lines.push(format!("{prefix}* No nodes were eligible for evaluation"));
    }
    for (datacenter, available) in metrics.nodes_available.iter().flatten() {
        if *available == 0 {
            lines.push(format!(
                "{prefix}* No nodes are available in datacenter \"{datacenter}\""
            ));
        }
    }
    for (class, count) in metrics.class_filtered.iter().flatten() {
        lines.push(format!(
            "{prefix}* Class \"{class}\": {count} nodes excluded by filter"
        ));
    }
    for (constraint, count) in metrics.constraint_filtered.iter().flatten() {
        lines.push(format!(
            "{prefix}* Constraint \"{constraint}\": {count} nodes excluded by filter"
        ));
    }
    if metrics.nodes_exhausted > 0 {
        lines.push(format!(
            "{prefix}* Resources exhausted on {} nodes",
            metrics.nodes_exhausted
        ));
    }
    for (class, count) in metrics.class_exhausted.iter().flatten() {
        lines.push(format!(
            "{prefix}* Class \"{class}\" exhausted on {count} nodes"
        ));
    }
    for (dimension, count) in metrics.dimension_exhausted.iter().flatten() {
        lines.push(format!(
            "{prefix}* Dimension \"{dimension}\" exhausted on {count} nodes"
        ));
    }
    for dimension in metrics.quota_exhausted.iter().flatten() {
        lines.push(format!("{prefix}* Quota limit hit \"{dimension}\""));
    }
    lines.join("\n")
}

/// `Task Group "web" (failed to place 2 allocations):`
pub(crate) fn failed_group_line(group: &str, metrics: &AllocMetric) -> String {
    let count = metrics.coalesced_failures + 1;
    let noun = match count > 1 {
        true => "allocations",
        false => "allocation",
    };
    format!("Task Group \"{group}\" (failed to place {count} {noun}):")
}

/// The lines of an evaluation that finished with placement failures.
fn failure_lines(eval: &Evaluation, verbose: bool, now: &str) -> Vec<String> {
    let mut lines = vec![format!(
        "==> {now}: Evaluation \"{}\" finished with status \"{}\" but failed to place all allocations:",
        ui::short(&eval.id, verbose),
        eval.status
    )];
    for (group, metrics) in eval.failed_tg_allocs.iter().flatten() {
        lines.push(format!("    {now}: {}", failed_group_line(group, metrics)));
        let text = format_alloc_metrics(metrics, "  ");
        lines.extend(text.lines().map(|line| format!("    {line}")));
    }
    if !eval.blocked_eval.is_empty() {
        lines.push(format!(
            "    {now}: Evaluation \"{}\" waiting for additional capacity to place remainder",
            ui::short(&eval.blocked_eval, verbose)
        ));
    }
    lines
}

/// A status line rewritten in place on a terminal; nothing elsewhere.
struct LiveLine {
    enabled: bool,
    shown: bool,
}

impl LiveLine {
    fn new() -> Self {
        Self {
            enabled: ui::stdout_is_terminal(),
            shown: false,
        }
    }

    fn show(&mut self, text: &str) {
        if !self.enabled {
            return;
        }
        let mut out = std::io::stdout().lock();
        // Carriage return and erase-line: the new text replaces the old.
        let _ = write!(out, "\r\x1b[2K{text}");
        let _ = out.flush();
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r\x1b[2K");
            let _ = out.flush();
            self.shown = false;
        }
    }

    /// Prints whole lines above the live line.
    fn print(&mut self, lines: &[String]) {
        if lines.is_empty() {
            return;
        }
        self.clear();
        for line in lines {
            crate::outln!("{line}");
        }
    }
}

fn now() -> String {
    ui::format_time(&Utc::now())
}

/// Monitors `eval_id` (and the evaluations it chains to) until it is
/// done, then follows the allocations it placed until they have started.
/// `Err(Exit(2))` when allocations could not be placed, as Nomad's.
pub(crate) async fn monitor(
    client: &Client,
    eval_id: &str,
    options: &MonitorOptions,
) -> CommandResult {
    let mut live = LiveLine::new();
    let mut eval_id = eval_id.to_string();
    let query = QueryOptions {
        namespace: (!options.namespace.is_empty()).then(|| options.namespace.clone()),
        ..QueryOptions::default()
    };
    loop {
        crate::outln!(
            "==> {}: Monitoring evaluation \"{}\"",
            now(),
            ui::short(&eval_id, options.verbose)
        );
        let (eval, state) = watch_eval(client, &eval_id, options, &query, &mut live).await?;
        let failed = eval
            .failed_tg_allocs
            .as_ref()
            .is_some_and(|groups| !groups.is_empty());
        match failed {
            true => live.print(&failure_lines(&eval, options.verbose, &now())),
            false => live.print(&[format!(
                "==> {}: Evaluation \"{}\" finished with status \"{}\"",
                now(),
                ui::short(&eval.id, options.verbose),
                eval.status
            )]),
        }
        if !eval.next_eval.is_empty() {
            if eval.wait > 0 {
                let wait = Duration::from_nanos(eval.wait.unsigned_abs());
                crate::outln!(
                    "==> {}: Monitoring next evaluation \"{}\" in {}",
                    now(),
                    ui::short(&eval.next_eval, options.verbose),
                    ui::duration_text(wait.as_secs())
                );
                tokio::time::sleep(wait).await;
            }
            eval_id = eval.next_eval.clone();
            continue;
        }
        let started = follow_allocations(client, &eval.id, state, options, &query, &mut live);
        let problem = started.await?;
        // Following the allocations stands in for Nomad's deployment
        // monitor, which fails a service job's run when they fail; a batch
        // job's run (no deployment in Nomad) ends 0 whatever its tasks do.
        let batch = matches!(eval.eval_type.as_str(), "batch" | "sysbatch");
        return match (failed, problem) {
            (true, _) => Err(CommandError::Exit(2)),
            (false, Some(problem)) if batch => {
                crate::outln!("    {}: {problem}", now());
                Ok(())
            }
            (false, Some(problem)) => Err(CommandError::Failed(problem)),
            (false, None) => Ok(()),
        };
    }
}

/// Polls the evaluation until it is terminal, printing what changes.
async fn watch_eval(
    client: &Client,
    eval_id: &str,
    options: &MonitorOptions,
    query: &QueryOptions,
    live: &mut LiveLine,
) -> Result<(Evaluation, EvalState), CommandError> {
    let mut state = EvalState::pending();
    let mut wait_index = 0;
    live.show(&format!(
        "    {}: Waiting for evaluation \"{}\" to be processed",
        now(),
        ui::short(eval_id, options.verbose)
    ));
    loop {
        let blocking = QueryOptions {
            wait_index,
            wait_time: Some(POLL_WAIT),
            ..query.clone()
        };
        let (eval, meta) = match client.evaluations().info(eval_id, &blocking).await {
            Ok(answer) => answer,
            Err(error) if error.status() == Some(404) => {
                live.clear();
                return Err(CommandError::failed(format!(
                    "No evaluation with id \"{eval_id}\" found"
                )));
            }
            Err(error) => {
                live.clear();
                return Err(CommandError::call("reading evaluation", error));
            }
        };
        wait_index = meta.last_index;
        let (allocs, _) = client
            .evaluations()
            .allocations(eval_id, query)
            .await
            .map_err(|error| {
                live.clear();
                CommandError::call("reading allocations", error)
            })?;
        let next = EvalState::of(&eval, &allocs);
        live.print(&changes(&state, &next, options.verbose, &now()));
        state = next;
        if eval.terminal() {
            live.clear();
            return Ok((eval, state));
        }
        live.show(&format!(
            "    {}: Evaluation \"{}\" is {}",
            now(),
            ui::short(eval_id, options.verbose),
            eval.status
        ));
    }
}

/// Whether an allocation is still to start: placed to run, not yet
/// running or finished.
fn starting(alloc: &AllocState) -> bool {
    alloc.desired == "run" && alloc.client == "pending"
}

/// Follows the allocations the evaluation created until none is pending
/// (Caravan has no deployments; this is what stands in for following
/// one). What went wrong when one failed or they did not start in time.
async fn follow_allocations(
    client: &Client,
    eval_id: &str,
    mut state: EvalState,
    options: &MonitorOptions,
    query: &QueryOptions,
    live: &mut LiveLine,
) -> Result<Option<String>, CommandError> {
    let watched: Vec<String> = state
        .allocs
        .values()
        .filter(|alloc| alloc.create_index >= state.index && starting(alloc))
        .map(|alloc| alloc.id.clone())
        .collect();
    if watched.is_empty() {
        return Ok(None);
    }
    let noun = if watched.len() == 1 {
        "allocation"
    } else {
        "allocations"
    };
    crate::outln!(
        "==> {}: Waiting for {} {noun} to start",
        now(),
        watched.len()
    );
    let began = Instant::now();
    let mut wait_index = 0;
    loop {
        let pending = watched
            .iter()
            .filter(|id| state.allocs.get(*id).is_some_and(starting))
            .count();
        if pending == 0 {
            live.clear();
            let failed = watched
                .iter()
                .filter_map(|id| state.allocs.get(id))
                .filter(|alloc| matches!(alloc.client.as_str(), "failed" | "lost"))
                .count();
            return Ok((failed > 0).then(|| {
                format!(
                    "{failed} of {} {noun} failed; see `caravan job status {}`",
                    watched.len(),
                    state.job
                )
            }));
        }
        if began.elapsed() > FOLLOW_LIMIT {
            live.clear();
            return Ok(Some(format!(
                "{pending} {noun} still pending after {}; see `caravan job status {}`",
                ui::duration_text(FOLLOW_LIMIT.as_secs()),
                state.job
            )));
        }
        live.show(&format!(
            "    {}: {pending} of {} pending ({} elapsed)",
            now(),
            watched.len(),
            ui::duration_text(began.elapsed().as_secs())
        ));
        let blocking = QueryOptions {
            wait_index,
            wait_time: Some(POLL_WAIT),
            ..query.clone()
        };
        let (allocs, meta) = client
            .evaluations()
            .allocations(eval_id, &blocking)
            .await
            .map_err(|error| {
                live.clear();
                CommandError::call("reading allocations", error)
            })?;
        // An index that did not move means the wait timed out; a short
        // pause keeps a server that does not block from being hammered.
        if meta.last_index == wait_index {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        wait_index = meta.last_index;
        let next = EvalState {
            allocs: alloc_states(&allocs),
            ..state.clone()
        };
        live.print(&changes(&state, &next, options.verbose, &now()));
        state = next;
    }
}

#[cfg(test)]
mod tests;
