use super::*;
use std::os::unix::fs::{symlink, PermissionsExt};

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
    let all = drain(&mut LogCursor::new(files.clone(), 0, Origin::Start), 3);
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
        drain(&mut LogCursor::new(files.clone(), offset, origin), 64)
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
    let chunks = drain(&mut LogCursor::new(files, 0, Origin::Start), 64);
    assert_eq!(
        chunks,
        [("alloc/logs/web.stdout.1".to_string(), 4, "bbbb".to_string())]
    );
}
