//! The client filesystem and logs endpoints, `/v1/client/fs/...`
//! (scheduling.md §10): listing, stat and reading files of an allocation's
//! directory, and its tasks' logs as Nomad's framed JSON or plain text.
//!
//! The agent whose client holds the allocation answers; any other agent
//! relays the request there ([`crate::client_route`]). Following a file
//! is in [`crate::client_fs_stream`]. Caravan departs from
//! Nomad in three places: a missing file is 404 on every endpoint, no
//! error names a host path, and a missing `offset` on `readat` is a 400.

use caravan_client::fs::follow::Follower;
use caravan_client::fs::{
    valid_log_type, AllocFs, FsError, LogCursor, LogFile, Origin, MAX_FRAME_DATA,
};
use caravan_client::runner::AllocView;
use caravan_config::flags::parse_go_bool;
use http::{HeaderValue, StatusCode};

use crate::client_fs_stream::{follow as follow_body, relay_stream, Frame, TaskWatch};
use crate::client_route::{permitted_holder, relay, AllocHolder};
use crate::error::ApiError;
use crate::reply::Reply;
use crate::route::{endpoint, Acl, Consistency, Request, Route, GET};

/// The operations under `/v1/client/fs/`.
const OPERATIONS: [&str; 6] = ["ls", "stat", "cat", "readat", "stream", "logs"];

pub fn routes() -> Vec<Route> {
    let route = |path, endpoint| Route {
        path,
        endpoints: vec![endpoint],
        wrong_method: StatusCode::METHOD_NOT_ALLOWED,
    };
    vec![
        route(
            "/v1/client/fs/ls/{alloc}",
            endpoint(GET, Acl::InHandler, Consistency::Local, ls),
        ),
        route(
            "/v1/client/fs/stat/{alloc}",
            endpoint(GET, Acl::InHandler, Consistency::Local, stat),
        ),
        route(
            "/v1/client/fs/cat/{alloc}",
            endpoint(GET, Acl::InHandler, Consistency::Local, cat),
        ),
        route(
            "/v1/client/fs/readat/{alloc}",
            endpoint(GET, Acl::InHandler, Consistency::Local, readat),
        ),
        route(
            "/v1/client/fs/stream/{alloc}",
            endpoint(GET, Acl::InHandler, Consistency::Local, stream),
        ),
        route(
            "/v1/client/fs/logs/{alloc}",
            endpoint(GET, Acl::InHandler, Consistency::Local, logs),
        ),
        // Anything else under fs/, including an operation without an
        // allocation ID.
        Route {
            path: "/v1/client/fs/{*rest}",
            endpoints: vec![endpoint(GET, Acl::InHandler, Consistency::Local, unknown)],
            wrong_method: StatusCode::NOT_FOUND,
        },
    ]
}

/// Who answers, once the caller may read there.
fn target(request: &Request, capabilities: &[&str]) -> Result<AllocHolder, ApiError> {
    permitted_holder(request, request.param("alloc"), capabilities)
}

const READ_FS: &[&str] = &["read-fs"];
const READ_LOGS: &[&str] = &["read-logs", "read-fs"];

