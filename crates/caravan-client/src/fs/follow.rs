//! Following a task's logs, or one file, as they grow: each poll returns
//! what was written since the last one. Logs move on to the next rotated
//! file once the current one is read to its end; a file that shrinks is
//! reported as truncated and read again from its start, and a followed
//! file that disappears as deleted (scheduling.md §10.2).
//!
//! The followed file is opened again, checked, at every poll (the task
//! may have swapped it for a symlink since), and each poll reads a bounded
//! amount so that the caller regains control however fast the file grows.

use std::fs::File;
use std::io;

use super::{
    log_start, read_chunk, AllocFs, FsError, LogChunk, LogFile, Origin, Want, MAX_FRAME_DATA,
};

/// Nomad's `FileEvent` texts.
pub const FILE_TRUNCATED: &str = "file truncated";
pub const FILE_DELETED: &str = "file deleted";

/// Something new in a followed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Data(LogChunk),
    Event { file: String, event: &'static str },
}

/// What is followed.
#[derive(Debug)]
enum Source {
    /// The rotated files `<task>.<kind>.<n>`.
    Logs { task: String, kind: String },
    /// One file, which is never replaced by another.
    File,
}

/// A followed stream and the position reached in it.
#[derive(Debug)]
pub struct Follower {
    fs: AllocFs,
    source: Source,
    file: LogFile,
    offset: u64,
    /// A followed file was deleted: nothing more will come.
    ended: bool,
}

impl Follower {
    /// Follows the logs in `files` (listed by [`AllocFs::log_files`]) from
    /// `offset` counted from `origin`; `None` when there are none.
    pub fn logs(
        fs: AllocFs,
        task: &str,
        kind: &str,
        files: Vec<LogFile>,
        offset: u64,
        origin: Origin,
    ) -> Option<Self> {
        let (position, offset) = log_start(&files, offset, origin);
        let file = files.into_iter().nth(position)?;
        Some(Self {
            fs,
            source: Source::Logs {
                task: task.to_string(),
                kind: kind.to_string(),
            },
            file,
            offset,
            ended: false,
        })
    }

    /// Follows one file of `fs` (its [`LogFile::name`]) from `offset`
    /// counted from `origin`.
    pub fn file(fs: AllocFs, file: LogFile, offset: u64, origin: Origin) -> Self {
        let offset = match origin {
            Origin::Start => offset.min(file.size),
            Origin::End => file.size.saturating_sub(offset),
        };
        Self {
            fs,
            source: Source::File,
            file,
            offset,
            ended: false,
        }
    }

    /// Whether the followed file is gone for good.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// What was written since the last poll, in frames of at most
    /// [`MAX_FRAME_DATA`] bytes; about `max_pieces` of them at most: it
    /// always returns then, and the caller polls again (at once when it
    /// got that many), so a file that never ends cannot hold it here.
    pub fn poll(&mut self, max_pieces: usize) -> Result<Vec<Piece>, FsError> {
        let mut pieces = Vec::new();
        while pieces.len() < max_pieces && !self.ended {
            let file = match self.fs.open_checked(&self.file.name, Want::File) {
                Ok(opened) => opened,
                Err(FsError::NotFound(_)) => {
                    // Rotation removed it: go on with the next, if any.
                    if let Some(next) = self.next_log()? {
                        self.switch(next);
                        continue;
                    }
                    if matches!(self.source, Source::File) {
                        pieces.push(self.event(FILE_DELETED));
                        self.ended = true;
                    }
                    break;
                }
                Err(error) => return Err(error),
            };
            let size = file.meta.len();
            if size < self.offset {
                pieces.push(self.event(FILE_TRUNCATED));
                self.offset = 0;
            }
            if self.offset < size {
                let wanted = usize::try_from(size - self.offset)
                    .map_or(MAX_FRAME_DATA, |left| left.min(MAX_FRAME_DATA));
                // Nothing read means it shrank meanwhile: the next poll
                // looks again, rather than this loop spinning on it.
                if !self.read(&file.file, wanted, &mut pieces)? {
                    break;
                }
                continue;
            }
            let Some(next) = self.next_log()? else {
                break;
            };
            // A newer file exists, so this one is finished; what was
            // written after its size was taken is read before moving on,
            // within the budget (the next poll reads the rest).
            let mut finished = false;
            while pieces.len() < max_pieces {
                if !self.read(&file.file, MAX_FRAME_DATA, &mut pieces)? {
                    finished = true;
                    break;
                }
            }
            if !finished {
                break;
            }
            self.switch(next);
        }
        Ok(pieces)
    }

