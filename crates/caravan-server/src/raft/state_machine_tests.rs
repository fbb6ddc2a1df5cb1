use std::io::Cursor;

use super::*;
use crate::raft::snapshot::tests::{bytes_of, full_state, meta};

/// Snapshot bytes (current format) of an empty state up to `index`.
pub(crate) fn snapshot_bytes(index: u64) -> Vec<u8> {
    bytes_of(&meta(index), &State::default())
}

fn machine_in(dir: &Path) -> (StateMachine, Arc<StateStore>) {
    let store = Arc::new(StateStore::new());
    let machine = StateMachine::open(dir, Arc::clone(&store)).unwrap();
    (machine, store)
}

#[test]
fn a_damaged_snapshot_file_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SNAPSHOT_FILE);
    let bytes = bytes_of(&meta(7), &full_state());
    // Positions in the magic line, the header, a table, the trailer.
    for position in [
        0,
        17,
        25,
        bytes.len() / 2,
        bytes.len() - 40,
        bytes.len() - 2,
    ] {
        let mut damaged = bytes.clone();
        damaged[position] ^= 0x20;
        std::fs::write(&path, &damaged).unwrap();
        let store = Arc::new(StateStore::new());
        let error = match StateMachine::open(dir.path(), Arc::clone(&store)) {
            Ok(_) => panic!("a snapshot damaged at {position} was loaded"),
            Err(error) => error.to_string(),
        };
        assert!(error.starts_with("data loss: "), "{error}");
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains("corrupt snapshot"), "{error}");
        assert_eq!(store.snapshot().latest_index(), 0, "nothing was installed");
    }
    let mut damaged = bytes.clone();
    let last = damaged.len() - 2;
    damaged[last] ^= 0x20;
    std::fs::write(&path, &damaged).unwrap();
    let error = StateMachine::open(dir.path(), Arc::new(StateStore::new()))
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("checksum mismatch"), "{error}");
}

#[cfg(unix)]
#[tokio::test]
async fn snapshots_are_written_private_and_load_again() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(SNAPSHOT_DIR);
    let (mut machine, store) = machine_in(&dir);
    store.install((*full_state()).clone());
    let snapshot = machine.build_snapshot().await.unwrap();
    assert!(matches!(snapshot.snapshot, SnapshotData::File(_)));
    let path = dir.join(SNAPSHOT_FILE);
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&path), 0o600);
    let on_disk = std::fs::read(&path).unwrap();
    assert!(on_disk.starts_with(b"CARAVAN-SNAPSHOT 3\n"));
    assert_eq!(on_disk, snapshot.snapshot.into_bytes().unwrap());
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    // The current snapshot is the file, with its metadata.
    let current = machine.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snapshot.meta);
    assert_eq!(current.snapshot.into_bytes().unwrap(), on_disk);
    // And it loads again, whole.
    let (reopened, restored) = machine_in(&dir);
    assert_eq!(reopened.snapshot_log_id(), snapshot.meta.last_log_id);
    assert_eq!(*restored.snapshot(), *store.snapshot());
}

#[tokio::test]
async fn a_damaged_snapshot_from_a_leader_is_not_installed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut machine, store) = machine_in(dir.path());
    // A live state and a kept snapshot, which must both stay as they are.
    store.note_index(3);
    let before = (*store.snapshot()).clone();
    machine.build_snapshot().await.unwrap();
    let kept = std::fs::read(dir.path().join(SNAPSHOT_FILE)).unwrap();

    let full = full_state();
    let bytes = bytes_of(&meta(9), &full);
    for position in [0, 30, bytes.len() / 3, bytes.len() - 2] {
        let mut damaged = bytes.clone();
        damaged[position] ^= 0x20;
        let error = machine
            .install_snapshot(&meta(9), SnapshotData::from(damaged))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("the snapshot from the leader: "),
            "{error}"
        );
        assert_eq!(*store.snapshot(), before, "the live state changed");
        assert_eq!(std::fs::read(dir.path().join(SNAPSHOT_FILE)).unwrap(), kept);
    }
    // Metadata that disagrees with the header is refused too.
    assert!(machine
        .install_snapshot(&meta(10), SnapshotData::from(bytes.clone()))
        .await
        .is_err());
    // The undamaged one installs, and is kept as it came.
    machine
        .install_snapshot(&meta(9), SnapshotData::from(bytes.clone()))
        .await
        .unwrap();
    assert_eq!(*store.snapshot(), *full);
    assert_eq!(machine.last_applied(), meta(9).last_log_id);
    assert_eq!(
        std::fs::read(dir.path().join(SNAPSHOT_FILE)).unwrap(),
        bytes
    );
}

#[tokio::test]
async fn a_leader_of_an_older_version_is_kept_in_the_current_format() {
    let disk = MemoryDisk::new();
    let store = Arc::new(StateStore::new());
    let mut machine =
        StateMachine::open_at(SnapshotPlace::Memory(disk.clone()), Arc::clone(&store)).unwrap();
    let state = full_state();
    let v2 = snapshot::encode_v2(&meta(9), &state).unwrap();
    machine
        .install_snapshot(&meta(9), SnapshotData::Bytes(Cursor::new(v2)))
        .await
        .unwrap();
    assert_eq!(*store.snapshot(), *state);
    let kept = disk.image().snapshot.clone().unwrap();
    assert!(kept.starts_with(b"CARAVAN-SNAPSHOT 3\n"));
    assert_eq!(snapshot::read(kept.as_slice(), None).unwrap().state, *state);
}

#[test]
fn old_snapshot_files_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let state = full_state();
    let v2 = snapshot::encode_v2(&meta(7), &state).unwrap();
    std::fs::write(dir.path().join(SNAPSHOT_FILE), &v2).unwrap();
    let (machine, store) = machine_in(dir.path());
    assert_eq!(machine.last_applied(), meta(7).last_log_id);
    assert_eq!(*store.snapshot(), *state);
}
