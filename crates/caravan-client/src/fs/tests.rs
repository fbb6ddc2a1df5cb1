use super::follow::Follower;
use super::*;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::time::Duration;

/// An alloc dir laid out as the runner builds it, with a task `web`.
fn alloc() -> (tempfile::TempDir, AllocFs) {
    let base = tempfile::tempdir().unwrap();
    let root = base.path();
    for dir in [
        "alloc/data",
        "alloc/logs",
        "alloc/tmp",
        "web/local",
        "web/secrets",
        "web/private",
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("alloc/data/out.txt"), "hello\nworld\n").unwrap();
    std::fs::write(root.join("web/secrets/token"), "s3cr3t").unwrap();
    std::fs::write(root.join("web/private/state"), "p").unwrap();
    let fs = AllocFs::new(root).unwrap();
    (base, fs)
}

fn assert_no_host_path(error: &FsError, base: &tempfile::TempDir) {
    let text = error.to_string();
    let host = base.path().to_string_lossy();
    assert!(!text.contains(host.as_ref()), "{text}");
}

#[test]
fn resolves_paths_inside_the_root() {
    let (_base, fs) = alloc();
    assert_eq!(fs.resolve("/").unwrap().relative, "");
    assert_eq!(fs.resolve("").unwrap().relative, "");
    assert_eq!(
        fs.resolve("/alloc/data/out.txt").unwrap().relative,
        "alloc/data/out.txt"
    );
    assert_eq!(
        fs.resolve("alloc//./data/../data/out.txt")
            .unwrap()
            .relative,
        "alloc/data/out.txt"
    );
}

#[test]
fn refuses_every_escape() {
    let (base, fs) = alloc();
    std::fs::write(base.path().parent().unwrap().join("outside"), "x").ok();
    for path in [
        "..",
        "../..",
        "/..",
        "alloc/../..",
        "alloc/data/../../../etc/passwd",
    ] {
        let error = fs.resolve(path).unwrap_err();
        assert_eq!(error, FsError::Escapes, "{path}");
    }
    // Absolute paths are taken under the root, where /etc does not exist.
    let error = fs.resolve("/etc/passwd").unwrap_err();
    assert_eq!(error, FsError::NotFound("etc/passwd".into()));
    assert_no_host_path(&error, &base);
    // A percent-encoded `..` that reaches us decoded once more is a plain
    // (missing) name, never a parent.
    let error = fs.resolve("%2e%2e/%2e%2e/etc/passwd").unwrap_err();
    assert!(matches!(error, FsError::NotFound(_)), "{error}");
    assert_eq!(fs.resolve("alloc/\0/x").unwrap_err(), FsError::Escapes);
}

#[test]
fn refuses_symlinks_that_leave_but_follows_those_that_stay() {
    let (base, fs) = alloc();
    let root = base.path();
    symlink("/etc", root.join("alloc/data/etc")).unwrap();
    symlink("../../web/local", root.join("alloc/data/local")).unwrap();
    symlink("../../web/secrets", root.join("alloc/data/sneaky")).unwrap();
    std::fs::write(root.join("web/local/conf"), "c").unwrap();
    for path in [
        "alloc/data/etc",
        "alloc/data/etc/passwd",
        "alloc/data/etc/./hosts",
    ] {
        let error = fs.resolve(path).unwrap_err();
        assert_eq!(error, FsError::Escapes, "{path}");
    }
    assert_eq!(fs.read_at("alloc/data/local/conf", 0, None).unwrap(), b"c");
    let error = fs.read_at("alloc/data/sneaky/token", 0, None).unwrap_err();
    assert_eq!(error, FsError::Secret("web/secrets/token".into()));
    // Listed, the symlink is shown as one and not followed.
    let entries = fs.list("alloc/data").unwrap();
    let etc = entries.iter().find(|entry| entry.name == "etc").unwrap();
    assert!(etc.file_mode.starts_with('L'), "{}", etc.file_mode);
    assert!(!etc.is_dir);
}

