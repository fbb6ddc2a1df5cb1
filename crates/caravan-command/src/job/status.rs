//! `caravan job status [options] [JOB]`: the job list, or one job's
//! header, summary, evaluations and allocations.

use caravan_api_types::alloc::AllocListStub;
use caravan_api_types::eval::Evaluation;
use caravan_api_types::job::{Job, JobListStub, JobSummary};
use caravan_sdk::{Client, QueryOptions};
use serde::Serialize;

use crate::error::{CommandError, CommandResult};
use crate::flags::{FlagSet, Parsed};
use crate::monitor::format_alloc_metrics;
use crate::output::json_or_template;
use crate::ui;

const USAGE: &str = "Usage: caravan job status [options] <job>

  Display status information about a job. If no job ID is given, a list of
  all known jobs is displayed.

Status Options:

  -short
    Display short output: only the job's header.

  -evals
    Display the evaluations of the job.

  -all-allocs
    Display all allocations matching the job ID, also those of an earlier
    job that had the same name.

  -json
    Output the job's summary, allocations and evaluations in JSON format.

  -t
    Format and display them using a Go template.

  -verbose
    Display full information.
";

/// One job's data as `-json` prints it (Nomad's `JobJson`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct JobJson {
    summary: JobSummary,
    allocations: Vec<AllocListStub>,
    latest_deployment: Option<()>,
    evaluations: Vec<Evaluation>,
}

pub fn status(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("job status", USAGE)
        .bool("short")
        .bool("evals")
        .bool("all-allocs")
        .bool("json")
        .value("t")
        .bool("verbose")
        .bool("ui");
    let parsed = flags.parse_with(
        args,
        0,
        1,
        "This command takes either no arguments or one: <job>",
    )?;
    let client = parsed.client()?;
    crate::block_on(async {
        match parsed.arg(0) {
            None => list(&client, &parsed).await,
            Some(ident) => one(&client, &parsed, ident.trim()).await,
        }
    })
}

/// The job list (what `caravan status` with no ID prints too).
pub(crate) async fn list(client: &Client, parsed: &Parsed) -> CommandResult {
    let (jobs, _) = client
        .jobs()
        .list(&QueryOptions::default())
        .await
        .map_err(|error| CommandError::call("querying jobs", error))?;
    if jobs.is_empty() {
        crate::outln!("No running jobs");
        return Ok(());
    }
    if parsed.bool("json") || parsed.get("t").is_some() {
        let mut all = Vec::new();
        for job in &jobs {
            all.push(job_json(client, job, parsed.bool("all-allocs")).await?);
        }
        json_or_template(parsed, &all)?;
        return Ok(());
    }
    let all_namespaces = client.config().namespace.as_deref() == Some("*");
    crate::outln!("{}", super::list_output(&jobs, all_namespaces));
    Ok(())
}

async fn job_json(
    client: &Client,
    job: &JobListStub,
    all_allocs: bool,
) -> Result<JobJson, CommandError> {
    let query = super::in_namespace(&job.namespace);
    let (summary, _) = client
        .jobs()
        .summary(&job.id, &query)
        .await
        .map_err(|error| CommandError::call("querying job summary", error))?;
    let (allocations, _) = client
        .jobs()
        .allocations_all(&job.id, all_allocs, &query)
        .await
        .map_err(|error| CommandError::call("querying job allocations", error))?;
    let (evaluations, _) = client
        .jobs()
        .evaluations(&job.id, &query)
        .await
        .map_err(|error| CommandError::call("querying job evaluations", error))?;
    Ok(JobJson {
        summary,
        allocations,
        latest_deployment: None,
        evaluations,
    })
}

