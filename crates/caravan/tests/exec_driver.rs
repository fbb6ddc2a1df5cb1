//! The exec driver end to end: real tasks under real executors (this
//! crate's `caravan executor`), isolated in namespaces, a chroot of bind
//! mounts and a cgroup, as `nobody` unless they say otherwise. These need
//! root and memory+cpu cgroup controllers; without them each test says so
//! and passes.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use caravan_drivers::exec::ExecState;
use caravan_drivers::{
    proc, Driver, DriverError, DriverSet, Exec, ExitResult, LogConfig, MountConfig, StartAttempt,
    TaskConfig, TaskHandle, TaskResources,
};

/// Generous: these bound a hang, they do not measure anything.
const LIMIT: Duration = Duration::from_secs(60);

/// Why these tests cannot run here, printed by the caller.
fn unsupported() -> Option<&'static str> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("the exec driver needs root");
    }
    if caravan_drivers::exec::cgroup::Hierarchy::detect().is_err() {
        return Some("the exec driver needs the memory and cpu cgroup controllers");
    }
    None
}

macro_rules! require_isolation {
    () => {
        if let Some(why) = unsupported() {
            eprintln!("skipping: {why}");
            return;
        }
    };
}

fn driver() -> Exec {
    Exec::new(PathBuf::from(env!("CARGO_BIN_EXE_caravan")))
}

/// A task laid out as the client lays it out (runner/dir.rs).
fn task(root: &Path, name: &str, script: &str) -> TaskConfig {
    let alloc_id = "0b6e1a36-3b9e-4a7c-9a43-3f3c0a3c1d2e";
    let alloc_dir = root.join(alloc_id);
    let task_dir = alloc_dir.join(name);
    for dir in ["local", "secrets", "tmp", "private"] {
        std::fs::create_dir_all(task_dir.join(dir)).unwrap();
    }
    for dir in ["data", "logs", "tmp"] {
        std::fs::create_dir_all(alloc_dir.join("alloc").join(dir)).unwrap();
    }
    let mut config = serde_json::Map::new();
    config.insert("command".into(), "/bin/sh".into());
    config.insert("args".into(), vec!["-c", script].into());
    TaskConfig {
        id: format!("{alloc_id}/{name}"),
        alloc_id: alloc_id.into(),
        task_name: name.into(),
        job_name: "example".into(),
        config,
        env: BTreeMap::from([
            (
                "PATH".to_string(),
                "/usr/local/bin:/usr/bin:/bin".to_string(),
            ),
            (
                "NOMAD_TASK_DIR".to_string(),
                task_dir.join("local").display().to_string(),
            ),
            (
                "NOMAD_ALLOC_DIR".to_string(),
                alloc_dir.join("alloc").display().to_string(),
            ),
        ]),
        user: String::new(),
        task_dir,
        logs: LogConfig {
            dir: alloc_dir.join("alloc").join("logs"),
            max_files: 2,
            max_file_size_mb: 1,
        },
        alloc_dir,
        resources: TaskResources {
            cpu: 100,
            memory_mb: 64,
            memory_max_mb: 0,
        },
        attempt: String::new(),
        mounts: Vec::new(),
    }
}

fn state(handle: &TaskHandle) -> ExecState {
    serde_json::from_value(handle.state.clone()).unwrap()
}

fn log(config: &TaskConfig, stream: &str) -> String {
    let path = config
        .logs
        .dir
        .join(format!("{}.{stream}.0", config.task_name));
    std::fs::read_to_string(path).unwrap_or_default()
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + LIMIT;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait(driver: &Exec, handle: &TaskHandle) -> ExitResult {
    tokio::time::timeout(LIMIT, driver.wait(handle))
        .await
        .expect("the task did not exit in time")
        .expect("wait failed")
}

fn alive(pid: i32) -> bool {
    proc::stat(pid).is_some_and(|stat| !stat.exited())
}

/// Nothing of the task is left: no process, no cgroup, no mount (the
/// mounts only ever existed in the task's namespace).
fn assert_gone(state: &ExecState, pids: &[i32]) {
    for pid in pids {
        assert!(!alive(*pid), "process {pid} of the task still runs");
    }
    for dir in &state.cgroup.dirs {
        assert!(!dir.exists(), "cgroup {} is left", dir.display());
    }
    let task_dir = state.state_dir.parent().unwrap().display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&task_dir),
        "a mount under {task_dir} is left: {mounts}"
    );
}

