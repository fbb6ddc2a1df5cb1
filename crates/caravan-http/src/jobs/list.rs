//! `GET /v1/jobs`: job stubs with their summaries, by namespace then ID.

use caravan_api_types::job::JobListStub;
use caravan_state::Table;

use super::{query_namespace, visible, ALL_NAMESPACES};
use crate::blocking::blocking_query;
use crate::error::ApiError;
use crate::paginate::{compile_filter, paginate};
use crate::reply::Reply;
use crate::route::Request;

pub(super) async fn list(request: Request) -> Result<Reply, ApiError> {
    let namespace = query_namespace(&request);
    let with_meta = super::go_bool(&request, "meta")?.unwrap_or(false);
    if namespace != ALL_NAMESPACES {
        super::require_namespace(&request, &namespace, "list-jobs")?;
    }
    let filter = compile_filter(&request.query)?;
    let query = request.query.clone();
    let acl = request.identity.acl.clone();
    let keys = [Table::Jobs.into(), Table::JobSummaries.into()];
    let (index, (stubs, next_token)) = blocking_query(&request, &keys, |state| {
        let index = state.max_index(&[Table::Jobs, Table::JobSummaries]).max(1);
        let rows: Vec<(String, &caravan_api_types::job::Job)> = state
            .jobs()
            .filter(|job| visible(&acl, &namespace, &job.namespace, "list-jobs"))
            .filter(|job| job.id.starts_with(&query.prefix))
            .map(|job| (format!("{}.{}", job.namespace, job.id), job.as_ref()))
            .collect();
        // `?filter=` sees the whole job, as in Nomad.
        let page = paginate(
            rows.iter(),
            &query,
            filter.as_ref(),
            |row| row.1,
            |row| &row.0,
        )?;
        let stubs: Vec<JobListStub> = page
            .items
            .into_iter()
            .map(|(_, job)| {
                let summary = state.job_summary(&job.namespace, &job.id).cloned();
                job.stub(summary, with_meta)
            })
            .collect();
        Ok((index, (stubs, page.next_token)))
    })
    .await?;
    Ok(Reply::json(&stubs)?
        .query_index(index)
        .with_next_token(next_token))
}