#[test]
fn refuses_secrets_and_private() {
    let (base, fs) = alloc();
    for (path, expected) in [
        (
            "web/secrets/token",
            FsError::Secret("web/secrets/token".into()),
        ),
        ("/web/secrets", FsError::Secret("web/secrets".into())),
        (
            "web/local/../secrets/token",
            FsError::Secret("web/secrets/token".into()),
        ),
        (
            "web/private/state",
            FsError::Private("web/private/state".into()),
        ),
    ] {
        let error = fs.read_at(path, 0, None).unwrap_err();
        assert_eq!(error, expected, "{path}");
        assert_no_host_path(&error, &base);
        assert_eq!(fs.list(path).unwrap_err(), expected, "{path}");
    }
    assert_eq!(
        FsError::Secret("web/secrets/token".into()).to_string(),
        "Reading secret file prohibited: web/secrets/token"
    );
    // The task directory itself lists its secrets directory by name.
    let names: Vec<String> = fs
        .list("web")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["local", "private", "secrets"]);
}

#[test]
fn lists_and_stats_as_nomad() {
    let (base, fs) = alloc();
    let root = base.path();
    std::fs::set_permissions(
        root.join("alloc/data/out.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("alloc/tmp"),
        std::fs::Permissions::from_mode(0o1777),
    )
    .unwrap();
    let names: Vec<String> = fs.list("/").unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["alloc", "web"]);
    let entries = fs.list("/alloc").unwrap();
    let tmp = entries.iter().find(|entry| entry.name == "tmp").unwrap();
    assert_eq!(tmp.file_mode, "dtrwxrwxrwx");
    assert!(tmp.is_dir);
    let out = &fs.list("alloc/data").unwrap()[0];
    assert_eq!(
        (out.name.as_str(), out.size, out.file_mode.as_str()),
        ("out.txt", 12, "-rw-r--r--")
    );
    assert!(chrono::DateTime::parse_from_rfc3339(&out.mod_time).is_ok());
    let json = serde_json::to_string(out).unwrap();
    assert!(
        json.starts_with(
            r#"{"Name":"out.txt","IsDir":false,"Size":12,"FileMode":"-rw-r--r--","ModTime":"#
        ),
        "{json}"
    );
    assert!(!json.contains("ContentType"));

    let stat = fs.stat("alloc/data/out.txt").unwrap();
    assert_eq!(stat.content_type, "text/plain; charset=utf-8");
    assert_eq!(fs.stat("/").unwrap().name, "/");
    assert_eq!(fs.stat("alloc").unwrap().content_type, "");
    assert_eq!(
        fs.list("alloc/data/out.txt").unwrap_err(),
        FsError::NotDirectory("alloc/data/out.txt".into())
    );
    assert_eq!(
        fs.stat("alloc/nope").unwrap_err().to_string(),
        "stat alloc/nope: no such file or directory"
    );
}

#[test]
fn sniffs_content_types() {
    assert_eq!(content_type("a/b.json", b"{}"), "application/json");
    assert_eq!(
        content_type("x", b"plain\ttext\n"),
        "text/plain; charset=utf-8"
    );
    assert_eq!(content_type("x", b""), "text/plain; charset=utf-8");
    assert_eq!(
        content_type("x", "\u{e9}t\u{e9}".as_bytes()),
        "text/plain; charset=utf-8"
    );
    // A character cut by the 512-byte sample is still text.
    assert_eq!(
        content_type("x", &"\u{e9}".as_bytes()[..1]),
        "text/plain; charset=utf-8"
    );
    assert_eq!(
        content_type("x", b"\x7fELF\x02\x01\0"),
        "application/octet-stream"
    );
    assert_eq!(
        content_type("x", b"<html><script>"),
        "text/plain; charset=utf-8"
    );
}

#[test]
fn formats_modes_as_go() {
    assert_eq!(go_file_mode(0o100_644), "-rw-r--r--");
    assert_eq!(go_file_mode(0o040_777), "drwxrwxrwx");
    assert_eq!(go_file_mode(0o041_777), "dtrwxrwxrwx");
    assert_eq!(go_file_mode(0o120_777), "Lrwxrwxrwx");
    assert_eq!(go_file_mode(0o104_755), "urwxr-xr-x");
    assert_eq!(go_file_mode(0o020_666), "Dcrw-rw-rw-");
    assert_eq!(go_file_mode(0o010_600), "prw-------");
}

