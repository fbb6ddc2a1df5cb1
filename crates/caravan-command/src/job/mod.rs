//! `caravan job ...`: Nomad's job commands. One file per command; what
//! several share (finding a job by prefix, the job list, the allocation
//! table, Nomad's four-space JSON) is here.

mod allocs;
mod deployments;
mod eval;
mod history;
mod init;
mod inspect;
mod jobfile;
mod run;
mod status;
mod stop;
mod validate;

use caravan_api_types::job::JobListStub;
use caravan_sdk::{Client, QueryOptions};

pub use allocs::allocs;
pub use deployments::deployments;
pub use eval::eval;
pub use history::history;
pub use init::init;
pub use inspect::inspect;
pub use run::run;
pub use status::status;
pub use stop::stop;
pub use validate::validate;

use crate::error::CommandError;
use crate::ui;

/// The job `ident` names: the one whose ID it is, else the only one whose
/// ID starts with it. Several matches are listed and the command fails.
pub(crate) async fn resolve(client: &Client, ident: &str) -> Result<JobListStub, CommandError> {
    let options = QueryOptions {
        prefix: Some(ident.to_string()),
        ..QueryOptions::default()
    };
    let (jobs, _) = client.jobs().list(&options).await.map_err(|error| {
        CommandError::failed(format!("Error querying job prefix {ident:?}: {error}"))
    })?;
    let all_namespaces = client.config().namespace.as_deref() == Some("*");
    // Nomad's texts for jobs (`JobIDByPrefix`): "ID", and the prefix named.
    crate::prefix::pick_or(
        jobs,
        ident,
        &format!("Prefix {ident:?} matched multiple jobs"),
        |job| job.id.as_str(),
        |jobs| list_output(jobs, all_namespaces),
        || CommandError::failed(format!("No job(s) with prefix or ID {ident:?} found")),
    )
}

/// Queries in the namespace the job was found in.
pub(crate) fn in_namespace(namespace: &str) -> QueryOptions {
    QueryOptions {
        namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
        ..QueryOptions::default()
    }
}

/// The job list (`ID  Type  Priority  Status  Submit Date`), with a
/// `Namespace` column when listing every namespace.
pub(crate) fn list_output(jobs: &[JobListStub], all_namespaces: bool) -> String {
    let rows = jobs
        .iter()
        .map(|job| {
            let mut row = vec![job.id.clone()];
            if all_namespaces {
                row.push(job.namespace.clone());
            }
            row.extend([
                type_string(job),
                job.priority.to_string(),
                status_string(&job.status, job.stop),
                ui::format_unix_nanos(job.submit_time),
            ]);
            row
        })
        .collect();
    match all_namespaces {
        true => ui::table(
            &[
                "ID",
                "Namespace",
                "Type",
                "Priority",
                "Status",
                "Submit Date",
            ],
            rows,
        ),
        false => ui::table(&["ID", "Type", "Priority", "Status", "Submit Date"], rows),
    }
}

/// `service`, `batch/periodic`, `batch/parameterized`.
pub(crate) fn type_string(job: &JobListStub) -> String {
    let mut text = job.job_type.clone();
    if job.periodic {
        text.push_str("/periodic");
    }
    if job.parameterized_job {
        text.push_str("/parameterized");
    }
    text
}

/// A job's status, `(stopped)` added when it was stopped.
pub(crate) fn status_string(status: &str, stop: bool) -> String {
    match stop {
        true => format!("{status} (stopped)"),
        false => status.to_string(),
    }
}

/// `-eval-priority`: 1 to 100, or unset.
pub(crate) fn eval_priority(flag: Option<&str>) -> Result<Option<u8>, CommandError> {
    let Some(text) = flag else {
        return Ok(None);
    };
    match text.parse::<u8>() {
        Ok(priority) if (1..=100).contains(&priority) => Ok(Some(priority)),
        // 0 is Nomad's "unset".
        Ok(0) => Ok(None),
        _ => Err(CommandError::failed(format!(
            "Eval priority must be between 1 and 100 inclusively, got {text:?}"
        ))),
    }
}

pub(crate) use crate::output::pretty_json;

#[cfg(test)]
mod tests {
    use super::*;

    fn stub(id: &str) -> JobListStub {
        serde_json::from_value(serde_json::json!({
            "ID": id, "ParentID": "", "Name": id, "Namespace": "default",
            "Datacenters": ["*"], "NodePool": "default", "Multiregion": null,
            "Type": "batch", "Priority": 50, "Periodic": true,
            "ParameterizedJob": false, "Stop": true, "Status": "dead",
            "StatusDescription": "", "JobSummary": null, "CreateIndex": 1,
            "ModifyIndex": 1, "JobModifyIndex": 1, "SubmitTime": 0
        }))
        .unwrap()
    }

    #[test]
    fn job_list_columns() {
        let text = list_output(&[stub("web1")], false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "ID    Type            Priority  Status          Submit Date"
        );
        assert_eq!(
            lines[1],
            "web1  batch/periodic  50        dead (stopped)  <none>"
        );
        let all = list_output(&[stub("web1")], true);
        assert!(all.starts_with("ID    Namespace  Type"), "{all}");
    }

    #[test]
    fn four_space_json() {
        let text = pretty_json(&serde_json::json!({"Job": {"ID": "x"}})).unwrap();
        assert_eq!(text, "{\n    \"Job\": {\n        \"ID\": \"x\"\n    }\n}");
    }
}
