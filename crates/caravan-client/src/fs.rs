//! Reading an allocation's directory for the client fs and logs endpoints
//! (scheduling.md §10): paths given by API callers are resolved under the
//! allocation root and may never leave it, nor read a task's `secrets/`
//! or `private/`. Every path in an error is relative to the allocation
//! root, so no answer reveals where the client keeps its data.
//!
//! The task owns the directory and may swap any path for a symlink at
//! any moment, so a path is never checked and then opened again: every
//! read goes through [`AllocFs::open_checked`], which checks where the
//! *opened* descriptor really is and what it is, and reads through it.
//!
//! Log files are the rotated `alloc/logs/<task>.<type>.<n>` that the
//! drivers' log writer produces; [`LogCursor`] walks them in order.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::OFlag;
use serde::Serialize;

pub mod follow;

/// The most data one log or stream frame carries.
pub const MAX_FRAME_DATA: usize = 64 * 1024;

/// The most file data one answer carries (`cat`, `readat`, and logs or
/// a stream read without following): a huge or sparse file must not make
/// the agent hold it all in memory.
pub const MAX_READ: usize = 64 * 1024 * 1024;

/// Why a read was refused or failed. Paths are relative to the alloc root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    #[error("Path escapes the alloc directory")]
    Escapes,
    #[error("Reading secret file prohibited: {0}")]
    Secret(String),
    #[error("Reading private file prohibited: {0}")]
    Private(String),
    #[error("stat {0}: no such file or directory")]
    NotFound(String),
    #[error("file {0:?} is a directory")]
    IsDirectory(String),
    #[error("file {0:?} is not a directory")]
    NotDirectory(String),
    /// A FIFO, socket or device: never opened for reading (a FIFO would
    /// block the reader, a device's open may act on the host).
    #[error("file {0:?} is not a regular file")]
    NotRegular(String),
    #[error("file {0:?} is larger than 64 MiB: read it with readat and a limit")]
    TooLarge(String),
    #[error("{op} {path}: {message}")]
    Io {
        op: &'static str,
        path: String,
        message: String,
    },
}

impl FsError {
    /// An I/O failure on `path`, worded as Go words OS errors (no
    /// `(os error N)` suffix, lower case), a missing file as [`NotFound`].
    ///
    /// [`NotFound`]: FsError::NotFound
    fn io(op: &'static str, path: &str, error: &io::Error) -> Self {
        if error.kind() == io::ErrorKind::NotFound {
            return Self::NotFound(path.to_string());
        }
        let text = error.to_string();
        let text = text.split(" (os error").next().unwrap_or(&text);
        Self::Io {
            op,
            path: path.to_string(),
            message: text.to_lowercase(),
        }
    }
}

/// One entry of a listing, or a stat, as Nomad's `AllocFileInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FileInfo {
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
    /// Go's `FileMode.String()`, like `-rw-r--r--` or `drwxr-xr-x`.
    pub file_mode: String,
    /// RFC 3339 with fractional seconds, in UTC.
    pub mod_time: String,
    /// Set by `stat` on files only.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub content_type: String,
}

/// A path checked to lie inside the allocation. It carries no host path
/// on purpose: what is read must be opened again with
/// [`AllocFs::open_checked`], never by a path checked earlier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Relative to the alloc root, `/`-separated; empty for the root.
    pub relative: String,
}

/// What an opened path must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// A regular file, opened for reading.
    File,
    /// A directory (a path handle: list it with [`fd_path`]).
    Dir,
    /// Anything (a path handle, for its metadata alone).
    Any,
}

/// A path opened and checked by [`AllocFs::open_checked`].
#[derive(Debug)]
pub struct Opened {
    /// Relative to the alloc root, `/`-separated; empty for the root.
    pub relative: String,
    /// Readable for [`Want::File`]; an `O_PATH` handle otherwise.
    pub file: File,
    /// Of the opened file itself (`fstat`), not of whatever the path
    /// names by now.
    pub meta: Metadata,
}