async fn one(client: &Client, parsed: &Parsed, ident: &str) -> CommandResult {
    let stub = super::resolve(client, ident).await?;
    let query = super::in_namespace(&stub.namespace);
    let (job, _) = client
        .jobs()
        .info(&stub.id, &query)
        .await
        .map_err(|error| CommandError::call("querying job", error))?;
    if parsed.bool("json") || parsed.get("t").is_some() {
        let data = vec![job_json(client, &stub, parsed.bool("all-allocs")).await?];
        json_or_template(parsed, &data)?;
        return Ok(());
    }
    crate::outln!("{}", ui::kv(&header(&job)));
    if parsed.bool("short") {
        return Ok(());
    }
    let periodic = job.periodic.is_some();
    let parameterized = is_parameterized(&job);
    let (summary, _) = client
        .jobs()
        .summary(&job.id, &query)
        .await
        .map_err(|error| CommandError::call("querying job summary", error))?;
    if let Some(parameters) = job.parameterized_job.as_ref().filter(|_| parameterized) {
        crate::outln!("\nParameterized Job");
        crate::outln!(
            "{}",
            ui::kv(&[
                ("Payload", parameters.payload.clone()),
                (
                    "Required Metadata",
                    parameters
                        .meta_required
                        .clone()
                        .unwrap_or_default()
                        .join(", ")
                ),
                (
                    "Optional Metadata",
                    parameters
                        .meta_optional
                        .clone()
                        .unwrap_or_default()
                        .join(", ")
                ),
            ])
        );
    }
    crate::out!(
        "{}",
        summary_text(&summary, periodic || parameterized, parameterized)
    );
    if periodic || parameterized {
        return children(client, &job, &query, parameterized).await;
    }
    let all_allocs = parsed.bool("all-allocs");
    let (allocs, _) = client
        .jobs()
        .allocations_all(&job.id, all_allocs, &query)
        .await
        .map_err(|error| CommandError::call("querying job allocations", error))?;
    let (evals, _) = client
        .jobs()
        .evaluations(&job.id, &query)
        .await
        .map_err(|error| CommandError::call("querying job evaluations", error))?;
    let verbose = parsed.bool("verbose");
    if verbose || parsed.bool("evals") {
        crate::outln!("\nEvaluations\n{}", evals_table(&evals, verbose));
    }
    // Placement failures are shown while a blocked evaluation still waits
    // to place them.
    let blocked = evals.iter().any(|eval| eval.status == "blocked");
    let latest_failed = evals
        .iter()
        .filter(|eval| {
            eval.failed_tg_allocs
                .as_ref()
                .is_some_and(|f| !f.is_empty())
        })
        .max_by_key(|eval| eval.create_index);
    if let (true, Some(failed)) = (blocked, latest_failed) {
        crate::outln!("\nPlacement Failure");
        let groups: Vec<String> = failed
            .failed_tg_allocs
            .iter()
            .flatten()
            .map(|(group, metrics)| {
                format!(
                    "Task Group \"{group}\":\n{}",
                    format_alloc_metrics(metrics, "  ")
                )
            })
            .collect();
        crate::outln!("{}", groups.join("\n\n"));
    }
    crate::outln!(
        "\nAllocations\n{}",
        crate::alloc::stub_list(&allocs, verbose)
    );
    Ok(())
}

/// Nomad's `IsParameterized`: a parameterized job that is not a child.
fn is_parameterized(job: &Job) -> bool {
    job.parameterized_job.is_some() && !job.dispatched
}

/// The job's `key = value` header.
fn header(job: &Job) -> Vec<(&'static str, String)> {
    let periodic = job.periodic.is_some();
    let parameterized = is_parameterized(job);
    let mut pairs = vec![
        ("ID", job.id.clone()),
        ("Name", job.name.clone()),
        ("Submit Date", ui::format_unix_nanos(job.submit_time)),
        ("Type", job.job_type.clone()),
        ("Priority", job.priority.to_string()),
        (
            "Datacenters",
            job.datacenters.clone().unwrap_or_default().join(","),
        ),
        ("Namespace", job.namespace.clone()),
        ("Node Pool", job.node_pool.clone()),
        ("Status", super::status_string(&job.status, job.stop)),
        ("Periodic", periodic.to_string()),
        ("Parameterized", parameterized.to_string()),
    ];
    if !job.dispatch_idempotency_token.is_empty() {
        pairs.push(("Idempotency Token", job.dispatch_idempotency_token.clone()));
    }
    if periodic && !parameterized && job.stop {
        pairs.push(("Next Periodic Launch", "none (job stopped)".to_string()));
    }
    pairs
}

