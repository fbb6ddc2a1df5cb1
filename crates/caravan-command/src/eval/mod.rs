//! `caravan eval ...`: evaluations (the scheduler's work items), one in
//! detail with why placements failed, or the list of them.

mod delete;

pub use delete::delete;

use caravan_api_types::eval::{Evaluation, EvaluationStub};
use caravan_sdk::QueryOptions;

use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::output::json_or_template;
use crate::prefix::{pick, uuid_prefix};
use crate::ui;

const STATUS_USAGE: &str = "Usage: caravan eval status [options] <evaluation>

  Display information about an evaluation and why it could not place
  allocations, if it could not.

Eval Status Options:

  -monitor
    Monitor the evaluation until it completes.

  -verbose
    Show full-length IDs, exact times and placement scores.

  -json
    Output the evaluation in its JSON format.

  -t
    Format and display the evaluation using a Go template.
";

const LIST_USAGE: &str = "Usage: caravan eval list [options]

  List the evaluations.

Eval List Options:

  -verbose
    Show full-length IDs.

  -job <job-id>
    Only the evaluations of this job.

  -status <status>
    Only the evaluations with this status.

  -filter <expression>, -per-page <n>, -page-token <token>
    Filter and paginate the list.

  -json, -t <template>
    Output the list as JSON, or through a Go template.
";

pub fn status(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("eval status", STATUS_USAGE)
        .bool("monitor")
        .bool("verbose")
        .bool("json")
        .value("t");
    let parsed = flags.parse_with(args, 1, 1, "This command takes one argument")?;
    let ident = &parsed.args[0];
    if parsed.bool("json") && parsed.get("t").is_some() {
        return Err(CommandError::failed(
            "Both json and template formatting are not allowed",
        ));
    }
    let verbose = parsed.bool("verbose");
    let client = parsed.client()?;
    crate::block_on(async {
        let options = QueryOptions {
            prefix: Some(uuid_prefix(ident)?),
            ..QueryOptions::default()
        };
        let doing = "querying evaluation";
        let (evals, _) = client
            .evaluations()
            .list(&options)
            .await
            .map_err(|error| CommandError::call(doing, error))?;
        let stub = pick(
            evals,
            ident,
            "evaluation",
            "evaluations",
            |eval| eval.id.as_str(),
            |evals| eval_list(evals, verbose),
        )?;
        if parsed.bool("monitor") {
            let options = crate::monitor::MonitorOptions {
                verbose,
                namespace: stub.namespace.clone(),
            };
            return crate::monitor::monitor(&client, &stub.id, &options).await;
        }
        // Kept as the server wrote it, so -json shows the API's JSON.
        let path = format!("/v1/evaluation/{}", caravan_sdk::jobs::escape(&stub.id));
        let (answer, _): (serde_json::Value, _) = client
            .get(&path, &[], &QueryOptions::default())
            .await
            .map_err(|error| CommandError::call(doing, error))?;
        if json_or_template(&parsed, &answer)? {
            return Ok(());
        }
        let eval: Evaluation = crate::error::typed(answer, doing)?;
        let (placed, _) = client
            .evaluations()
            .allocations(&eval.id, &QueryOptions::default())
            .await
            .map_err(|error| CommandError::call("querying related allocations", error))?;
        print_eval(&eval, verbose);
        if !placed.is_empty() {
            crate::outln!(
                "\nPlaced Allocations\n{}",
                crate::alloc::stub_list(&placed, verbose)
            );
        }
        print_failures(&eval, verbose);
        Ok(())
    })
}

/// `Placement Failures`: whether there were any (unknown while blocked).
pub(crate) fn failure_text(failed: bool, status: &str) -> String {
    match status {
        "blocked" => "N/A - In Progress".to_string(),
        _ => failed.to_string(),
    }
}

fn print_eval(eval: &Evaluation, verbose: bool) {
    let id = |id: &str| ui::short(id, verbose).to_string();
    let time = |nanos: i64| match verbose {
        true => ui::format_unix_nanos(nanos),
        false => ui::time_ago(nanos),
    };
    let failed = eval
        .failed_tg_allocs
        .as_ref()
        .is_some_and(|failed| !failed.is_empty());
    let description = match eval.status_description.is_empty() {
        true => eval.status.clone(),
        false => eval.status_description.clone(),
    };
    let mut basic = vec![
        ("ID", id(&eval.id)),
        ("Create Time", time(eval.create_time)),
        ("Modify Time", time(eval.modify_time)),
        ("Status", eval.status.clone()),
        ("Status Description", description),
        ("Type", eval.eval_type.clone()),
        ("TriggeredBy", eval.triggered_by.clone()),
        ("Job ID", eval.job_id.clone()),
        ("Namespace", eval.namespace.clone()),
    ];
    match eval.triggered_by.as_str() {
        "node-update" if !eval.node_id.is_empty() => basic.push(("Node ID", eval.node_id.clone())),
        "max-plan-attempts" if !eval.previous_eval.is_empty() => {
            basic.push(("Previous Eval", eval.previous_eval.clone()))
        }
        _ => {}
    }
    basic.push(("Priority", eval.priority.to_string()));
    basic.push(("Placement Failures", failure_text(failed, &eval.status)));
    if let Some(wait_until) = &eval.wait_until {
        basic.push(("Wait Until", ui::format_time(wait_until)));
    }
    if !eval.quota_limit_reached.is_empty() {
        basic.push(("Quota Limit Reached", eval.quota_limit_reached.clone()));
    }
    basic.extend([
        ("Previous Eval", id(&eval.previous_eval)),
        ("Next Eval", id(&eval.next_eval)),
        ("Blocked Eval", id(&eval.blocked_eval)),
    ]);
    crate::outln!("{}", ui::kv(&basic));
    if let Some(related) = eval
        .related_evals
        .as_ref()
        .filter(|related| !related.is_empty())
    {
        let rows = related
            .iter()
            .map(|stub| {
                vec![
                    id(&stub.id),
                    stub.priority.to_string(),
                    stub.triggered_by.clone(),
                    id(&stub.node_id),
                    stub.status.clone(),
                    stub.status_description.clone(),
                ]
            })
            .collect();
        let header = [
            "ID",
            "Priority",
            "Triggered By",
            "Node ID",
            "Status",
            "Description",
        ];
        crate::outln!("\nRelated Evaluations\n{}", ui::table(&header, rows));
    }
}