/// An allocation directory, as the endpoints read it.
#[derive(Debug, Clone)]
pub struct AllocFs {
    /// Canonical, so a resolved path is compared with it as a prefix.
    root: PathBuf,
}

impl AllocFs {
    /// The directory of an allocation (`<alloc_dir>/<alloc_id>`).
    pub fn new(root: &Path) -> Result<Self, FsError> {
        let root = root
            .canonicalize()
            .map_err(|e| FsError::io("stat", "/", &e))?;
        Ok(Self { root })
    }

    /// Checks a caller's path: `/` and the empty path are the root, a
    /// leading `/` is ignored, `..` may not climb above the root, and
    /// symlinks must end inside it. The path must exist.
    pub fn resolve(&self, path: &str) -> Result<Resolved, FsError> {
        let opened = self.open_checked(path, Want::Any)?;
        Ok(Resolved {
            relative: opened.relative,
        })
    }

    /// Opens a caller's path (resolved as [`resolve`](Self::resolve)
    /// says) and checks the opened descriptor: where it really is, and
    /// that it is what `want` asks for. Refusals are [`FsError::Escapes`]
    /// or the secrets and private errors, named by the caller's path.
    pub fn open_checked(&self, path: &str, want: Want) -> Result<Opened, FsError> {
        let parts = normalize(path)?;
        check_protected(&parts)?;
        let relative = parts.join("/");
        let host = parts
            .iter()
            .fold(self.root.clone(), |at, part| at.join(part));
        let handle = open_path(&host).map_err(|e| FsError::io("stat", &relative, &e))?;
        self.checked(handle, relative, want)
    }

    /// Checks a handle from [`open_path`] and, for [`Want::File`], opens
    /// the very same file for reading. Symlinks were followed on the way,
    /// so what counts is where the descriptor ended up: inside the root
    /// (a symlink may lead elsewhere inside, never out, nor into a
    /// protected directory by another name).
    fn checked(&self, handle: File, relative: String, want: Want) -> Result<Opened, FsError> {
        let real = std::fs::read_link(fd_path(&handle)).map_err(|_| FsError::Io {
            op: "open",
            path: display(&relative),
            message: "cannot check where the opened file is".to_string(),
        })?;
        let inside = real
            .strip_prefix(&self.root)
            .map_err(|_| FsError::Escapes)?;
        let mut components = Vec::new();
        for component in inside.components() {
            match component {
                Component::Normal(part) => components.push(part.to_string_lossy().into_owned()),
                _ => return Err(FsError::Escapes),
            }
        }
        check_protected(&components)?;
        let meta = handle
            .metadata()
            .map_err(|e| FsError::io("stat", &relative, &e))?;
        let file = match want {
            Want::Dir if !meta.is_dir() => return Err(FsError::NotDirectory(display(&relative))),
            Want::File if meta.is_dir() => return Err(FsError::IsDirectory(display(&relative))),
            Want::File if !meta.is_file() => return Err(FsError::NotRegular(display(&relative))),
            Want::File => reopen(&handle).map_err(|e| FsError::io("open", &relative, &e))?,
            Want::Dir | Want::Any => handle,
        };
        Ok(Opened {
            relative,
            file,
            meta,
        })
    }

    /// The entries of a directory, sorted by name. Entries are not
    /// followed: a symlink is listed as one (`L` in its mode).
    pub fn list(&self, path: &str) -> Result<Vec<FileInfo>, FsError> {
        let dir = self.open_checked(path, Want::Dir)?;
        list_opened(&dir)
    }

    /// One file or directory, with the content type of a regular file.
    pub fn stat(&self, path: &str) -> Result<FileInfo, FsError> {
        let opened = self.open_checked(path, Want::Any)?;
        let name = match opened.relative.rsplit('/').next() {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => "/".to_string(),
        };
        let mut info = file_info(name, &opened.meta);
        // Only a regular file is read: a FIFO or device never is.
        if opened.meta.is_file() {
            let mut head = Vec::with_capacity(512);
            reopen(&opened.file)
                .and_then(|file| file.take(512).read_to_end(&mut head))
                .map_err(|e| FsError::io("read", &opened.relative, &e))?;
            info.content_type = content_type(&opened.relative, &head).to_string();
        }
        Ok(info)
    }

