//! Rotated task log files, as Nomad's logmon writes them:
//! `<dir>/<task>.stdout.N` and `<dir>/<task>.stderr.N` with N counting up
//! from 0. A file is closed once it holds `max_file_size` bytes and the
//! next index opened; only the newest `max_files` are kept. A writer
//! opened again for the same stream (the executor restarted for the same
//! task) appends to the highest existing index, so numbering continues
//! and no earlier output is overwritten.
//!
//! The log directory is inside the allocation directory, which tasks can
//! write (docker and exec tasks see it as `/alloc`), while the writer runs
//! as root on the host: a task could plant `web.stdout.1 -> /etc/passwd`
//! or swap the directory for a link. So the directory is opened once
//! without following a link, and every file is opened, and deleted,
//! relative to it, never following a link and only if it is a regular
//! file.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{unlinkat, UnlinkatFlags};

/// One mebibyte, the unit of `max_file_size_mb`.
pub const MIB: u64 = 1024 * 1024;

/// Writes one stream (a task's stdout or stderr) into rotated files.
#[derive(Debug)]
pub struct RotatingLog {
    dir: PathBuf,
    /// `dir`, opened without following a link; files are opened in it.
    dir_fd: OwnedFd,
    /// `<task>.stdout` or `<task>.stderr`; files are `<base>.<index>`.
    base: String,
    max_files: u32,
    max_file_size: u64,
    index: u64,
    file: File,
    /// Bytes in the current file.
    written: u64,
}

impl RotatingLog {
    /// Opens the stream `base` in `dir` (which must exist), continuing in
    /// the highest-numbered existing file. `max_files` and `max_file_size`
    /// (bytes) are at least 1.
    pub fn open(dir: &Path, base: &str, max_files: u32, max_file_size: u64) -> io::Result<Self> {
        let dir_fd = nix::fcntl::open(
            dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)?;
        let index = existing_indexes(&dir_fd, base)?
            .into_iter()
            .max()
            .unwrap_or(0);
        let (file, written) = open_append(&dir_fd, &file_name(base, index))?;
        let mut log = Self {
            dir: dir.to_path_buf(),
            dir_fd,
            base: base.to_string(),
            max_files: max_files.max(1),
            max_file_size: max_file_size.max(1),
            index,
            file,
            written,
        };
        log.purge()?;
        Ok(log)
    }

    /// The file being written now.
    pub fn current_path(&self) -> PathBuf {
        self.dir.join(file_name(&self.base, self.index))
    }