/// The `Summary` table (ordinary jobs) and the children's summary
/// (periodic and parameterized parents, or any job that has children).
fn summary_text(summary: &JobSummary, has_children: bool, parameterized: bool) -> String {
    let mut text = String::new();
    if !has_children {
        let rows = summary
            .summary
            .iter()
            .map(|(group, counts)| {
                vec![
                    group.clone(),
                    counts.queued.to_string(),
                    counts.starting.to_string(),
                    counts.running.to_string(),
                    counts.failed.to_string(),
                    counts.complete.to_string(),
                    counts.lost.to_string(),
                    counts.unknown.to_string(),
                ]
            })
            .collect();
        let table = ui::table(
            &[
                "Task Group",
                "Queued",
                "Starting",
                "Running",
                "Failed",
                "Complete",
                "Lost",
                "Unknown",
            ],
            rows,
        );
        text.push_str(&format!("\nSummary\n{table}\n"));
    }
    let children = &summary.children;
    if has_children || children.pending + children.running + children.dead > 0 {
        let title = match parameterized {
            true => "Parameterized Job Summary",
            false => "Children Job Summary",
        };
        let table = ui::table(
            &["Pending", "Running", "Dead"],
            vec![vec![
                children.pending.to_string(),
                children.running.to_string(),
                children.dead.to_string(),
            ]],
        );
        text.push_str(&format!("\n{title}\n{table}\n"));
    }
    text
}

/// The children a periodic or parameterized job launched.
async fn children(
    client: &Client,
    job: &Job,
    query: &QueryOptions,
    parameterized: bool,
) -> CommandResult {
    let suffix = if parameterized {
        "/dispatch-"
    } else {
        "/periodic-"
    };
    let options = QueryOptions {
        prefix: Some(format!("{}{suffix}", job.id)),
        ..query.clone()
    };
    let (jobs, _) = client
        .jobs()
        .list(&options)
        .await
        .map_err(|error| CommandError::call("querying job", error))?;
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .filter(|child| child.parent_id == job.id)
        .map(|child| vec![child.id.clone(), child.status.clone()])
        .collect();
    match (rows.is_empty(), parameterized) {
        (true, true) => crate::outln!("\nNo dispatched instances of parameterized job found"),
        (true, false) => crate::outln!("\nNo instances of periodic job found"),
        (false, true) => crate::outln!("\nDispatched Jobs\n{}", ui::table(&["ID", "Status"], rows)),
        (false, false) => crate::outln!(
            "\nPreviously Launched Jobs\n{}",
            ui::table(&["ID", "Status"], rows)
        ),
    }
    Ok(())
}

/// The `Evaluations` table of `-evals` / `-verbose`.
fn evals_table(evals: &[Evaluation], verbose: bool) -> String {
    let rows = evals
        .iter()
        .map(|eval| {
            let failed = eval
                .failed_tg_allocs
                .as_ref()
                .is_some_and(|failed| !failed.is_empty());
            let failures = crate::eval::failure_text(failed, &eval.status);
            vec![
                ui::short(&eval.id, verbose).to_string(),
                eval.priority.to_string(),
                eval.triggered_by.clone(),
                eval.status.clone(),
                failures,
            ]
        })
        .collect();
    ui::table(
        &[
            "ID",
            "Priority",
            "Triggered By",
            "Status",
            "Placement Failures",
        ],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use caravan_api_types::job::TaskGroupSummary;

    #[test]
    fn summary_table_lists_every_group() {
        let mut summary = JobSummary::default();
        summary.summary.insert(
            "web".into(),
            TaskGroupSummary {
                running: 2,
                ..TaskGroupSummary::default()
            },
        );
        let text = summary_text(&summary, false, false);
        assert_eq!(
            text,
            "\nSummary\nTask Group  Queued  Starting  Running  Failed  Complete  Lost  Unknown\nweb         0       0         2        0       0         0     0\n"
        );
        let parent = summary_text(&summary, true, true);
        assert_eq!(
            parent,
            "\nParameterized Job Summary\nPending  Running  Dead\n0        0        0\n"
        );
    }

    #[test]
    fn evals_table_marks_blocked_evals() {
        let eval = Evaluation {
            id: "0123456789".into(),
            priority: 50,
            triggered_by: "job-register".into(),
            status: "blocked".into(),
            ..Evaluation::default()
        };
        let text = evals_table(&[eval], false);
        assert_eq!(
            text.lines().nth(1),
            Some("01234567  50        job-register  blocked  N/A - In Progress")
        );
    }
}