    /// Opens a regular file for reading: its path relative to the root,
    /// the file and its size now.
    pub fn open(&self, path: &str) -> Result<(String, File, u64), FsError> {
        let opened = self.open_checked(path, Want::File)?;
        let size = opened.meta.len();
        Ok((opened.relative, opened.file, size))
    }

    /// A whole file, refused when larger than [`MAX_READ`].
    pub fn cat(&self, path: &str) -> Result<Vec<u8>, FsError> {
        let opened = self.open_checked(path, Want::File)?;
        if opened.meta.len() > MAX_READ as u64 {
            return Err(FsError::TooLarge(display(&opened.relative)));
        }
        read_range(opened, 0, MAX_READ as u64)
    }

    /// Up to `limit` bytes from `offset`, and never more than
    /// [`MAX_READ`] (the most as well when `limit` is `None` or 0); past
    /// the end of the file the answer is empty.
    pub fn read_at(&self, path: &str, offset: u64, limit: Option<u64>) -> Result<Vec<u8>, FsError> {
        let opened = self.open_checked(path, Want::File)?;
        let wanted = match limit {
            Some(limit) if limit > 0 => limit.min(MAX_READ as u64),
            _ => MAX_READ as u64,
        };
        read_range(opened, offset, wanted)
    }

    /// The log files of one task's stream (`stdout` or `stderr`), oldest
    /// first. Only regular files count: a symlink named like a log file
    /// is never read.
    pub fn log_files(&self, task: &str, kind: &str) -> Result<Vec<LogFile>, FsError> {
        if task.is_empty() || task.contains('/') || task.starts_with('.') {
            return Err(FsError::Escapes);
        }
        let logs = self.open_checked("alloc/logs", Want::Dir)?;
        let prefix = format!("{task}.{kind}.");
        let entries = std::fs::read_dir(fd_path(&logs.file))
            .map_err(|e| FsError::io("open", &logs.relative, &e))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| FsError::io("readdir", &logs.relative, &e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(index) = name
                .strip_prefix(&prefix)
                .and_then(|suffix| suffix.parse::<u64>().ok())
            else {
                continue;
            };
            // Of the entry itself (`fstatat` in the opened directory,
            // symlinks not followed).
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_file() {
                files.push(LogFile {
                    index,
                    name: format!("alloc/logs/{name}"),
                    size: meta.len(),
                });
            }
        }
        files.sort_by_key(|file| file.index);
        Ok(files)
    }
}

/// A handle on what `path` names, symlinks followed, opened with
/// `O_PATH`: nothing is opened for I/O before the handle is checked, so
/// a FIFO cannot block and no device's open routine runs.
fn open_path(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_PATH.bits())
        .open(path)
}

/// `/proc/self/fd/<fd>`: a link to the opened file itself, so reading
/// through it never walks the task's path again.
pub fn fd_path(file: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// The file behind a checked handle, opened for reading. `O_NONBLOCK`
/// and `O_NOCTTY` only matter if it were not a regular file (the caller
/// checked it is); they keep a mistake from blocking or taking a tty.
fn reopen(handle: &File) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(fd_path(handle))
}

/// The entries of an opened, checked directory, sorted by name.
fn list_opened(dir: &Opened) -> Result<Vec<FileInfo>, FsError> {
    let entries = std::fs::read_dir(fd_path(&dir.file))
        .map_err(|e| FsError::io("open", &dir.relative, &e))?;
    let mut infos = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| FsError::io("readdir", &dir.relative, &e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Not followed (`fstatat` in the directory); an entry removed
        // since the listing is left out.
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        infos.push(file_info(name, &meta));
    }
    infos.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(infos)
}