#[test]
fn reads_whole_files_and_ranges() {
    let (_base, fs) = alloc();
    assert_eq!(
        fs.read_at("alloc/data/out.txt", 0, None).unwrap(),
        b"hello\nworld\n"
    );
    assert_eq!(
        fs.read_at("alloc/data/out.txt", 6, None).unwrap(),
        b"world\n"
    );
    assert_eq!(
        fs.read_at("alloc/data/out.txt", 6, Some(3)).unwrap(),
        b"wor"
    );
    assert_eq!(fs.read_at("alloc/data/out.txt", 100, Some(3)).unwrap(), b"");
    assert_eq!(
        fs.read_at("alloc/data", 0, None).unwrap_err(),
        FsError::IsDirectory("alloc/data".into())
    );
}

/// Writes `<task>.stdout.<n>` for each content, in order.
fn logs(fs_root: &Path, contents: &[&str]) {
    for (index, content) in contents.iter().enumerate() {
        std::fs::write(
            fs_root.join(format!("alloc/logs/web.stdout.{index}")),
            content,
        )
        .unwrap();
    }
}

fn drain(cursor: &mut LogCursor, max: usize) -> Vec<(String, u64, String)> {
    let mut chunks = Vec::new();
    while let Some(chunk) = cursor.next_chunk(max).unwrap() {
        chunks.push((
            chunk.file,
            chunk.offset,
            String::from_utf8(chunk.data).unwrap(),
        ));
    }
    chunks
}

#[test]
fn lists_log_files_by_index_and_skips_others() {
    let (base, fs) = alloc();
    let root = base.path();
    for name in [
        "web.stdout.10",
        "web.stdout.2",
        "web.stderr.0",
        "web.stdout.x",
        "api.stdout.0",
    ] {
        std::fs::write(root.join("alloc/logs").join(name), name).unwrap();
    }
    symlink("/etc/passwd", root.join("alloc/logs/web.stdout.11")).unwrap();
    let files = fs.log_files("web", "stdout").unwrap();
    let names: Vec<&str> = files.iter().map(|file| file.name.as_str()).collect();
    assert_eq!(
        names,
        ["alloc/logs/web.stdout.2", "alloc/logs/web.stdout.10"]
    );
    assert_eq!(files[1].size, 13);
    assert!(fs.log_files("../web", "stdout").is_err());
}

#[test]
fn reads_logs_across_rotated_files_from_either_end() {
    let (base, fs) = alloc();
    logs(base.path(), &["aaaa", "bbbb", "cc"]);
    let files = fs.log_files("web", "stdout").unwrap();
    let all = drain(
        &mut LogCursor::new(fs.clone(), files.clone(), 0, Origin::Start),
        3,
    );
    assert_eq!(
        all,
        [
            ("alloc/logs/web.stdout.0".to_string(), 3, "aaa".to_string()),
            ("alloc/logs/web.stdout.0".to_string(), 4, "a".to_string()),
            ("alloc/logs/web.stdout.1".to_string(), 3, "bbb".to_string()),
            ("alloc/logs/web.stdout.1".to_string(), 4, "b".to_string()),
            ("alloc/logs/web.stdout.2".to_string(), 2, "cc".to_string()),
        ]
    );
    let text = |offset, origin| -> String {
        drain(
            &mut LogCursor::new(fs.clone(), files.clone(), offset, origin),
            64,
        )
        .into_iter()
        .map(|(_, _, data)| data)
        .collect()
    };
    assert_eq!(text(0, Origin::Start), "aaaabbbbcc");
    assert_eq!(text(5, Origin::Start), "bbbcc");
    assert_eq!(text(100, Origin::Start), "");
    assert_eq!(text(0, Origin::End), "");
    assert_eq!(text(2, Origin::End), "cc");
    // Back across two rotations.
    assert_eq!(text(7, Origin::End), "abbbbcc");
    assert_eq!(text(6, Origin::End), "bbbbcc");
    assert_eq!(text(100, Origin::End), "aaaabbbbcc");
    assert_eq!(log_start(&files, 7, Origin::End), (0, 3));
    assert_eq!(log_start(&[], 7, Origin::End), (0, 0));
}

#[test]
fn a_log_file_removed_by_rotation_is_skipped() {
    let (base, fs) = alloc();
    logs(base.path(), &["aaaa", "bbbb"]);
    let files = fs.log_files("web", "stdout").unwrap();
    std::fs::remove_file(base.path().join("alloc/logs/web.stdout.0")).unwrap();
    let chunks = drain(&mut LogCursor::new(fs, files, 0, Origin::Start), 64);
    assert_eq!(
        chunks,
        [("alloc/logs/web.stdout.1".to_string(), 4, "bbbb".to_string())]
    );
}

