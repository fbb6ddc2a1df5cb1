//! The allocation directory, laid out as Nomad's (scheduling.md §8.4):
//! `<alloc_dir>/<alloc_id>/alloc/{data,logs,tmp}` shared by the tasks, and
//! `<task>/{local,secrets,tmp,private}` per task.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One allocation's directory.
#[derive(Debug, Clone)]
pub struct AllocDir {
    root: PathBuf,
}

impl AllocDir {
    /// The directory of allocation `alloc_id` under `base`. The ID must be
    /// a UUID, so it can never name a path outside `base`.
    pub fn new(base: &Path, alloc_id: &str) -> io::Result<Self> {
        if uuid::Uuid::parse_str(alloc_id).is_err() || alloc_id.len() != 36 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid allocation ID {alloc_id:?}"),
            ));
        }
        Ok(Self {
            root: base.join(alloc_id),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The shared `alloc/` directory.
    pub fn shared(&self) -> PathBuf {
        self.root.join("alloc")
    }

    pub fn logs(&self) -> PathBuf {
        self.shared().join("logs")
    }

    pub fn task(&self, task: &str) -> PathBuf {
        self.root.join(task)
    }

    /// Creates the shared directories (idempotent). `data` and `tmp` are
    /// for every task of the allocation to write, whichever user it runs
    /// as (Nomad's); sticky, so none removes another's files. `logs` is
    /// written by the executors, as root.
    pub fn build(&self) -> io::Result<()> {
        for dir in ["data", "logs", "tmp"] {
            std::fs::create_dir_all(self.shared().join(dir))?;
        }
        set_mode(&self.shared().join("data"), 0o1777)?;
        set_mode(&self.shared().join("tmp"), 0o1777)
    }

    /// Creates one task's directories (idempotent). Task names were
    /// validated by the server; one that could leave the directory is
    /// refused all the same.
    pub fn build_task(&self, task: &str) -> io::Result<PathBuf> {
        if task.is_empty() || task.contains('/') || task == "." || task == ".." || task == "alloc" {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid task name {task:?}"),
            ));
        }
        let dir = self.task(task);
        for sub in ["local", "secrets", "tmp", "private"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        set_mode(&dir.join("tmp"), 0o1777)?;
        set_mode(&dir.join("secrets"), 0o700)?;
        set_mode(&dir.join("private"), 0o700)?;
        Ok(dir)
    }

    /// Removes everything (a garbage-collected allocation).
    pub fn destroy(&self) -> io::Result<()> {
        match std::fs::remove_dir_all(&self.root) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lays_out_nomads_directories_and_refuses_escapes() {
        let base = tempfile::tempdir().unwrap();
        assert!(AllocDir::new(base.path(), "../etc").is_err());
        let id = "0b6e1a36-3b9e-4a7c-9a43-3f3c0a3c1d2e";
        let dir = AllocDir::new(base.path(), id).unwrap();
        dir.build().unwrap();
        let task = dir.build_task("web").unwrap();
        for path in [
            "alloc/data",
            "alloc/logs",
            "alloc/tmp",
            "web/local",
            "web/secrets",
            "web/tmp",
        ] {
            assert!(base.path().join(id).join(path).is_dir(), "{path}");
        }
        assert_eq!(task, base.path().join(id).join("web"));
        for shared in ["alloc/data", "alloc/tmp"] {
            let meta = std::fs::metadata(base.path().join(id).join(shared)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o7777, 0o1777, "{shared}");
        }
        assert!(dir.build_task("..").is_err());
        assert!(dir.build_task("a/b").is_err());
        dir.destroy().unwrap();
        assert!(!base.path().join(id).exists());
    }
}