    /// Reads up to `max` bytes of the opened current file at the current
    /// offset into `pieces`; whether anything was read.
    fn read(&mut self, file: &File, max: usize, pieces: &mut Vec<Piece>) -> Result<bool, FsError> {
        let data = read_chunk(file, self.offset, max).map_err(|error| self.read_error(&error))?;
        if data.is_empty() {
            return Ok(false);
        }
        self.offset += data.len() as u64;
        pieces.push(Piece::Data(LogChunk {
            file: self.file.name.clone(),
            offset: self.offset,
            data,
        }));
        Ok(true)
    }

    fn switch(&mut self, next: LogFile) {
        self.file = next;
        self.offset = 0;
    }

    /// The oldest log file newer than the current one.
    fn next_log(&self) -> Result<Option<LogFile>, FsError> {
        let Source::Logs { task, kind } = &self.source else {
            return Ok(None);
        };
        let files = match self.fs.log_files(task, kind) {
            Ok(files) => files,
            // The allocation's directory is gone: nothing newer comes.
            Err(FsError::NotFound(_)) => return Ok(None),
            Err(error) => return Err(error),
        };
        Ok(files.into_iter().find(|file| file.index > self.file.index))
    }

    fn event(&self, event: &'static str) -> Piece {
        Piece::Event {
            file: self.file.name.clone(),
            event,
        }
    }

    fn read_error(&self, error: &io::Error) -> FsError {
        FsError::io("read", &self.file.name, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn data(pieces: &[Piece]) -> Vec<(String, u64, String)> {
        pieces
            .iter()
            .map(|piece| match piece {
                Piece::Data(chunk) => (
                    chunk.file.clone(),
                    chunk.offset,
                    String::from_utf8(chunk.data.clone()).unwrap(),
                ),
                Piece::Event { file, event } => (file.clone(), 0, event.to_string()),
            })
            .collect()
    }

    fn append(path: &std::path::Path, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn follows_logs_through_rotation_and_truncation() {
        let base = tempfile::tempdir().unwrap();
        let logs = base.path().join("alloc/logs");
        std::fs::create_dir_all(&logs).unwrap();
        append(&logs.join("web.stdout.0"), "one\n");
        let fs = AllocFs::new(base.path()).unwrap();
        let files = fs.log_files("web", "stdout").unwrap();
        let mut follower =
            Follower::logs(fs.clone(), "web", "stdout", files, 0, Origin::Start).unwrap();
        let name0 = "alloc/logs/web.stdout.0".to_string();
        let name1 = "alloc/logs/web.stdout.1".to_string();
        assert_eq!(
            data(&follower.poll(32).unwrap()),
            [(name0.clone(), 4, "one\n".to_string())]
        );
        assert!(follower.poll(32).unwrap().is_empty());
        // The writer finishes file 0 and moves on to file 1.
        append(&logs.join("web.stdout.0"), "two\n");
        append(&logs.join("web.stdout.1"), "three\n");
        assert_eq!(
            data(&follower.poll(32).unwrap()),
            [
                (name0.clone(), 8, "two\n".to_string()),
                (name1.clone(), 6, "three\n".to_string()),
            ]
        );
        // Truncated: reported, then read from the start.
        std::fs::write(logs.join("web.stdout.1"), "x\n").unwrap();
        assert_eq!(
            data(&follower.poll(32).unwrap()),
            [
                (name1.clone(), 0, FILE_TRUNCATED.to_string()),
                (name1.clone(), 2, "x\n".to_string()),
            ]
        );
        // Removed by rotation with a newer file present: go on there.
        append(&logs.join("web.stdout.2"), "four\n");
        std::fs::remove_file(logs.join("web.stdout.1")).unwrap();
        assert_eq!(
            data(&follower.poll(32).unwrap()),
            [(
                "alloc/logs/web.stdout.2".to_string(),
                5,
                "four\n".to_string()
            )]
        );
        assert!(!follower.ended());
    }

    #[test]
    fn a_followed_file_reports_its_deletion_and_ends() {
        let base = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(base.path().join("alloc/data")).unwrap();
        let path = base.path().join("alloc/data/f");
        append(&path, "0123456789");
        let file = LogFile {
            index: 0,
            name: "alloc/data/f".into(),
            size: 10,
        };
        let fs = AllocFs::new(base.path()).unwrap();
        let mut follower = Follower::file(fs, file, 3, Origin::End);
        let name = "alloc/data/f".to_string();
        assert_eq!(
            data(&follower.poll(32).unwrap()),
            [(name.clone(), 10, "789".to_string())]
        );
        // Large writes come in frames of at most 64 KiB.
        append(&path, &"y".repeat(MAX_FRAME_DATA + 1));
        let pieces = data(&follower.poll(32).unwrap());
        let sizes: Vec<usize> = pieces.iter().map(|piece| piece.2.len()).collect();
        assert_eq!(sizes, [MAX_FRAME_DATA, 1]);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            data(&follower.poll(32).unwrap()),
            [(name, 0, FILE_DELETED.to_string())]
        );
        assert!(follower.ended());
        assert!(follower.poll(32).unwrap().is_empty());
    }
}