/// Stands for a host file a task would like to read (`/etc/shadow`).
const SHADOW: &[u8] = b"root:$6$not-for-tasks:19000:0:99999:7:::\n";

/// A directory outside the alloc dir holding `shadow`, larger than any
/// log the tests write (so an offset in a log is inside it too).
fn outside() -> tempfile::TempDir {
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("shadow"), SHADOW.repeat(100)).unwrap();
    other
}

fn assert_escapes<T: std::fmt::Debug>(result: Result<T, FsError>, base: &tempfile::TempDir) {
    let error = result.unwrap_err();
    assert_eq!(error, FsError::Escapes);
    assert_no_host_path(&error, base);
}

#[test]
fn a_followed_log_swapped_for_a_symlink_out_is_never_read() {
    let (base, fs) = alloc();
    let other = outside();
    let shadow = other.path().join("shadow");
    logs(base.path(), &["one\n"]);
    let files = fs.log_files("web", "stdout").unwrap();
    let mut follower =
        Follower::logs(fs.clone(), "web", "stdout", files.clone(), 0, Origin::Start).unwrap();
    let mut file_follower = Follower::file(fs.clone(), files[0].clone(), 0, Origin::Start);
    let mut cursor = LogCursor::new(fs.clone(), files.clone(), 0, Origin::Start);
    assert_eq!(follower.poll(32).unwrap().len(), 1);
    assert_eq!(file_follower.poll(32).unwrap().len(), 1);
    // The task swaps the file being followed for a symlink out.
    let log = base.path().join("alloc/logs/web.stdout.0");
    std::fs::remove_file(&log).unwrap();
    symlink(&shadow, &log).unwrap();
    for _ in 0..3 {
        assert_escapes(follower.poll(32), &base);
        assert_escapes(file_follower.poll(32), &base);
    }
    assert_escapes(cursor.next_chunk(64), &base);
    assert_escapes(fs.read_at("alloc/logs/web.stdout.0", 0, None), &base);
    // A symlink named as a newer log is not a log at all.
    assert_eq!(fs.log_files("web", "stdout").unwrap(), []);
    // Or the whole logs directory, for one out with a log in it.
    let logs_dir = base.path().join("alloc/logs");
    std::fs::rename(&logs_dir, base.path().join("alloc/old-logs")).unwrap();
    std::fs::create_dir(other.path().join("logs")).unwrap();
    std::fs::write(other.path().join("logs/web.stdout.0"), SHADOW).unwrap();
    symlink(other.path().join("logs"), &logs_dir).unwrap();
    assert_escapes(fs.log_files("web", "stdout"), &base);
    assert_escapes(
        LogCursor::new(fs.clone(), files.clone(), 0, Origin::Start).next_chunk(64),
        &base,
    );
    let mut follower =
        Follower::logs(fs.clone(), "web", "stdout", files, 0, Origin::Start).unwrap();
    assert_escapes(follower.poll(32), &base);
}

#[test]
fn a_directory_swapped_for_a_symlink_after_its_check_is_refused() {
    let (base, fs) = alloc();
    let other = outside();
    std::fs::write(other.path().join("out.txt"), SHADOW).unwrap();
    // Checked while it is the real directory...
    assert_eq!(fs.resolve("alloc/data").unwrap().relative, "alloc/data");
    let (name, _, _) = fs.open("alloc/data/out.txt").unwrap();
    // ...then the task swaps it for a symlink out.
    let data = base.path().join("alloc/data");
    std::fs::rename(&data, base.path().join("alloc/data.old")).unwrap();
    symlink(other.path(), &data).unwrap();
    assert_escapes(fs.list("alloc/data"), &base);
    assert_escapes(fs.stat("alloc/data"), &base);
    assert_escapes(fs.cat(&name), &base);
    assert_escapes(fs.read_at(&name, 0, None), &base);
    assert_escapes(fs.stat(&name), &base);
    // An open that raced a check: what the handle is, not the path the
    // caller named, decides.
    let handle = open_path(&data).unwrap();
    assert_escapes(fs.checked(handle, "alloc/data".into(), Want::Dir), &base);
    let handle = open_path(&other.path().join("out.txt")).unwrap();
    assert_escapes(fs.checked(handle, name.clone(), Want::File), &base);
    let handle = open_path(&base.path().join("web/secrets/token")).unwrap();
    assert_eq!(
        fs.checked(handle, name, Want::File).unwrap_err(),
        FsError::Secret("web/secrets/token".into())
    );
    // A device out of the root is refused without opening it for I/O.
    symlink("/dev/zero", base.path().join("alloc/tmp/zero")).unwrap();
    assert_escapes(fs.cat("alloc/tmp/zero"), &base);
    let zero = LogFile {
        index: 0,
        name: "alloc/tmp/zero".into(),
        size: 0,
    };
    assert_escapes(Follower::file(fs, zero, 0, Origin::Start).poll(32), &base);
}