/// The status and text of a refused or failed read.
fn fs_error(error: FsError) -> ApiError {
    let status = match &error {
        FsError::Escapes
        | FsError::IsDirectory(_)
        | FsError::NotDirectory(_)
        | FsError::NotRegular(_)
        | FsError::TooLarge(_) => StatusCode::BAD_REQUEST,
        FsError::NotFound(_) => StatusCode::NOT_FOUND,
        FsError::Secret(_) | FsError::Private(_) | FsError::Io { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    ApiError::new(status, error.to_string())
}

/// Runs file work off the async threads, on the allocation's directory.
async fn on_alloc_dir<T: Send + 'static>(
    view: &AllocView,
    work: impl FnOnce(AllocFs) -> Result<T, FsError> + Send + 'static,
) -> Result<T, ApiError> {
    let root = view.root.clone();
    let alloc_id = view.alloc.id.clone();
    tokio::task::spawn_blocking(move || {
        let fs = AllocFs::new(&root).map_err(|error| match error {
            // The runner is there but its directory is gone (collected).
            FsError::NotFound(_) => ApiError::not_found(format!(
                "state for allocation {alloc_id} not found on client"
            )),
            error => fs_error(error),
        })?;
        work(fs).map_err(fs_error)
    })
    .await
    .map_err(|error| ApiError::internal(format!("file read failed: {error}")))?
}

/// `path`, which stat, cat, readat and stream require.
fn file_path(request: &Request) -> Result<String, ApiError> {
    match request.query_value("path") {
        Some(path) if !path.is_empty() => Ok(path.to_string()),
        _ => Err(ApiError::bad_request("must provide a file name")),
    }
}

/// A base-10 integer as Go's `strconv.ParseInt` reads it, failing with
/// its wording.
fn go_parse_int(text: &str) -> Result<i64, String> {
    text.parse::<i64>().map_err(|error| {
        let reason = match error.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        format!("strconv.ParseInt: parsing {text:?}: {reason}")
    })
}

/// A non-negative byte count: `error parsing <name>: ...` with `status`.
fn byte_count(text: &str, name: &str, status: StatusCode) -> Result<u64, ApiError> {
    let value = go_parse_int(text)
        .map_err(|error| ApiError::new(status, format!("error parsing {name}: {error}")))?;
    u64::try_from(value).map_err(|_| {
        ApiError::bad_request(format!("error parsing {name}: {name} must not be negative"))
    })
}

/// A boolean flag as Go parses it; anything else fails with `status`.
fn flag(
    request: &Request,
    name: &str,
    default: bool,
    status: StatusCode,
) -> Result<bool, ApiError> {
    match request.query_value(name) {
        None | Some("") => Ok(default),
        Some(value) => parse_go_bool(value).ok_or_else(|| {
            ApiError::new(status, format!(
                "failed to parse {name} field to boolean: strconv.ParseBool: parsing {value:?}: invalid syntax"
            ))
        }),
    }
}

fn origin(request: &Request) -> Result<Origin, ApiError> {
    match request.query_value("origin") {
        None | Some("") | Some("start") => Ok(Origin::Start),
        Some("end") => Ok(Origin::End),
        Some(_) => Err(ApiError::bad_request("origin must be start or end")),
    }
}

async fn ls(request: Request) -> Result<Reply, ApiError> {
    let path = match request.query_value("path") {
        Some(path) if !path.is_empty() => path.to_string(),
        _ => "/".to_string(),
    };
    let view = match target(&request, READ_FS)? {
        AllocHolder::Local(view, _) => view,
        AllocHolder::Remote(base) => return relay(&request, &base).await,
    };
    let entries = on_alloc_dir(&view, move |fs| fs.list(&path)).await?;
    Reply::json(&entries)
}

async fn stat(request: Request) -> Result<Reply, ApiError> {
    let path = file_path(&request)?;
    let view = match target(&request, READ_FS)? {
        AllocHolder::Local(view, _) => view,
        AllocHolder::Remote(base) => return relay(&request, &base).await,
    };
    let info = on_alloc_dir(&view, move |fs| fs.stat(&path)).await?;
    Reply::json(&info)
}

async fn cat(request: Request) -> Result<Reply, ApiError> {
    let path = file_path(&request)?;
    let view = match target(&request, READ_FS)? {
        AllocHolder::Local(view, _) => view,
        AllocHolder::Remote(base) => return relay(&request, &base).await,
    };
    let name = path.clone();
    let data = on_alloc_dir(&view, move |fs| fs.cat(&path)).await?;
    Ok(file_reply(&name, data))
}

async fn readat(request: Request) -> Result<Reply, ApiError> {
    let path = file_path(&request)?;
    // Nomad parses an absent offset as "" and fails with a 500; a request
    // that leaves out a required parameter is the caller's error here.
    let offset = match request.query_value("offset") {
        None | Some("") => {
            return Err(ApiError::bad_request(
                "error parsing offset: strconv.ParseInt: parsing \"\": invalid syntax",
            ))
        }
        Some(text) => byte_count(text, "offset", StatusCode::INTERNAL_SERVER_ERROR)?,
    };
    let limit = match request.query_value("limit") {
        None | Some("") => None,
        Some(text) => match byte_count(text, "limit", StatusCode::INTERNAL_SERVER_ERROR)? {
            0 => None,
            limit => Some(limit),
        },
    };
    let view = match target(&request, READ_FS)? {
        AllocHolder::Local(view, _) => view,
        AllocHolder::Remote(base) => return relay(&request, &base).await,
    };
    let name = path.clone();
    let data = on_alloc_dir(&view, move |fs| fs.read_at(&path, offset, limit)).await?;
    Ok(file_reply(&name, data))
}

/// File contents with a sniffed type that a browser will never run.
fn file_reply(path: &str, data: Vec<u8>) -> Reply {
    let head = &data[..data.len().min(512)];
    let content_type = caravan_client::fs::content_type(path, head);
    Reply::raw(data.into(), HeaderValue::from_static(content_type))
}

/// Frames of one file from `offset` counted from `origin`; with `follow`
/// (the default) it goes on as the file grows.
async fn stream(request: Request) -> Result<Reply, ApiError> {
    let path = file_path(&request)?;
    let offset = match request.query_value("offset") {
        None | Some("") => 0,
        Some(text) => byte_count(text, "offset", StatusCode::INTERNAL_SERVER_ERROR)?,
    };
    let origin = origin(&request)?;
    let follow = flag(&request, "follow", true, StatusCode::INTERNAL_SERVER_ERROR)?;
    let view = match target(&request, READ_FS)? {
        AllocHolder::Local(view, _) => view,
        AllocHolder::Remote(base) if follow => return relay_stream(&request, &base).await,
        AllocHolder::Remote(base) => return relay(&request, &base).await,
    };
    let (fs, file) = on_alloc_dir(&view, move |fs| {
        // Checked now for the answer's status; every read opens and
        // checks it again by this name.
        let (name, _, size) = fs.open(&path)?;
        let file = LogFile {
            index: 0,
            name,
            size,
        };
        Ok((fs, file))
    })
    .await?;
    let json = HeaderValue::from_static("application/json");
    if follow {
        let follower = Follower::file(fs, file, offset, origin);
        return Ok(Reply::streamed(follow_body(follower, false, None), json));
    }
    let body = blocking_read(move || read_logs(fs, vec![file], offset, origin, false)).await?;
    Ok(Reply::raw(body.into(), json))
}

/// Runs a blocking read off the async threads.
async fn blocking_read(
    read: impl FnOnce() -> Result<Vec<u8>, FsError> + Send + 'static,
) -> Result<Vec<u8>, ApiError> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|error| ApiError::internal(format!("file read failed: {error}")))?
        .map_err(fs_error)
}