/// Whether a start got as far as the executor.
fn state_file_written(config: &TaskConfig) -> bool {
    config.task_dir.join(".caravan/executor.json").exists()
}

/// A tmpfs mounted on the host for a test, unmounted when dropped.
struct Submount(PathBuf);

impl Submount {
    fn new(at: &Path) -> Self {
        std::fs::create_dir_all(at).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("mode=1777,size=1m"),
        )
        .unwrap();
        Self(at.to_path_buf())
    }
}

impl Drop for Submount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[tokio::test]
async fn the_task_is_pid_1_in_its_own_world() {
    require_isolation!();
    let root = tempfile::tempdir().unwrap();
    // Certainly on the host, certainly not bound into the task.
    let marker = PathBuf::from(format!("/root/caravan-exec-marker-{}", std::process::id()));
    std::fs::write(&marker, "host only").unwrap();
    let script = format!(
        "echo pid=$$; echo host=$(hostname); \
         test -e {marker} && echo root=visible || echo root=hidden; \
         test -e {tmp} && echo tmp=visible || echo tmp=hidden; \
         test -r /bin/sh && echo sh=readable; \
         touch /usr/caravan-probe 2>/dev/null && echo usr=writable || echo usr=readonly; \
         touch /etc/caravan-probe 2>/dev/null && echo etc=writable || echo etc=readonly; \
         echo procs=$(ls /proc | grep -c '^[0-9]'); \
         echo task_dir=$NOMAD_TASK_DIR alloc_dir=$NOMAD_ALLOC_DIR cwd=$(pwd); \
         echo made > /local/out; echo shared > /alloc/data/out; \
         ls /.caravan 2>/dev/null | wc -l; \
         echo uid=$(id -u) suid=$(/local/suid-id -u); \
         grep -E '^(NoNewPrivs|CapEff):' /proc/self/status | tr -d ' \\t'; \
         echo s > /secrets/s && echo t > /tmp/t && echo own=writable; \
         while read -r dev at fs opts rest; do \
           case $at in /dev|/dev/*) continue;; esac; \
           case ,$opts, in *,nosuid,*) ;; *) echo suid:$at;; esac; \
           case ,$opts, in *,nodev,*) ;; *) echo dev:$at;; esac; \
           case $at in /usr|/usr/*|/etc|/etc/*) \
             case ,$opts, in *,ro,*) ;; *) echo rw:$at;; esac;; esac; \
         done < /proc/self/mounts; echo mounts=checked",
        marker = marker.display(),
        tmp = root.path().display(),
    );
    let config = task(root.path(), "web", &script);
    // A setuid-root binary in the task's reach: it must not make the task
    // root again.
    let suid = config.task_dir.join("local/suid-id");
    std::fs::copy("/usr/bin/id", &suid).unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let driver = driver();
    let handle = driver.start(config.clone()).await.unwrap();
    assert_eq!(handle.driver, "exec");
    let exit = wait(&driver, &handle).await;
    let _ = std::fs::remove_file(&marker);
    // Should the isolation break, the host's files are put back first.
    let leaked: Vec<&str> = ["/usr/caravan-probe", "/etc/caravan-probe"]
        .into_iter()
        .filter(|path| std::fs::remove_file(path).is_ok())
        .collect();
    assert!(leaked.is_empty(), "the task wrote {leaked:?} on the host");
    assert!(exit.successful(), "{exit:?}: {}", log(&config, "stderr"));
    let out = log(&config, "stdout");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pid=1", "{out}");
    let host = nix::unistd::gethostname().unwrap();
    assert_ne!(
        lines[1],
        format!("host={}", host.to_string_lossy()),
        "{out}"
    );
    assert_eq!(lines[1], "host=web-0b6e1a36", "{out}");
    assert_eq!(lines[2], "root=hidden", "{out}");
    assert_eq!(lines[3], "tmp=hidden", "{out}");
    assert_eq!(lines[4], "sh=readable", "{out}");
    assert_eq!(lines[5], "usr=readonly", "{out}");
    assert_eq!(lines[6], "etc=readonly", "{out}");
    // The shell and its pipeline, nothing of the host's.
    let procs: usize = lines[7].trim_start_matches("procs=").parse().unwrap();
    assert!((1..=6).contains(&procs), "{out}");
    assert_eq!(lines[8], "task_dir=/local alloc_dir=/alloc cwd=/", "{out}");
    // The executor's own files are hidden from the task.
    assert_eq!(lines[9].trim(), "0", "{out}");
    // Run as nobody, which no setuid binary, capability or device node
    // turns into root: nothing it sees is setuid, a device or, for the
    // host's directories, writable, submounts included.
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    assert_eq!(lines[10], format!("uid={0} suid={0}", nobody.uid), "{out}");
    assert_eq!(lines[11], "CapEff:0000000000000000", "{out}");
    assert_eq!(lines[12], "NoNewPrivs:1", "{out}");
    assert_eq!(lines[13], "own=writable", "{out}");
    assert_eq!(lines[14], "mounts=checked", "{out}");
    assert_eq!(
        std::fs::read_to_string(config.task_dir.join("local/out")).unwrap(),
        "made\n"
    );
    assert_eq!(
        std::fs::read_to_string(config.alloc_dir.join("alloc/data/out")).unwrap(),
        "shared\n"
    );
    assert_gone(&state(&handle), &[]);
    driver.destroy(&handle).await.unwrap();
    assert!(!state(&handle).state_dir.exists());
}

