//! `/v1/client`: an allocation's files and logs, its resource use,
//! signals, restarts and collection, and the node's own stats, answered
//! by the node that runs the allocation (any agent relays).
//!
//! ```no_run
//! # async fn example(client: caravan_sdk::Client, alloc: &str) -> Result<(), caravan_sdk::Error> {
//! let output = client.client().logs(alloc, "web", "stdout").await?;
//! let files = client.client().list_files(alloc, "alloc/logs").await?;
//! client.client().signal(alloc, "web", "SIGHUP").await?;
//! # Ok(())
//! # }
//! ```

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{Client, Error, QueryOptions, WriteOptions};

pub struct ClientEndpoints<'a> {
    pub(crate) client: &'a Client,
}

/// One entry of a directory listing, or a file's stat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocFileInfo {
    pub name: String,
    pub is_dir: bool,
    pub size: i64,
    pub file_mode: String,
    pub mod_time: String,
}

impl ClientEndpoints<'_> {
    /// The entries of `path` in the allocation's directory.
    pub async fn list_files(&self, alloc: &str, path: &str) -> Result<Vec<AllocFileInfo>, Error> {
        let (files, _) = self
            .client
            .get(
                &format!("/v1/client/fs/ls/{alloc}"),
                &[("path", path.to_string())],
                &QueryOptions::default(),
            )
            .await?;
        Ok(files)
    }

    pub async fn stat_file(&self, alloc: &str, path: &str) -> Result<AllocFileInfo, Error> {
        let (file, _) = self
            .client
            .get(
                &format!("/v1/client/fs/stat/{alloc}"),
                &[("path", path.to_string())],
                &QueryOptions::default(),
            )
            .await?;
        Ok(file)
    }

    /// The whole file (bounded by the agent).
    pub async fn cat(&self, alloc: &str, path: &str) -> Result<String, Error> {
        self.client
            .get_text(
                &format!("/v1/client/fs/cat/{alloc}"),
                &[("path", path.to_string())],
                &QueryOptions::default(),
            )
            .await
    }

    /// A task's `stdout` or `stderr` so far, as plain text.
    pub async fn logs(&self, alloc: &str, task: &str, stream: &str) -> Result<String, Error> {
        self.client
            .get_text(
                &format!("/v1/client/fs/logs/{alloc}"),
                &[
                    ("task", task.to_string()),
                    ("type", stream.to_string()),
                    ("plain", "true".to_string()),
                ],
                &QueryOptions::default(),
            )
            .await
    }

    /// What the allocation's tasks use now.
    pub async fn allocation_stats(&self, alloc: &str) -> Result<Value, Error> {
        let (stats, _) = self
            .client
            .get(
                &format!("/v1/client/allocation/{alloc}/stats"),
                &[],
                &QueryOptions::default(),
            )
            .await?;
        Ok(stats)
    }

    /// Sends `signal` to `task` (every task when empty).
    pub async fn signal(&self, alloc: &str, task: &str, signal: &str) -> Result<(), Error> {
        let body = json!({"Signal": signal, "Task": task});
        self.client
            .write::<_, Value>(
                Method::PUT,
                &format!("/v1/client/allocation/{alloc}/signal"),
                Some(&body),
                &[],
                &WriteOptions::default(),
            )
            .await?;
        Ok(())
    }

    /// Restarts `task` (every running task when empty) in place.
    pub async fn restart(&self, alloc: &str, task: &str) -> Result<(), Error> {
        let body = json!({"TaskName": task});
        self.client
            .write::<_, Value>(
                Method::PUT,
                &format!("/v1/client/allocation/{alloc}/restart"),
                Some(&body),
                &[],
                &WriteOptions::default(),
            )
            .await?;
        Ok(())
    }

    /// Removes a terminal allocation's directory from its node.
    pub async fn collect(&self, alloc: &str) -> Result<(), Error> {
        self.client
            .write::<(), Value>(
                Method::PUT,
                &format!("/v1/client/allocation/{alloc}/gc"),
                None,
                &[],
                &WriteOptions::default(),
            )
            .await?;
        Ok(())
    }

    /// The node's own CPU, memory and disk use (`node_id`: another node's).
    pub async fn host_stats(&self, node_id: Option<&str>) -> Result<Value, Error> {
        let extra: Vec<(&str, String)> = node_id
            .map(|id| vec![("node_id", id.to_string())])
            .unwrap_or_default();
        let (stats, _) = self
            .client
            .get("/v1/client/stats", &extra, &QueryOptions::default())
            .await?;
        Ok(stats)
    }
}