/// Up to `wanted` bytes of an opened file from `offset`. The buffer grows
/// with what is read, never from the size the file claims (a sparse file
/// may claim a terabyte).
fn read_range(opened: Opened, offset: u64, wanted: u64) -> Result<Vec<u8>, FsError> {
    let Opened {
        relative, mut file, ..
    } = opened;
    let mut data = Vec::new();
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.take(wanted).read_to_end(&mut data))
        .map_err(|e| FsError::io("read", &relative, &e))?;
    Ok(data)
}

/// The root as callers name it.
fn display(relative: &str) -> String {
    if relative.is_empty() {
        "/".to_string()
    } else {
        relative.to_string()
    }
}

/// The components of a caller's path, with `.` and empty parts dropped
/// and `..` applied; climbing above the root is refused, and so is a NUL
/// (no file has one; a caller sending it is probing).
fn normalize(path: &str) -> Result<Vec<String>, FsError> {
    if path.contains('\0') {
        return Err(FsError::Escapes);
    }
    let mut parts: Vec<String> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or(FsError::Escapes)?;
            }
            part => parts.push(part.to_string()),
        }
    }
    Ok(parts)
}

/// Refuses `<task>/secrets/...` and `<task>/private/...` (the shared
/// `alloc/` directory has neither).
fn check_protected(parts: &[String]) -> Result<(), FsError> {
    match parts {
        [task, dir, ..] if task != "alloc" && dir == "secrets" => {
            Err(FsError::Secret(parts.join("/")))
        }
        [task, dir, ..] if task != "alloc" && dir == "private" => {
            Err(FsError::Private(parts.join("/")))
        }
        _ => Ok(()),
    }
}

fn file_info(name: String, meta: &Metadata) -> FileInfo {
    let mod_time = chrono::DateTime::from_timestamp(meta.mtime(), meta.mtime_nsec() as u32)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    FileInfo {
        name,
        is_dir: meta.is_dir(),
        size: meta.len(),
        file_mode: go_file_mode(meta.mode()),
        mod_time,
        content_type: String::new(),
    }
}

/// A Unix mode as Go's `FileMode.String()` shows it: the type and special
/// bits as letters (in Go's order) or `-`, then `rwxrwxrwx`.
pub fn go_file_mode(mode: u32) -> String {
    const S_IFMT: u32 = 0o170_000;
    let kind = mode & S_IFMT;
    let mut text = String::new();
    for (set, letter) in [
        (kind == 0o040_000, 'd'),
        (kind == 0o120_000, 'L'),
        (kind == 0o060_000 || kind == 0o020_000, 'D'),
        (kind == 0o010_000, 'p'),
        (kind == 0o140_000, 'S'),
        (mode & 0o4000 != 0, 'u'),
        (mode & 0o2000 != 0, 'g'),
        (kind == 0o020_000, 'c'),
        (mode & 0o1000 != 0, 't'),
    ] {
        if set {
            text.push(letter);
        }
    }
    if text.is_empty() {
        text.push('-');
    }
    for (bit, letter) in (0..9).rev().zip("rwxrwxrwx".chars()) {
        text.push(if mode & (1 << bit) != 0 { letter } else { '-' });
    }
    text
}

/// A small content sniff: JSON by extension, UTF-8 text, else binary.
/// Never a type a browser would run (the endpoints serve untrusted files).
pub fn content_type(path: &str, head: &[u8]) -> &'static str {
    if path.ends_with(".json") {
        return "application/json";
    }
    // A multi-byte character cut at the end of the sample is still text.
    let text = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(error) => error.error_len().is_none(),
    };
    let control = head
        .iter()
        .any(|&byte| byte < 0x20 && !matches!(byte, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b));
    if text && !control {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    }
}

/// `stdout` or `stderr`.
pub fn valid_log_type(kind: &str) -> bool {
    matches!(kind, "stdout" | "stderr")
}

