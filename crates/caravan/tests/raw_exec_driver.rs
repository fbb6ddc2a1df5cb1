//! The raw_exec driver end to end: real tasks under real executors (this
//! crate's `caravan executor`), their logs, exits, signals, stops and
//! recovery after the driver (the client) is gone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use caravan_drivers::proc;
use caravan_drivers::raw_exec::RawExecState;
use caravan_drivers::{
    Driver, DriverError, DriverSet, LogConfig, RawExec, StartAttempt, TaskConfig, TaskHandle,
    TaskResources,
};

/// Generous: these bound a hang, they do not measure anything.
const LIMIT: Duration = Duration::from_secs(30);

fn driver() -> RawExec {
    RawExec::new(PathBuf::from(env!("CARGO_BIN_EXE_caravan")), true)
}

fn task(root: &Path, name: &str, command: &str, args: &[&str]) -> TaskConfig {
    let alloc_dir = root.join("alloc-1");
    let task_dir = alloc_dir.join(name);
    std::fs::create_dir_all(&task_dir).unwrap();
    let mut config = serde_json::Map::new();
    config.insert("command".into(), command.into());
    config.insert("args".into(), args.to_vec().into());
    TaskConfig {
        id: format!("alloc-1/{name}"),
        alloc_id: "alloc-1".into(),
        task_name: name.into(),
        job_name: "example".into(),
        config,
        env: BTreeMap::from([
            (
                "PATH".to_string(),
                "/usr/local/bin:/usr/bin:/bin".to_string(),
            ),
            ("GREETING".to_string(), "hello from env".to_string()),
        ]),
        user: String::new(),
        task_dir,
        logs: LogConfig {
            dir: alloc_dir.join("alloc").join("logs"),
            max_files: 2,
            max_file_size_mb: 1,
        },
        alloc_dir,
        resources: TaskResources::default(),
        attempt: String::new(),
        mounts: Vec::new(),
    }
}

fn sh(root: &Path, name: &str, script: &str) -> TaskConfig {
    task(root, name, "/bin/sh", &["-c", script])
}

fn state(handle: &TaskHandle) -> RawExecState {
    serde_json::from_value(handle.state.clone()).unwrap()
}

fn log(config: &TaskConfig, stream: &str, index: u32) -> String {
    let path = config
        .logs
        .dir
        .join(format!("{}.{stream}.{index}", config.task_name));
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Processes of group `pgrp` in any session that have not exited.
fn group_left(pgrp: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            proc::parse_stat(&std::fs::read_to_string(path.join("stat")).ok()?)
        })
        .filter(|stat| stat.pgrp == pgrp && !stat.exited())
        .map(|stat| stat.pid)
        .collect()
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

async fn wait(driver: &RawExec, handle: &TaskHandle) -> caravan_drivers::ExitResult {
    tokio::time::timeout(LIMIT, driver.wait(handle))
        .await
        .expect("the task did not exit in time")
        .expect("wait failed")
}

#[tokio::test]
async fn output_reaches_the_log_files_and_the_exit_code_is_reported() {
    let root = tempfile::tempdir().unwrap();
    let driver = driver();
    let config = sh(
        root.path(),
        "web",
        "echo \"$GREETING\"; pwd; echo oops >&2; exit 3",
    );
    let handle = driver.start(config.clone()).await.unwrap();
    assert_eq!(handle.driver, "raw_exec");
    assert_eq!(handle.task_id, "alloc-1/web");
    let exit = wait(&driver, &handle).await;
    assert_eq!((exit.exit_code, exit.signal), (3, 0));
    assert!(!exit.successful());
    let cwd = config.task_dir.canonicalize().unwrap();
    assert_eq!(
        log(&config, "stdout", 0),
        format!("hello from env\n{}\n", cwd.display())
    );
    assert_eq!(log(&config, "stderr", 0), "oops\n");
    // Waiting again answers the same.
    assert_eq!(wait(&driver, &handle).await, exit);

    driver.destroy(&handle).await.unwrap();
    assert!(!state(&handle).state_dir.exists());
}

#[tokio::test]
async fn output_past_the_file_size_rotates() {
    let root = tempfile::tempdir().unwrap();
    let driver = driver();
    // 1.5 MiB of 10-byte lines against 1 MiB files.
    let config = sh(root.path(), "chatty", "yes 123456789 | head -n 157286");
    let handle = driver.start(config.clone()).await.unwrap();
    assert!(wait(&driver, &handle).await.successful());
    let (first, second) = (log(&config, "stdout", 0), log(&config, "stdout", 1));
    // Full, give or take the line that did not fit.
    assert!(first.len() <= 1024 * 1024 && first.len() > 1024 * 1000);
    assert_eq!(first.len() + second.len(), 1_572_860);
}