/// What a logs request asks for.
struct LogsQuery {
    task: String,
    kind: String,
    follow: bool,
    plain: bool,
    offset: u64,
    origin: Origin,
}

impl LogsQuery {
    fn parse(request: &Request) -> Result<Self, ApiError> {
        let task = match request.query_value("task") {
            Some(task) if !task.is_empty() => task.to_string(),
            _ => return Err(ApiError::bad_request("must provide task name")),
        };
        let kind = match request.query_value("type") {
            Some(kind) if valid_log_type(kind) => kind.to_string(),
            _ => {
                return Err(ApiError::bad_request(
                    "must provide log type (stdout/stderr)",
                ))
            }
        };
        let follow = flag(request, "follow", false, StatusCode::BAD_REQUEST)?;
        let plain = flag(request, "plain", false, StatusCode::BAD_REQUEST)?;
        let offset = match request.query_value("offset") {
            None | Some("") => 0,
            Some(text) => byte_count(text, "offset", StatusCode::BAD_REQUEST)?,
        };
        Ok(Self {
            task,
            kind,
            follow,
            plain,
            offset,
            origin: origin(request)?,
        })
    }
}

async fn logs(request: Request) -> Result<Reply, ApiError> {
    let query = LogsQuery::parse(&request)?;
    let (view, client) = match target(&request, READ_LOGS)? {
        AllocHolder::Local(view, client) => (view, client),
        AllocHolder::Remote(base) if query.follow => return relay_stream(&request, &base).await,
        AllocHolder::Remote(base) => return relay(&request, &base).await,
    };
    let Some(state) = view.tasks.get(&query.task) else {
        return Err(ApiError::bad_request(format!(
            "unknown task name {:?}",
            query.task
        )));
    };
    let started = state.started_at.is_some();
    let (task, kind) = (query.task.clone(), query.kind.clone());
    let (fs, files) = on_alloc_dir(&view, move |fs| {
        let files = fs.log_files(&task, &kind)?;
        Ok((fs, files))
    })
    .await?;
    if files.is_empty() {
        return Err(no_logs(&query, started));
    }
    let content_type = HeaderValue::from_static(if query.plain {
        "text/plain; charset=utf-8"
    } else {
        "application/json"
    });
    let LogsQuery {
        task,
        kind,
        follow,
        plain,
        offset,
        origin,
    } = query;
    if follow {
        let follower = Follower::logs(fs, &task, &kind, files, offset, origin)
            .ok_or_else(|| ApiError::internal("no log files to follow"))?;
        let watch = TaskWatch {
            client,
            alloc_id: view.alloc.id.clone(),
            task,
        };
        let body = follow_body(follower, plain, Some(watch));
        return Ok(Reply::streamed(body, content_type));
    }
    let body = blocking_read(move || read_logs(fs, files, offset, origin, plain)).await?;
    Ok(Reply::raw(body.into(), content_type))
}