/// One rotated log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    pub index: u64,
    /// Relative to the alloc root: `alloc/logs/<task>.<type>.<n>`; it is
    /// opened by this name, checked, at every read.
    pub name: String,
    /// Its size when listed.
    pub size: u64,
}

/// Where `offset` counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Start,
    End,
}

/// The file (position in `files`) and the offset in it where reading
/// starts. From the start, `offset` counts forward across the files; from
/// the end, back across them. Past either end it stops at the edge.
pub fn log_start(files: &[LogFile], offset: u64, origin: Origin) -> (usize, u64) {
    let Some(last) = files.len().checked_sub(1) else {
        return (0, 0);
    };
    let mut left = offset;
    match origin {
        Origin::Start => {
            for (position, file) in files.iter().enumerate() {
                if left < file.size || position == last {
                    return (position, left.min(file.size));
                }
                left -= file.size;
            }
            (last, files[last].size)
        }
        Origin::End => {
            for (position, file) in files.iter().enumerate().rev() {
                if left <= file.size {
                    return (position, file.size - left);
                }
                left -= file.size;
            }
            (0, 0)
        }
    }
}

/// Some bytes of one log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// The file, relative to the alloc root.
    pub file: String,
    /// The offset just past `data` in that file (Nomad's frame `Offset`).
    pub offset: u64,
    pub data: Vec<u8>,
}

/// Reads rotated log files in order from a starting point to the end of
/// the last one it was given, or until it has read [`MAX_READ`] bytes in
/// all (it makes one answer).
#[derive(Debug)]
pub struct LogCursor {
    fs: AllocFs,
    files: Vec<LogFile>,
    position: usize,
    offset: u64,
    /// What may still be read.
    left: usize,
}

impl LogCursor {
    pub fn new(fs: AllocFs, files: Vec<LogFile>, offset: u64, origin: Origin) -> Self {
        let (position, offset) = log_start(&files, offset, origin);
        Self {
            fs,
            files,
            position,
            offset,
            left: MAX_READ,
        }
    }

    /// The file being read and the offset in it.
    pub fn position(&self) -> Option<(&LogFile, u64)> {
        self.files
            .get(self.position)
            .map(|file| (file, self.offset))
    }

    /// The next up to `max` bytes, moving on to the next file at the end
    /// of one; `None` once the last file is read to its end, or
    /// [`MAX_READ`] bytes are. A file removed meanwhile (rotation) is
    /// skipped.
    pub fn next_chunk(&mut self, max: usize) -> Result<Option<LogChunk>, FsError> {
        let max = max.min(self.left);
        if max == 0 {
            return Ok(None);
        }
        while let Some(file) = self.files.get(self.position) {
            let read = match self.fs.open_checked(&file.name, Want::File) {
                Ok(opened) => read_chunk(&opened.file, self.offset, max),
                Err(FsError::NotFound(_)) => Ok(Vec::new()),
                Err(error) => return Err(error),
            };
            match read {
                Ok(data) if !data.is_empty() => {
                    self.offset += data.len() as u64;
                    self.left -= data.len();
                    return Ok(Some(LogChunk {
                        file: file.name.clone(),
                        offset: self.offset,
                        data,
                    }));
                }
                Ok(_) => {}
                Err(error) => return Err(FsError::io("read", &file.name, &error)),
            }
            if self.position + 1 == self.files.len() {
                return Ok(None);
            }
            self.position += 1;
            self.offset = 0;
        }
        Ok(None)
    }
}

/// Up to `max` bytes of `file` from `offset` (fewer at its end), and at
/// most one frame's worth, as the buffer is allocated whole.
fn read_chunk(file: &File, offset: u64, max: usize) -> io::Result<Vec<u8>> {
    let max = max.min(MAX_FRAME_DATA);
    let mut data = vec![0; max];
    let mut filled = 0;
    while filled < max {
        let read = file.read_at(&mut data[filled..], offset + filled as u64)?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    data.truncate(filled);
    Ok(data)
}

#[cfg(test)]
mod tests;