#[tokio::test]
async fn a_task_over_its_memory_limit_is_oom_killed() {
    require_isolation!();
    let root = tempfile::tempdir().unwrap();
    let mut config = task(
        root.path(),
        "hungry",
        "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
    );
    config.resources.memory_mb = 32;
    let driver = driver();
    let handle = driver.start(config.clone()).await.unwrap();
    let limit = state(&handle).cgroup.dirs[0].clone();
    let exit = wait(&driver, &handle).await;
    assert!(exit.oom_killed, "{exit:?}");
    assert!(!exit.successful());
    assert!(!log(&config, "stdout").contains("survived"));
    assert!(!limit.exists(), "the cgroup is removed once the task ended");
}

#[tokio::test]
async fn the_memory_and_cpu_limits_are_written() {
    require_isolation!();
    let root = tempfile::tempdir().unwrap();
    let mut config = task(root.path(), "limited", "echo up; sleep 1000");
    config.resources = TaskResources {
        cpu: 500,
        memory_mb: 48,
        memory_max_mb: 96,
    };
    let driver = driver();
    let handle = driver.start(config.clone()).await.unwrap();
    let cgroup = state(&handle);
    let read = |file: &str| {
        cgroup
            .cgroup
            .dirs
            .iter()
            .map(|dir| dir.join(file))
            .find(|path| path.exists())
            .map(|path| std::fs::read_to_string(path).unwrap().trim().to_string())
    };
    if cgroup.cgroup.version == 1 {
        assert_eq!(
            read("memory.limit_in_bytes").unwrap(),
            (96u64 << 20).to_string()
        );
        assert_eq!(
            read("memory.soft_limit_in_bytes").unwrap(),
            (48u64 << 20).to_string()
        );
        assert_eq!(read("cpu.shares").unwrap(), "500");
    } else {
        assert_eq!(read("memory.max").unwrap(), (96u64 << 20).to_string());
        assert_eq!(read("memory.low").unwrap(), (48u64 << 20).to_string());
    }
    let usage = driver.usage(&handle).await.unwrap();
    assert!(!usage.processes.is_empty());
    driver
        .stop(&handle, "SIGKILL", Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(wait(&driver, &handle).await.signal, 9);
    assert_gone(&cgroup, &[]);
}

#[tokio::test]
async fn stop_leaves_no_process_and_no_cgroup_behind() {
    require_isolation!();
    let root = tempfile::tempdir().unwrap();
    // A child in the task's group, one that left it, and PID 1 ignoring
    // SIGTERM as a namespace's init does.
    let config = task(
        root.path(),
        "tree",
        "sleep 1000 & setsid sleep 1000 & echo ready; wait",
    );
    let driver = driver();
    let handle = driver.start(config.clone()).await.unwrap();
    eventually("the task's children", || {
        log(&config, "stdout") == "ready\n"
    })
    .await;
    let state = state(&handle);
    let mut pids = Vec::new();
    // Stopped before the setsid'd sleep has left the group, it would die
    // of the SIGTERM with the rest, and the shell would exit 0 before the
    // timeout: what is checked here is that stop reaches a process that
    // left the group, so it must have.
    eventually(
        "three processes in the cgroup, one in its own session",
        || {
            pids = state.cgroup.pids();
            let left = pids.iter().any(|pid| {
                proc::stat(*pid)
                    .is_some_and(|stat| stat.session == *pid && stat.session != state.session)
            });
            pids.len() >= 3 && left
        },
    )
    .await;
    assert!(pids.contains(&state.task_pid));
    tokio::time::timeout(LIMIT, driver.stop(&handle, "", Duration::from_millis(500)))
        .await
        .unwrap()
        .unwrap();
    assert_gone(&state, &pids);
    let exit = wait(&driver, &handle).await;
    assert!(!exit.successful());
    assert!(!exit.oom_killed);
    // Nothing is left to signal, and stopping again is fine.
    assert!(matches!(
        driver.signal(&handle, "SIGTERM").await,
        Err(DriverError::NotFound)
    ));
    driver
        .stop(&handle, "", Duration::from_millis(10))
        .await
        .unwrap();
    driver.destroy(&handle).await.unwrap();
}

#[tokio::test]
async fn mounts_appear_at_their_task_path_read_only_when_asked() {
    require_isolation!();
    let root = tempfile::tempdir().unwrap();
    let volume = tempfile::tempdir().unwrap();
    std::fs::write(volume.path().join("file"), "from the host\n").unwrap();
    let writable = tempfile::tempdir().unwrap();
    // Open to the task's user (nobody): only the mount can keep it from
    // writing. The read-only volume has a mount of its own inside, which
    // must be read-only as well.
    for dir in [volume.path(), writable.path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let _submount = Submount::new(&volume.path().join("sub"));
    let mut config = task(
        root.path(),
        "mounted",
        "cat /data/ro/file; \
         touch /data/ro/x 2>/dev/null && echo ro=writable || echo ro=readonly; \
         touch /data/ro/sub/x 2>/dev/null && echo sub=writable || echo sub=readonly; \
         echo written > /scratch/y && echo rw=writable",
    );
    config.mounts = vec![
        MountConfig {
            host_path: volume.path().to_path_buf(),
            task_path: "/data/ro".into(),
            read_only: true,
        },
        MountConfig {
            host_path: writable.path().to_path_buf(),
            task_path: "scratch".into(),
            read_only: false,
        },
    ];
    let driver = driver();
    let handle = driver.start(config.clone()).await.unwrap();
    let exit = wait(&driver, &handle).await;
    assert!(exit.successful(), "{exit:?}: {}", log(&config, "stderr"));
    assert_eq!(
        log(&config, "stdout"),
        "from the host\nro=readonly\nsub=readonly\nrw=writable\n"
    );
    assert!(!volume.path().join("x").exists());
    assert!(!volume.path().join("sub/x").exists());
    assert_eq!(
        std::fs::read_to_string(writable.path().join("y")).unwrap(),
        "written\n"
    );

    // A path leaving the root is refused, as is a missing host path.
    let mut escaping = task(root.path(), "escaping", "true");
    escaping.mounts = vec![MountConfig {
        host_path: volume.path().to_path_buf(),
        task_path: "/../../etc".into(),
        read_only: true,
    }];
    let error = driver.start(escaping).await.unwrap_err();
    assert!(matches!(error, DriverError::InvalidConfig(_)), "{error}");
    let mut missing = task(root.path(), "missing", "true");
    missing.mounts = vec![MountConfig {
        host_path: root.path().join("no-such-volume"),
        task_path: "/v".into(),
        read_only: false,
    }];
    let error = driver.start(missing).await.unwrap_err();
    assert!(error.to_string().contains("no-such-volume"), "{error}");
}

#[tokio::test]
async fn a_new_driver_recovers_a_running_task_and_waits_for_its_exit() {
    require_isolation!();
    let root = tempfile::tempdir().unwrap();
    let config = task(
        root.path(),
        "survivor",
        "echo up; while [ ! -e /local/release ]; do sleep 0.05; done; echo done; exit 7",
    );
    let persisted = {
        let first = driver();
        let handle = first.start(config.clone()).await.unwrap();
        serde_json::to_string(&handle).unwrap()
        // The first driver (the client) is gone here.
    };
    let handle: TaskHandle = serde_json::from_str(&persisted).unwrap();
    let second = driver();
    second.recover(&handle).await.unwrap();
    eventually("the task to run", || log(&config, "stdout") == "up\n").await;
    assert!(!second.usage(&handle).await.unwrap().processes.is_empty());
    std::fs::write(config.task_dir.join("local/release"), "").unwrap();
    let exit = wait(&second, &handle).await;
    assert_eq!((exit.exit_code, exit.signal), (7, 0));
    assert_eq!(log(&config, "stdout"), "up\ndone\n");
    driver().recover(&handle).await.unwrap();
    assert_eq!(wait(&driver(), &handle).await, exit);
    assert_gone(&state(&handle), &[]);
}

#[tokio::test]
async fn recovering_after_the_executor_was_killed_is_not_found_and_kills_the_task() {
    require_isolation!();
    let root = tempfile::tempdir().unwrap();
    let config = task(root.path(), "orphan", "sleep 1000 & sleep 1000");
    let handle = driver().start(config).await.unwrap();
    let state = state(&handle);
    let mut pids = Vec::new();
    eventually("both processes", || {
        pids = state.cgroup.pids();
        pids.len() >= 2
    })
    .await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(state.executor_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    eventually("the executor to die", || {
        !proc::is_running(state.executor_pid, state.executor_start_time)
    })
    .await;
    assert!(alive(state.task_pid), "the task outlived its executor");
    let result = driver().recover(&handle).await;
    assert!(matches!(result, Err(DriverError::NotFound)), "{result:?}");
    assert_gone(&state, &pids);
}

#[tokio::test]
async fn a_start_is_found_by_its_attempt() {
    require_isolation!();
    let root = tempfile::tempdir().unwrap();
    let mut config = task(root.path(), "found", "sleep 1000");
    config.attempt = "first-attempt".into();
    let driver = driver();
    let started = driver.start(config.clone()).await.unwrap();
    let found = driver
        .find(&StartAttempt::of("exec", &config))
        .await
        .unwrap()
        .expect("the start");
    assert_eq!(found.driver, "exec");
    assert_eq!(state(&found), state(&started));
    driver.recover(&found).await.unwrap();
    driver
        .stop(&found, "SIGKILL", Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(wait(&driver, &found).await.signal, 9);
    assert_gone(&state(&found), &[]);
}

#[tokio::test]
async fn users_commands_and_the_fingerprint() {
    require_isolation!();
    let root = tempfile::tempdir().unwrap();
    let driver = driver();
    let mut as_nobody = task(root.path(), "nobody", "id -u");
    as_nobody.user = "nobody".into();
    let handle = driver.start(as_nobody.clone()).await.unwrap();
    let exit = wait(&driver, &handle).await;
    assert!(exit.successful(), "{exit:?}: {}", log(&as_nobody, "stderr"));
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    assert_eq!(log(&as_nobody, "stdout"), format!("{}\n", nobody.uid));

    // Root would undo the isolation: refused, as Nomad's user.denylist.
    let mut as_root = task(root.path(), "root", "id -u");
    as_root.user = "root".into();
    let error = driver.start(as_root.clone()).await.unwrap_err();
    assert!(matches!(error, DriverError::InvalidConfig(_)), "{error}");
    assert_eq!(
        error.to_string(),
        "running as user \"root\" is not allowed for the exec driver on this client"
    );
    assert!(
        !state_file_written(&as_root),
        "a refused start runs nothing"
    );

    let mut ghost = task(root.path(), "ghost", "");
    ghost
        .config
        .insert("command".into(), "/nonexistent/caravan-ghost".into());
    let error = driver.start(ghost.clone()).await.unwrap_err();
    assert!(matches!(error, DriverError::Start(_)), "{error}");
    assert!(error.to_string().contains("caravan-ghost"), "{error}");
    let cgroup = caravan_drivers::exec::cgroup::Hierarchy::detect()
        .unwrap()
        .cgroup(&caravan_drivers::exec::cgroup::cgroup_name(&ghost.id));
    assert!(!cgroup.exists(), "a failed start leaves no cgroup");

    let fingerprints = DriverSet::new(PathBuf::from(env!("CARGO_BIN_EXE_caravan")), false)
        .fingerprint_all()
        .await;
    let exec = &fingerprints["exec"];
    assert!(exec.detected && exec.healthy, "{exec:?}");
    assert_eq!(exec.attributes["driver.exec"], "true");
}