#[tokio::test]
async fn a_signal_that_kills_the_task_is_reported() {
    let root = tempfile::tempdir().unwrap();
    let driver = driver();
    let handle = driver
        .start(task(root.path(), "sleeper", "sleep", &["1000"]))
        .await
        .unwrap();
    let error = driver.signal(&handle, "SIGBOGUS").await.unwrap_err();
    assert!(matches!(error, DriverError::InvalidSignal(_)), "{error}");
    driver.signal(&handle, "usr1").await.unwrap();
    let exit = wait(&driver, &handle).await;
    assert_eq!((exit.exit_code, exit.signal), (128 + 10, 10));
    // Nothing is left to signal.
    assert!(matches!(
        driver.signal(&handle, "SIGTERM").await,
        Err(DriverError::NotFound)
    ));
}

#[tokio::test]
async fn stop_escalates_to_sigkill_when_the_task_ignores_the_signal() {
    let root = tempfile::tempdir().unwrap();
    let driver = driver();
    let config = sh(
        root.path(),
        "stubborn",
        "trap '' TERM; echo ready; sleep 1000",
    );
    let handle = driver.start(config.clone()).await.unwrap();
    eventually("the trap", || log(&config, "stdout", 0) == "ready\n").await;
    tokio::time::timeout(
        LIMIT,
        driver.stop(&handle, "SIGTERM", Duration::from_millis(300)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(group_left(state(&handle).task_pid), Vec::<i32>::new());
    let exit = wait(&driver, &handle).await;
    assert_eq!(exit.signal, 9);
    // Stopping what already ended is fine.
    driver
        .stop(&handle, "", Duration::from_millis(10))
        .await
        .unwrap();
}

#[tokio::test]
async fn stop_leaves_no_grandchild_behind() {
    let root = tempfile::tempdir().unwrap();
    let driver = driver();
    let config = sh(root.path(), "parent", "sleep 1000 & echo $!; wait");
    let handle = driver.start(config.clone()).await.unwrap();
    eventually("the grandchild's pid", || {
        log(&config, "stdout", 0).ends_with('\n')
    })
    .await;
    let grandchild: i32 = log(&config, "stdout", 0).trim().parse().unwrap();
    let task_pid = state(&handle).task_pid;
    assert!(group_left(task_pid).contains(&grandchild));

    tokio::time::timeout(LIMIT, driver.stop(&handle, "", Duration::from_secs(10)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(group_left(task_pid), Vec::<i32>::new());
    assert!(proc::stat(grandchild).is_none_or(|stat| stat.exited()));
    assert_eq!(wait(&driver, &handle).await.signal, 15);
}

#[tokio::test]
async fn a_missing_command_is_a_start_error_naming_it() {
    let root = tempfile::tempdir().unwrap();
    let driver = driver();
    let error = driver
        .start(task(
            root.path(),
            "ghost",
            "/nonexistent/caravan-ghost-binary",
            &[],
        ))
        .await
        .unwrap_err();
    assert!(matches!(error, DriverError::Start(_)), "{error}");
    let text = error.to_string();
    assert!(text.contains("caravan-ghost-binary"), "{text}");
    assert!(text.contains("No such file or directory"), "{text}");

    let mut no_command = task(root.path(), "empty", "x", &[]);
    no_command.config.remove("command");
    let error = driver.start(no_command).await.unwrap_err();
    assert!(matches!(error, DriverError::InvalidConfig(_)), "{error}");
    assert!(error.to_string().contains("missing command"), "{error}");
}

#[tokio::test]
async fn a_new_driver_recovers_a_running_task_and_waits_for_its_exit() {
    let root = tempfile::tempdir().unwrap();
    let config = sh(
        root.path(),
        "survivor",
        "echo up; while [ ! -e release ]; do sleep 0.05; done; echo done; exit 7",
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
    std::fs::write(config.task_dir.join("release"), "").unwrap();
    let exit = wait(&second, &handle).await;
    assert_eq!((exit.exit_code, exit.signal), (7, 0));
    assert_eq!(log(&config, "stdout", 0), "up\ndone\n");
    // Recovering a task that exited meanwhile works, and wait answers it.
    driver().recover(&handle).await.unwrap();
    assert_eq!(wait(&driver(), &handle).await, exit);
}

#[tokio::test]
async fn recovering_after_the_executor_was_killed_is_not_found_and_kills_the_task() {
    let root = tempfile::tempdir().unwrap();
    let handle = driver()
        .start(task(root.path(), "orphan", "sleep", &["1000"]))
        .await
        .unwrap();
    let state = state(&handle);
    assert!(proc::is_running(state.task_pid, state.task_start_time));
    // The executor left our session, so it outlives the client's.
    assert_eq!(state.session, state.executor_pid);
    assert_ne!(state.session, nix::unistd::getsid(None).unwrap().as_raw());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(state.executor_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    eventually("the executor to die", || {
        !proc::is_running(state.executor_pid, state.executor_start_time)
    })
    .await;
    // The task outlived its executor until the recovery.
    assert!(proc::is_running(state.task_pid, state.task_start_time));

    let result = driver().recover(&handle).await;
    assert!(matches!(result, Err(DriverError::NotFound)), "{result:?}");
    assert_eq!(group_left(state.task_pid), Vec::<i32>::new());
}

#[tokio::test]
async fn the_driver_set_fingerprints_raw_exec_as_enabled_or_disabled() {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_caravan"));
    let enabled = DriverSet::new(binary.clone(), true);
    let fingerprints = enabled.fingerprint_all().await;
    let raw_exec = &fingerprints["raw_exec"];
    assert!(raw_exec.detected && raw_exec.healthy);
    assert_eq!(raw_exec.attributes["driver.raw_exec"], "true");
    assert_eq!(enabled.get("raw_exec").unwrap().name(), "raw_exec");
    assert!(enabled.get("no-such-driver").is_none());

    let disabled = DriverSet::new(binary, false);
    let fingerprint = &disabled.fingerprint_all().await["raw_exec"];
    assert!(!fingerprint.detected && !fingerprint.healthy);
    assert_eq!(fingerprint.description, "disabled");
    let root = tempfile::tempdir().unwrap();
    let refused = disabled
        .get("raw_exec")
        .unwrap()
        .start(task(root.path(), "off", "true", &[]))
        .await;
    assert!(matches!(refused, Err(DriverError::Start(_))));
}

#[tokio::test]
async fn a_task_runs_as_its_user_and_an_unknown_user_is_a_start_error() {
    let root = tempfile::tempdir().unwrap();
    let driver = driver();
    let mut as_other = task(root.path(), "as-other", "id", &["-u"]);
    if nix::unistd::Uid::effective().is_root() {
        as_other.user = "nobody".into();
        let handle = driver.start(as_other.clone()).await.unwrap();
        assert!(wait(&driver, &handle).await.successful());
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        assert_eq!(log(&as_other, "stdout", 0), format!("{}\n", nobody.uid));
    } else {
        // Only root can switch users.
        as_other.user = "root".into();
        let error = driver.start(as_other).await.unwrap_err();
        assert!(error.to_string().contains("not root"), "{error}");
    }

    let mut unknown = task(root.path(), "unknown", "true", &[]);
    unknown.user = "caravan-no-such-user".into();
    let error = driver.start(unknown).await.unwrap_err();
    assert!(matches!(error, DriverError::Start(_)), "{error}");
    assert!(
        error.to_string().contains("caravan-no-such-user"),
        "{error}"
    );
}

/// After a real client restart the executor is nobody's child but init's:
/// here its parent shell exits at once, and a driver that never started it
/// recovers, signals and waits on the task from the files alone.
#[tokio::test]
async fn an_executor_whose_parent_exited_is_recovered_and_waited_on() {
    use caravan_drivers::executor::{ExecutorSpec, StartReport};

    let root = tempfile::tempdir().unwrap();
    let config = task(root.path(), "adopted", "sleep", &["1000"]);
    let state_dir = config.task_dir.join(".caravan");
    std::fs::create_dir_all(&state_dir).unwrap();
    let spec = ExecutorSpec {
        task_name: config.task_name.clone(),
        command: "sleep".into(),
        args: vec!["1000".into()],
        env: config.env.clone(),
        cwd: config.task_dir.clone(),
        user: None,
        logs: config.logs.clone(),
        start_file: state_dir.join("executor.started.json"),
        exit_file: state_dir.join("executor.exit.json"),
        attempt: String::new(),
        claim_file: None,
    };
    let spec_path = state_dir.join("executor.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg("\"$0\" executor \"$1\" >/dev/null 2>&1 &")
        .arg(env!("CARGO_BIN_EXE_caravan"))
        .arg(&spec_path)
        .status()
        .unwrap();
    assert!(status.success());
    eventually("the start report", || spec.start_file.exists()).await;
    let report: StartReport =
        serde_json::from_slice(&std::fs::read(&spec.start_file).unwrap()).unwrap();
    let StartReport::Started {
        executor_pid,
        task_pid,
        task_start_time,
        session,
        ..
    } = report
    else {
        panic!("the task did not start: {report:?}");
    };
    let state = RawExecState {
        executor_pid,
        executor_start_time: proc::stat(executor_pid).unwrap().start_time,
        task_pid,
        task_start_time,
        session,
        state_dir,
        exit_file: spec.exit_file.clone(),
    };
    let handle = TaskHandle {
        driver: "raw_exec".into(),
        task_id: config.id.clone(),
        state: serde_json::to_value(&state).unwrap(),
        started_at: chrono::Utc::now(),
    };
    let driver = driver();
    driver.recover(&handle).await.unwrap();
    driver.signal(&handle, "SIGTERM").await.unwrap();
    let exit = wait(&driver, &handle).await;
    assert_eq!((exit.exit_code, exit.signal), (128 + 15, 15));
    assert_eq!(group_left(task_pid), Vec::<i32>::new());
}

/// A start whose handle the client never saved: found by its attempt
/// (the same task, not a second one), and a start that never happened is
/// settled as such.
#[tokio::test]
async fn a_start_is_found_by_its_attempt_and_one_never_made_is_settled() {
    let root = tempfile::tempdir().unwrap();
    let driver = driver();
    let mut config = task(root.path(), "found", "sleep", &["1000"]);
    config.attempt = "first-attempt".into();
    let started = driver.start(config.clone()).await.unwrap();
    // The executor's claim names it, for a find that gets no report.
    let claim = config
        .task_dir
        .join(".caravan/executor.claim.first-attempt");
    let claim: caravan_drivers::executor::ClaimRecord =
        serde_json::from_slice(&std::fs::read(claim).unwrap()).unwrap();
    assert_eq!(claim.executor_pid, state(&started).executor_pid);
    assert_eq!(
        claim.executor_start_time,
        state(&started).executor_start_time
    );
    let attempt = StartAttempt::of("raw_exec", &config);
    let found = driver.find(&attempt).await.unwrap().expect("the start");
    assert_eq!(state(&found), state(&started));
    assert_eq!(found.task_id, config.id);
    driver.recover(&found).await.unwrap();

    // Another attempt, never started: settled, and found as nothing.
    let other = StartAttempt {
        attempt: "second-attempt".into(),
        ..attempt.clone()
    };
    assert_eq!(driver.find(&other).await.unwrap(), None);
    // A start that never got as far as its directory.
    let nowhere = StartAttempt {
        task_dir: root.path().join("missing"),
        ..attempt
    };
    assert_eq!(driver.find(&nowhere).await.unwrap(), None);
    let bad = StartAttempt {
        attempt: "../x".into(),
        ..other
    };
    assert!(matches!(
        driver.find(&bad).await,
        Err(DriverError::InvalidConfig(_))
    ));

    driver
        .stop(&found, "SIGKILL", Duration::ZERO)
        .await
        .unwrap();
    let exit = wait(&driver, &found).await;
    assert_eq!(exit.signal, 9);
}

/// The client was killed after it asked for a start and before the
/// executor claimed it; the restarted client settles the start first. The
/// executor, running late, must not start the task.
#[tokio::test]
async fn an_executor_whose_start_was_settled_does_not_start_the_task() {
    use caravan_drivers::executor::ExecutorSpec;

    let root = tempfile::tempdir().unwrap();
    let marker = root.path().join("ran");
    let config = sh(root.path(), "late", &format!("touch {}", marker.display()));
    let state_dir = config.task_dir.join(".caravan");
    std::fs::create_dir_all(&state_dir).unwrap();
    let spec = ExecutorSpec {
        task_name: config.task_name.clone(),
        command: "/bin/sh".into(),
        args: vec!["-c".into(), format!("touch {}", marker.display())],
        env: config.env.clone(),
        cwd: config.task_dir.clone(),
        user: None,
        logs: config.logs.clone(),
        start_file: state_dir.join("executor.started.json"),
        exit_file: state_dir.join("executor.exit.json"),
        attempt: "late".into(),
        claim_file: Some(state_dir.join("executor.claim.late")),
    };
    let spec_path = state_dir.join("executor.spec.late.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    let attempt = StartAttempt {
        driver: "raw_exec".into(),
        task_id: config.id.clone(),
        attempt: "late".into(),
        task_dir: config.task_dir.clone(),
    };
    assert_eq!(driver().find(&attempt).await.unwrap(), None);

    let status = std::process::Command::new(env!("CARGO_BIN_EXE_caravan"))
        .arg("executor")
        .arg(&spec_path)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3), "the executor gives up");
    assert!(!spec.start_file.exists(), "and reports nothing");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!marker.exists(), "the task never ran");
}
