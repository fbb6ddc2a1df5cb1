//! Files that hold secrets or state nobody else should read: directories
//! made `0700`, files written `0600` atomically (temporary file, fsync,
//! rename, fsync of the directory) so a crash never leaves half a file,
//! and the UUID files the agent keeps its identities in.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The mode of a private directory.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// The mode of a private file.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Creates `path` and any missing parents, and makes `path` (and every
/// directory this call created) `0700`. An existing `path` is made `0700`
/// too, so data dirs made by older versions are tightened on start.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut cursor = Some(path);
    while let Some(dir) = cursor {
        if dir.as_os_str().is_empty() || dir.exists() {
            break;
        }
        missing.push(dir.to_path_buf());
        cursor = dir.parent();
    }
    std::fs::create_dir_all(path)
        .map_err(|error| annotate(error, "failed to create directory", path))?;
    set_mode(path, PRIVATE_DIR_MODE)?;
    for dir in &missing {
        set_mode(dir, PRIVATE_DIR_MODE)?;
    }
    Ok(())
}

/// Makes an existing file or directory `mode` (no-op off Unix).
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|error| annotate(error, "failed to set the mode of", path))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// Creates `path` as an empty `0600` file if it does not exist, and makes an
/// existing one `0600`. For files another library then opens itself (a
/// database), so they are never readable by others, not even for a moment.
pub fn ensure_private_file(path: &Path) -> io::Result<()> {
    match open_private_rw(path) {
        Ok(file) => {
            file.sync_all()?;
            if let Some(dir) = path.parent() {
                sync_dir(dir)?;
            }
            Ok(())
        }
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            set_mode(path, PRIVATE_FILE_MODE)
        }
        Err(error) => Err(annotate(error, "failed to create", path)),
    }
}

/// Replaces `path` with `bytes`, atomically and durably: the bytes go to a
/// `0600` temporary file in the same directory, which is fsynced and
/// renamed over `path`, and then the directory is fsynced. Readers see the
/// old file or the new one, never a mixture, and after a crash the new one
/// is there once this returned.
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_private_atomic_with(path, |file| file.write_all(bytes)).map(|_| ())
}

/// [`write_private_atomic`] for contents too large to hold in memory:
/// `write` streams them into the temporary file (buffer it; it is flushed
/// by `write`'s return), which is then fsynced and renamed over `path`.
/// Returns the file, still open (for reading back, or handing on).
pub fn write_private_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<File> {
    let dir = parent_of(path);
    let temporary = temporary_path(path);
    let written = (|| -> io::Result<File> {
        let mut file = open_private_rw(&temporary)?;
        write(&mut file)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        Ok(file)
    })();
    let file = match written {
        Ok(file) => file,
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            return Err(annotate(error, "failed to write", path));
        }
    };
    sync_dir(&dir).map_err(|error| annotate(error, "failed to sync directory", &dir))?;
    Ok(file)
}

/// Removes the temporary files [`write_private_atomic`] leaves beside
/// `path` when a crash interrupts it (and the `<name>.tmp` older versions
/// used). Only call it while nothing else writes `path`.
pub fn remove_temporaries(path: &Path) -> io::Result<()> {
    let Some(name) = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
    else {
        return Ok(());
    };
    let prefix = format!(".{name}.");
    let legacy = format!("{name}.tmp");
    let entries = match std::fs::read_dir(parent_of(path)) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let ours = file_name.starts_with(&prefix) && file_name.ends_with(".tmp");
        if ours || file_name == legacy {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Fsyncs a directory, making renames and creations in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Reads the UUID kept in `path`, creating it (`0600`, atomically and
/// durably) on first use. A file that holds something else is an error:
/// an identity is never silently replaced.
pub fn load_or_create_uuid(path: &Path) -> io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) if uuid::Uuid::parse_str(text.trim()).is_ok() => {
            // Tighten files written by older versions.
            set_mode(path, PRIVATE_FILE_MODE)?;
            Ok(text.trim().to_string())
        }
        Ok(_) => Err(io::Error::other(format!(
            "{} does not hold a UUID",
            path.display()
        ))),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let id = uuid::Uuid::new_v4().to_string();
            write_private_atomic(path, id.as_bytes())?;
            Ok(id)
        }
        Err(error) => Err(annotate(error, "failed to read", path)),
    }
}

/// Creates a new file, `0600` from the start, open for reading too.
fn open_private_rw(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(PRIVATE_FILE_MODE);
    }
    let file = options.open(path)?;
    // The umask can only take bits away, but be explicit anyway.
    set_mode(path, PRIVATE_FILE_MODE)?;
    Ok(file)
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A name beside `path` no other writer uses at the same time.
fn temporary_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    parent_of(path).join(format!(".{name}.{}.{unique}.tmp", std::process::id()))
}

fn annotate(error: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("{what} {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn private_dirs_are_0700_including_created_parents() {
        let root = tempfile::tempdir().unwrap();
        let leaf = root.path().join("a/b/c");
        create_private_dir(&leaf).unwrap();
        assert_eq!(mode(&leaf), 0o700);
        assert_eq!(mode(&root.path().join("a/b")), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
        // An existing, looser directory is tightened.
        let loose = root.path().join("loose");
        std::fs::create_dir(&loose).unwrap();
        set_mode(&loose, 0o755).unwrap();
        create_private_dir(&loose).unwrap();
        assert_eq!(mode(&loose), 0o700);
    }

    #[cfg(unix)]
    #[test]
    fn atomic_writes_are_0600_and_replace_the_file() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("secret");
        write_private_atomic(&path, b"one").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        assert_eq!(mode(&path), 0o600);
        set_mode(&path, 0o644).unwrap();
        write_private_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), 0o600);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("secret")]);
    }

    #[test]
    fn interrupted_writes_are_cleaned_up() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("state.snap");
        write_private_atomic(&path, b"kept").unwrap();
        std::fs::write(temporary_path(&path), b"half").unwrap();
        std::fs::write(root.path().join("state.snap.tmp"), b"old").unwrap();
        std::fs::write(root.path().join("other"), b"other").unwrap();
        remove_temporaries(&path).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["other", "state.snap"]);
    }

    #[test]
    fn a_failed_write_names_the_file() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("missing-dir/secret");
        let error = write_private_atomic(&path, b"x").unwrap_err();
        assert!(error.to_string().contains("missing-dir"), "{error}");
    }

    #[cfg(unix)]
    #[test]
    fn ensure_private_file_creates_or_tightens() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("db");
        ensure_private_file(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        std::fs::write(&path, b"data").unwrap();
        set_mode(&path, 0o644).unwrap();
        ensure_private_file(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
    }

    #[test]
    fn uuid_files_are_stable_private_and_checked() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("node-id");
        let first = load_or_create_uuid(&path).unwrap();
        assert!(uuid::Uuid::parse_str(&first).is_ok());
        assert_eq!(load_or_create_uuid(&path).unwrap(), first);
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
        std::fs::write(&path, "garbage").unwrap();
        let error = load_or_create_uuid(&path).unwrap_err();
        assert!(error.to_string().contains("node-id"), "{error}");
    }

    #[cfg(unix)]
    #[test]
    fn loaded_uuid_files_are_tightened() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("client-id");
        std::fs::write(&path, uuid::Uuid::new_v4().to_string()).unwrap();
        set_mode(&path, 0o644).unwrap();
        load_or_create_uuid(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
    }
}
