//! Settling a start whose handle the client lost: the container carries
//! the start's attempt as a label, and the start's record (written once
//! the container runs) names it.

use std::collections::HashMap;
use std::path::PathBuf;

use bollard::query_parameters::ListContainersOptions;

use super::config::LABEL_ATTEMPT;
use super::{unreachable, Docker, DockerState, PROGRESS_FILE, STATE_DIR};
use crate::{DriverError, StartAttempt, TaskHandle};

impl Docker {
    pub(super) async fn find_task(
        &self,
        attempt: &StartAttempt,
    ) -> Result<Option<TaskHandle>, DriverError> {
        if attempt.attempt.is_empty() {
            return Err(DriverError::InvalidConfig(
                "a start without an attempt cannot be found".into(),
            ));
        }
        let engine = self.engine().await.map_err(unreachable)?;
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_ATTEMPT}={}", attempt.attempt)],
        )]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let found = engine
            .list_containers(Some(options))
            .await
            .map_err(unreachable)?;
        let Some(container) = found.into_iter().next() else {
            return Ok(None);
        };
        let id = container.id.unwrap_or_default();
        let record = std::fs::read(record_path(&attempt.task_dir, &attempt.attempt))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<DockerState>(&bytes).ok());
        let started = !matches!(
            container.state,
            Some(bollard::models::ContainerSummaryStateEnum::CREATED)
        );
        match record {
            // Made and started, and its record saved: found. Where its
            // progress is kept is the driver's own choice, not the record's.
            Some(mut state) if started && state.container_id == id => {
                state.logs.progress_file = attempt.task_dir.join(STATE_DIR).join(PROGRESS_FILE);
                Ok(Some(state.into_handle(attempt.task_id.clone())?))
            }
            // Created but never started, or its record never written: the
            // start did not finish; take the container away so a new
            // start runs one copy.
            _ => {
                Self::remove_by_name(&engine, &id).await?;
                Ok(None)
            }
        }
    }
}

/// Where a start's record goes, for `find`.
pub(super) fn record_path(task_dir: &std::path::Path, attempt: &str) -> PathBuf {
    let name = match attempt.is_empty() {
        true => "docker.json".to_string(),
        false => format!("docker.{}.json", attempt.replace(['/', '.'], "_")),
    };
    task_dir.join(STATE_DIR).join(name)
}