fn print_failures(eval: &Evaluation, verbose: bool) {
    let Some(failed) = eval
        .failed_tg_allocs
        .as_ref()
        .filter(|failed| !failed.is_empty())
    else {
        return;
    };
    crate::outln!("\nFailed Placements");
    for (group, metrics) in failed {
        crate::outln!("{}", crate::monitor::failed_group_line(group, metrics));
        crate::outln!("{}", crate::monitor::format_alloc_metrics(metrics, "  "));
    }
    if !eval.blocked_eval.is_empty() {
        crate::outln!(
            "\nEvaluation {:?} waiting for additional capacity to place remainder",
            ui::short(&eval.blocked_eval, verbose)
        );
    }
}

pub fn list(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("eval list", LIST_USAGE)
        .bool("verbose")
        .bool("json")
        .value("t")
        .value("per-page")
        .value("page-token")
        .value("filter")
        .value("job")
        .value("status");
    let parsed = flags.parse_with(args, 0, 0, "This command takes no arguments")?;
    let per_page = crate::prompt::per_page(&parsed, &flags)?;
    let client = parsed.client()?;
    crate::block_on(async {
        let options = QueryOptions {
            filter: parsed.get("filter").map(str::to_string),
            per_page,
            next_token: parsed.get("page-token").map(str::to_string),
            ..QueryOptions::default()
        };
        let mut extra = Vec::new();
        for name in ["job", "status"] {
            if let Some(value) = parsed.get(name).filter(|value| !value.is_empty()) {
                extra.push((name, value.to_string()));
            }
        }
        // Kept as the server wrote it, so -json shows the API's JSON.
        let (answer, meta): (serde_json::Value, _) = client
            .get("/v1/evaluations", &extra, &options)
            .await
            .map_err(|error| CommandError::call("querying evaluations", error))?;
        if json_or_template(&parsed, &answer)? {
            return Ok(());
        }
        let evals: Vec<Evaluation> = serde_json::from_value(answer).map_err(|error| {
            CommandError::failed(format!("Error querying evaluations: {error}"))
        })?;
        if evals.is_empty() {
            crate::outln!("No evals found");
            return Ok(());
        }
        let stubs: Vec<EvaluationStub> = evals.iter().map(Evaluation::stub).collect();
        let failures: Vec<bool> = evals
            .iter()
            .map(|eval| {
                eval.failed_tg_allocs
                    .as_ref()
                    .is_some_and(|f| !f.is_empty())
            })
            .collect();
        crate::outln!("{}", eval_rows(&stubs, &failures, parsed.bool("verbose")));
        if let Some(token) = meta.next_token {
            crate::outln!("{}", crate::prompt::next_page_hint(&token));
        }
        Ok(())
    })
}

/// Evaluations as listed when a prefix matched several of them.
fn eval_list(evals: &[EvaluationStub], verbose: bool) -> String {
    eval_rows(evals, &vec![false; evals.len()], verbose)
}

fn eval_rows(evals: &[EvaluationStub], failures: &[bool], verbose: bool) -> String {
    let rows = evals
        .iter()
        .zip(failures)
        .map(|(eval, failed)| {
            vec![
                ui::short(&eval.id, verbose).to_string(),
                eval.priority.to_string(),
                eval.triggered_by.clone(),
                eval.job_id.clone(),
                eval.namespace.clone(),
                ui::short(&eval.node_id, verbose).to_string(),
                eval.status.clone(),
                failure_text(*failed, &eval.status),
            ]
        })
        .collect();
    ui::table(
        &[
            "ID",
            "Priority",
            "Triggered By",
            "Job ID",
            "Namespace",
            "Node ID",
            "Status",
            "Placement Failures",
        ],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::{failed_group_line, format_alloc_metrics as metrics_text};
    use caravan_api_types::eval::AllocMetric;
    use std::collections::BTreeMap;

    #[test]
    fn failed_placements_read_as_nomad_writes_them() {
        let metrics = AllocMetric {
            nodes_evaluated: 1,
            coalesced_failures: 2,
            nodes_exhausted: 1,
            dimension_exhausted: Some(BTreeMap::from([("memory".to_string(), 1)])),
            constraint_filtered: Some(BTreeMap::from([("missing drivers".to_string(), 3)])),
            ..AllocMetric::default()
        };
        assert_eq!(
            failed_group_line("web", &metrics),
            "Task Group \"web\" (failed to place 3 allocations):"
        );
        assert_eq!(
            metrics_text(&metrics, "  "),
            "  * Constraint \"missing drivers\": 3 nodes excluded by filter\n  * Resources exhausted on 1 nodes\n  * Dimension \"memory\" exhausted on 1 nodes"
        );
        let none = AllocMetric::default();
        assert_eq!(
            failed_group_line("g", &none),
            "Task Group \"g\" (failed to place 1 allocation):"
        );
        assert_eq!(
            metrics_text(&none, ""),
            "* No nodes were eligible for evaluation"
        );
        assert_eq!(failure_text(true, "blocked"), "N/A - In Progress");
        assert_eq!(failure_text(false, "complete"), "false");
    }
}