fn no_logs(query: &LogsQuery, started: bool) -> ApiError {
    if started {
        ApiError::not_found(format!(
            "log entry for task {:?} and log type {:?} not found",
            query.task, query.kind
        ))
    } else {
        ApiError::not_found(format!(
            "task {:?} not started yet. No logs available",
            query.task
        ))
    }
}

/// The logs from the starting point to the end of the newest file (or
/// the first [`caravan_client::fs::MAX_READ`] bytes), as plain bytes or
/// as frames.
fn read_logs(
    fs: AllocFs,
    files: Vec<LogFile>,
    offset: u64,
    origin: Origin,
    plain: bool,
) -> Result<Vec<u8>, FsError> {
    let mut cursor = LogCursor::new(fs, files, offset, origin);
    let mut body = Vec::new();
    while let Some(chunk) = cursor.next_chunk(MAX_FRAME_DATA)? {
        if plain {
            body.extend_from_slice(&chunk.data);
        } else {
            let frame = Frame::data(chunk.offset, &chunk.data, &chunk.file);
            frame.write(&mut body);
        }
    }
    Ok(body)
}

/// Any other path under `/v1/client/fs/`.
async fn unknown(request: Request) -> Result<Reply, ApiError> {
    let rest = request.param("rest").trim_end_matches('/');
    if OPERATIONS.contains(&rest) {
        return Err(ApiError::bad_request("must provide a valid alloc id"));
    }
    Err(ApiError::invalid_method(StatusCode::NOT_FOUND))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn logs_are_framed_in_64k_pieces_across_files() {
        // (This crate has no tempfile; a unique directory of its own.)
        let dir = std::env::temp_dir().join(format!(
            "caravan-client-fs-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
        ));
        let logs = dir.join("alloc/logs");
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::write(logs.join("web.stdout.0"), vec![b'a'; MAX_FRAME_DATA + 10]).unwrap();
        std::fs::write(logs.join("web.stdout.1"), b"tail\n").unwrap();
        let fs = AllocFs::new(&dir).unwrap();
        let files = fs.log_files("web", "stdout").unwrap();

        let body = read_logs(fs.clone(), files.clone(), 0, Origin::Start, false).unwrap();
        let frames: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&body)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        let summary: Vec<(u64, usize, &str)> = frames
            .iter()
            .map(|frame| {
                let data = base64::engine::general_purpose::STANDARD
                    .decode(frame["Data"].as_str().unwrap())
                    .unwrap();
                (
                    frame["Offset"].as_u64().unwrap(),
                    data.len(),
                    frame["File"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    MAX_FRAME_DATA as u64,
                    MAX_FRAME_DATA,
                    "alloc/logs/web.stdout.0"
                ),
                (MAX_FRAME_DATA as u64 + 10, 10, "alloc/logs/web.stdout.0"),
                (5, 5, "alloc/logs/web.stdout.1"),
            ]
        );
        let plain = read_logs(fs.clone(), files.clone(), 8, Origin::End, true).unwrap();
        assert_eq!(plain, b"aaatail\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn integers_fail_with_gos_wording() {
        assert_eq!(go_parse_int("12"), Ok(12));
        assert_eq!(
            go_parse_int("x1").unwrap_err(),
            r#"strconv.ParseInt: parsing "x1": invalid syntax"#
        );
        assert_eq!(
            go_parse_int("99999999999999999999").unwrap_err(),
            r#"strconv.ParseInt: parsing "99999999999999999999": value out of range"#
        );
    }
}