#[test]
fn fifos_are_listed_but_never_opened_for_reading() {
    use nix::sys::stat::Mode;
    let (base, fs) = alloc();
    let root = base.path();
    nix::unistd::mkfifo(&root.join("alloc/data/pipe"), Mode::S_IRWXU).unwrap();
    nix::unistd::mkfifo(&root.join("alloc/logs/web.stdout.0"), Mode::S_IRWXU).unwrap();
    symlink("pipe", root.join("alloc/data/link")).unwrap();
    // Off the test thread: were a FIFO opened, it would block for ever.
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let pipe = LogFile {
            index: 0,
            name: "alloc/data/pipe".into(),
            size: 0,
        };
        let results = (
            fs.cat("alloc/data/pipe"),
            fs.read_at("alloc/data/link", 0, Some(10)),
            Follower::file(fs.clone(), pipe, 0, Origin::Start).poll(32),
            fs.stat("alloc/data/pipe"),
            fs.log_files("web", "stdout"),
        );
        let _ = sender.send(results);
    });
    let (cat, read_at, poll, stat, logs) = receiver
        .recv_timeout(Duration::from_secs(10))
        .expect("reading a FIFO blocked");
    let not_regular = FsError::NotRegular("alloc/data/pipe".into());
    assert_eq!(cat.unwrap_err(), not_regular);
    assert_eq!(poll.unwrap_err(), not_regular);
    assert_eq!(
        read_at.unwrap_err().to_string(),
        r#"file "alloc/data/link" is not a regular file"#
    );
    let stat = stat.unwrap();
    assert!(stat.file_mode.starts_with('p'), "{}", stat.file_mode);
    assert_eq!(stat.content_type, "");
    assert_eq!(logs.unwrap(), []);
}

#[test]
fn huge_sparse_files_are_read_a_bounded_amount() {
    let (base, fs) = alloc();
    let root = base.path();
    let huge: u64 = 1 << 40;
    File::create(root.join("alloc/data/huge"))
        .and_then(|file| file.set_len(huge))
        .unwrap();
    let error = fs.cat("alloc/data/huge").unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"file "alloc/data/huge" is larger than 64 MiB: read it with readat and a limit"#
    );
    for limit in [None, Some(0), Some(u64::MAX)] {
        let data = fs.read_at("alloc/data/huge", 0, limit).unwrap();
        assert_eq!(data.len(), MAX_READ, "{limit:?}");
    }
    assert_eq!(
        fs.read_at("alloc/data/huge", huge - 5, None).unwrap(),
        [0; 5]
    );
    // The cap itself is allowed whole.
    File::create(root.join("alloc/data/cap"))
        .and_then(|file| file.set_len(MAX_READ as u64))
        .unwrap();
    assert_eq!(fs.cat("alloc/data/cap").unwrap().len(), MAX_READ);

    // Logs read without following stop at the cap.
    File::create(root.join("alloc/logs/web.stdout.0"))
        .and_then(|file| file.set_len(huge))
        .unwrap();
    std::fs::write(root.join("alloc/logs/web.stdout.1"), "tail\n").unwrap();
    let files = fs.log_files("web", "stdout").unwrap();
    let mut cursor = LogCursor::new(fs.clone(), files.clone(), 0, Origin::Start);
    let mut total = 0;
    while let Some(chunk) = cursor.next_chunk(MAX_FRAME_DATA).unwrap() {
        assert!(chunk.data.len() <= MAX_FRAME_DATA);
        total += chunk.data.len();
    }
    assert_eq!(total, MAX_READ);
    // A follow returns after its budget of frames, every poll.
    let mut follower = Follower::logs(fs, "web", "stdout", files, 0, Origin::Start).unwrap();
    for _ in 0..3 {
        assert_eq!(follower.poll(4).unwrap().len(), 4);
    }
}