    /// Appends `data`, rotating as files fill. A line of `data` that would
    /// straddle a boundary starts the next file instead, unless it is
    /// longer than a whole file. (A line that arrives in pieces, across
    /// calls, may still be split: its start is already written.)
    pub fn append(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let room = self.max_file_size.saturating_sub(self.written);
            if data.len() as u64 <= room {
                self.write_current(data)?;
                return Ok(());
            }
            let fitting = &data[..room as usize];
            let take = match fitting.iter().rposition(|&byte| byte == b'\n') {
                Some(newline) => newline + 1,
                // Nothing written here yet: the line is longer than a file,
                // so it is split wherever the file is full.
                None if self.written == 0 => fitting.len(),
                None => 0,
            };
            self.write_current(&data[..take])?;
            data = &data[take..];
            self.rotate()?;
        }
        Ok(())
    }

    fn write_current(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.written += data.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.index += 1;
        let (file, written) = open_append(&self.dir_fd, &file_name(&self.base, self.index))?;
        self.file = file;
        self.written = written;
        self.purge()
    }

    /// Deletes the oldest files beyond `max_files`.
    fn purge(&mut self) -> io::Result<()> {
        let mut indexes = existing_indexes(&self.dir_fd, &self.base)?;
        if indexes.len() <= self.max_files as usize {
            return Ok(());
        }
        indexes.sort_unstable();
        let excess = indexes.len() - self.max_files as usize;
        for index in &indexes[..excess] {
            // Removes the name, never what a link there points to.
            let name = file_name(&self.base, *index);
            match unlinkat(&self.dir_fd, name.as_str(), UnlinkatFlags::NoRemoveDir) {
                Err(nix::errno::Errno::ENOENT) | Ok(()) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }
}

fn file_name(base: &str, index: u64) -> String {
    format!("{base}.{index}")
}

/// Opens `name` in `dir` for appending: never through a link (`ELOOP`),
/// never anything but a regular file (a FIFO would not block the open,
/// thanks to `O_NONBLOCK`, and is refused).
fn open_append(dir: &OwnedFd, name: &str) -> io::Result<(File, u64)> {
    let fd = openat(
        dir,
        name,
        OFlag::O_WRONLY
            | OFlag::O_APPEND
            | OFlag::O_CREAT
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .map_err(io::Error::from)?;
    let file = File::from(fd);
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(io::Error::other(format!(
            "log file {name} is not a regular file"
        )));
    }
    Ok((file, metadata.len()))
}

/// The indexes N of the files `<base>.N` in `dir`.
fn existing_indexes(dir: &OwnedFd, base: &str) -> io::Result<Vec<u64>> {
    let prefix = format!("{base}.");
    let mut indexes = Vec::new();
    // The directory the descriptor holds, whatever its path names now.
    let listed = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    for entry in std::fs::read_dir(&listed)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(index) = name
            .to_str()
            .and_then(|name| name.strip_prefix(&prefix))
            .and_then(|suffix| suffix.parse::<u64>().ok())
        else {
            continue;
        };
        if entry.file_type()?.is_file() {
            indexes.push(index);
        }
    }
    Ok(indexes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path, name: &str) -> String {
        std::fs::read_to_string(dir.join(name)).unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn output_starts_in_index_zero() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RotatingLog::open(dir.path(), "web.stdout", 3, 100).unwrap();
        log.append(b"hello\n").unwrap();
        assert_eq!(names(dir.path()), ["web.stdout.0"]);
        assert_eq!(read(dir.path(), "web.stdout.0"), "hello\n");
    }

    #[test]
    fn a_full_file_rotates_to_the_next_index_without_splitting_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RotatingLog::open(dir.path(), "web.stdout", 5, 10).unwrap();
        log.append(b"aaaa\nbbbb\ncccc\n").unwrap();
        assert_eq!(read(dir.path(), "web.stdout.0"), "aaaa\nbbbb\n");
        assert_eq!(read(dir.path(), "web.stdout.1"), "cccc\n");
        // A line that does not fit the rest of file 1 starts file 2.
        log.append(b"dddddddd\n").unwrap();
        assert_eq!(read(dir.path(), "web.stdout.1"), "cccc\n");
        assert_eq!(read(dir.path(), "web.stdout.2"), "dddddddd\n");
    }

    #[test]
    fn a_line_longer_than_a_file_is_split_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RotatingLog::open(dir.path(), "t.stderr", 5, 4).unwrap();
        log.append(b"0123456789").unwrap();
        assert_eq!(read(dir.path(), "t.stderr.0"), "0123");
        assert_eq!(read(dir.path(), "t.stderr.1"), "4567");
        assert_eq!(read(dir.path(), "t.stderr.2"), "89");
    }

    #[test]
    fn only_the_newest_max_files_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RotatingLog::open(dir.path(), "t.stdout", 2, 4).unwrap();
        for line in ["aaa\n", "bbb\n", "ccc\n", "ddd\n"] {
            log.append(line.as_bytes()).unwrap();
        }
        // Each line filled a file; the next index opens only when more
        // output comes.
        assert_eq!(names(dir.path()), ["t.stdout.2", "t.stdout.3"]);
        assert_eq!(read(dir.path(), "t.stdout.3"), "ddd\n");
    }

    #[test]
    fn streams_rotate_independently() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = RotatingLog::open(dir.path(), "t.stdout", 1, 4).unwrap();
        let mut err = RotatingLog::open(dir.path(), "t.stderr", 1, 100).unwrap();
        out.append(b"aaa\nbbb\n").unwrap();
        err.append(b"oops\n").unwrap();
        assert_eq!(names(dir.path()), ["t.stderr.0", "t.stdout.1"]);
    }

    #[test]
    fn reopening_continues_after_the_highest_existing_index() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = RotatingLog::open(dir.path(), "t.stdout", 10, 8).unwrap();
            log.append(b"first\n").unwrap();
            log.append(b"second\n").unwrap();
        }
        // Indexes 0 (full) and 1 ("second\n", room for 1 more byte).
        let mut log = RotatingLog::open(dir.path(), "t.stdout", 10, 8).unwrap();
        assert_eq!(log.current_path(), dir.path().join("t.stdout.1"));
        log.append(b"third\n").unwrap();
        assert_eq!(read(dir.path(), "t.stdout.0"), "first\n");
        assert_eq!(read(dir.path(), "t.stdout.1"), "second\n");
        assert_eq!(read(dir.path(), "t.stdout.2"), "third\n");
    }

    #[test]
    fn reopening_ignores_unrelated_names_and_gaps() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.stdout.7"), "old\n").unwrap();
        std::fs::write(dir.path().join("t.stdout.x"), "").unwrap();
        std::fs::write(dir.path().join("other.stdout.9"), "").unwrap();
        let mut log = RotatingLog::open(dir.path(), "t.stdout", 10, 100).unwrap();
        log.append(b"new\n").unwrap();
        assert_eq!(read(dir.path(), "t.stdout.7"), "old\nnew\n");
    }

    #[test]
    fn reopening_purges_beyond_max_files() {
        let dir = tempfile::tempdir().unwrap();
        for index in 0..5 {
            std::fs::write(dir.path().join(format!("t.stdout.{index}")), "x\n").unwrap();
        }
        let _log = RotatingLog::open(dir.path(), "t.stdout", 2, 100).unwrap();
        assert_eq!(names(dir.path()), ["t.stdout.3", "t.stdout.4"]);
    }

    #[test]
    fn links_planted_by_a_task_are_never_followed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("logs");
        std::fs::create_dir(&dir).unwrap();
        let outside = root.path().join("precious");
        std::fs::write(&outside, "keep\n").unwrap();
        // The next file of the rotation is a link out of the directory.
        std::os::unix::fs::symlink(&outside, dir.join("t.stdout.1")).unwrap();
        let mut log = RotatingLog::open(&dir, "t.stdout", 3, 4).unwrap();
        log.append(b"abc\n").unwrap();
        assert!(
            log.append(b"defg\n").is_err(),
            "rotation through a link refused"
        );
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep\n");
        // A file that is a link is refused when opened, too.
        std::os::unix::fs::symlink(&outside, dir.join("u.stdout.0")).unwrap();
        assert!(RotatingLog::open(&dir, "u.stdout", 3, 4).is_err());
        // So is a directory swapped for a link.
        let swapped = root.path().join("swapped");
        std::os::unix::fs::symlink(root.path(), &swapped).unwrap();
        assert!(RotatingLog::open(&swapped, "t.stdout", 3, 4).is_err());
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep\n");
    }
}
