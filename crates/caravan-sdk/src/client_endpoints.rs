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

/// Where a read's offset counts from (Nomad's `origin`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Origin {
    #[default]
    Start,
    End,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::End => "end",
        }
    }
}

/// How to read a task's log: from where, and whether to go on reading as
/// it grows (a follow ends when the task does).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub origin: Origin,
    /// Bytes from `origin` (back from the end with [`Origin::End`]).
    pub offset: u64,
}

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
    /// Only a stat answers with it (sniffed from the file's first bytes).
    pub content_type: String,
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

    /// The whole file as its bytes, read as they arrive (a binary file
    /// comes back unchanged, where [`ClientEndpoints::cat`] reads text).
    pub async fn cat_stream(&self, alloc: &str, path: &str) -> Result<ByteStream, Error> {
        ByteStream::open(
            self.client,
            &format!("/v1/client/fs/cat/{alloc}"),
            &[("path", path.to_string())],
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

    /// A task's `stdout` or `stderr` as raw bytes while they arrive, read
    /// as `options` say (`plain=true`, so no framing to decode).
    pub async fn logs_stream(
        &self,
        alloc: &str,
        task: &str,
        stream: &str,
        options: LogOptions,
    ) -> Result<ByteStream, Error> {
        let query = [
            ("task", task.to_string()),
            ("type", stream.to_string()),
            ("plain", "true".to_string()),
            ("follow", options.follow.to_string()),
            ("origin", options.origin.as_str().to_string()),
            ("offset", options.offset.to_string()),
        ];
        ByteStream::open(self.client, &format!("/v1/client/fs/logs/{alloc}"), &query).await
    }

    /// A file followed as it grows (`/v1/client/fs/stream`), its framed
    /// answer decoded back to the file's bytes. It runs until dropped.
    pub async fn stream_file(
        &self,
        alloc: &str,
        path: &str,
        origin: Origin,
        offset: u64,
    ) -> Result<FrameStream, Error> {
        let query = [
            ("path", path.to_string()),
            ("origin", origin.as_str().to_string()),
            ("offset", offset.to_string()),
            ("follow", "true".to_string()),
        ];
        let bytes = ByteStream::open(
            self.client,
            &format!("/v1/client/fs/stream/{alloc}"),
            &query,
        )
        .await?;
        Ok(FrameStream::new(bytes))
    }

    /// `limit` bytes of a file from `offset` (all the rest when `None`).
    pub async fn read_at(
        &self,
        alloc: &str,
        path: &str,
        offset: u64,
        limit: Option<u64>,
    ) -> Result<String, Error> {
        let mut query = vec![("path", path.to_string()), ("offset", offset.to_string())];
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        self.client
            .get_text(
                &format!("/v1/client/fs/readat/{alloc}"),
                &query,
                &QueryOptions::default(),
            )
            .await
    }

    /// [`ClientEndpoints::read_at`] as bytes, read as they arrive.
    pub async fn read_at_stream(
        &self,
        alloc: &str,
        path: &str,
        offset: u64,
        limit: Option<u64>,
    ) -> Result<ByteStream, Error> {
        let mut query = vec![("path", path.to_string()), ("offset", offset.to_string())];
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        ByteStream::open(
            self.client,
            &format!("/v1/client/fs/readat/{alloc}"),
            &query,
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
        self.restart_with(alloc, task, false).await
    }

    /// Restarts `task`, or with `all_tasks` every task (prestart and
    /// poststop ones too), in place.
    pub async fn restart_with(
        &self,
        alloc: &str,
        task: &str,
        all_tasks: bool,
    ) -> Result<(), Error> {
        let body = json!({"TaskName": task, "AllTasks": all_tasks});
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

    /// Collects every terminal allocation on a node now (`PUT
    /// /v1/client/gc`; `node_id`: another node's, else the agent's own).
    pub async fn collect_all(&self, node_id: Option<&str>) -> Result<(), Error> {
        let extra: Vec<(&str, String)> = node_id
            .map(|node| vec![("node_id", node.to_string())])
            .unwrap_or_default();
        self.client
            .write::<(), Value>(
                Method::PUT,
                "/v1/client/gc",
                None,
                &extra,
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

/// A response body read as it arrives (a followed log, a file stream).
pub struct ByteStream {
    response: reqwest::Response,
    address: String,
}

impl ByteStream {
    async fn open(client: &Client, path: &str, query: &[(&str, String)]) -> Result<Self, Error> {
        let response = client.open_stream(path, query).await?;
        Ok(Self {
            response,
            address: client.config().address.clone(),
        })
    }

    /// The next bytes, or `None` when the server ended the body.
    pub async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, Error> {
        self.response
            .chunk()
            .await
            .map_err(|source| Error::Transport {
                address: self.address.clone(),
                source,
            })
    }
}

/// One frame of Nomad's stream framing (`{}` is a heartbeat).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StreamFrame {
    data: String,
    file_event: String,
}

/// Nomad's framed stream (JSON objects back to back, data in base64)
/// decoded to the bytes it carries.
pub struct FrameStream {
    bytes: ByteStream,
    buffer: Vec<u8>,
}

impl FrameStream {
    fn new(bytes: ByteStream) -> Self {
        Self {
            bytes,
            buffer: Vec::new(),
        }
    }

    /// The next data the stream carried, or `None` when it ended.
    pub async fn next_data(&mut self) -> Result<Option<Vec<u8>>, Error> {
        loop {
            while let Some(frame) = take_frame(&mut self.buffer)? {
                if !frame.data.is_empty() {
                    return decode_base64(&frame.data).map(Some);
                }
            }
            match self.bytes.next_chunk().await? {
                Some(chunk) => self.buffer.extend_from_slice(&chunk),
                None => return Ok(None),
            }
        }
    }
}

/// The first whole frame in `buffer`, removed from it; `None` until one
/// has fully arrived.
fn take_frame(buffer: &mut Vec<u8>) -> Result<Option<StreamFrame>, Error> {
    let mut frames = serde_json::Deserializer::from_slice(buffer).into_iter::<StreamFrame>();
    match frames.next() {
        Some(Ok(frame)) => {
            let used = frames.byte_offset();
            buffer.drain(..used);
            Ok(Some(frame))
        }
        Some(Err(error)) if error.is_eof() => Ok(None),
        Some(Err(error)) => Err(Error::Decode(error)),
        None => {
            // Only whitespace so far.
            buffer.clear();
            Ok(None)
        }
    }
}

/// Standard base64 (with padding), as Go encodes `[]byte` in JSON.
fn decode_base64(text: &str) -> Result<Vec<u8>, Error> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|error| Error::Config(format!("invalid base64 in a stream frame: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8h").unwrap(), b"hello!");
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64("//4AeA==").unwrap(), b"\xff\xfe\x00x");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert!(decode_base64("a").is_err());
        assert!(decode_base64("a$==").is_err());
    }

    #[test]
    fn frames_are_taken_whole_and_heartbeats_pass() {
        let mut buffer = br#"{}{"Offset":5,"Data":"aGVsbG8=","File":"f"}{"Off"#.to_vec();
        let heartbeat = take_frame(&mut buffer).unwrap().unwrap();
        assert!(heartbeat.data.is_empty());
        let frame = take_frame(&mut buffer).unwrap().unwrap();
        assert_eq!(decode_base64(&frame.data).unwrap(), b"hello");
        assert!(take_frame(&mut buffer).unwrap().is_none());
        assert_eq!(buffer, br#"{"Off"#);
        buffer.extend_from_slice(br#"set":1,"FileEvent":"file truncated"}"#);
        let event = take_frame(&mut buffer).unwrap().unwrap();
        assert_eq!(event.file_event, "file truncated");
        assert!(buffer.is_empty());
    }
}
