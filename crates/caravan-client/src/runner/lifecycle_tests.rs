//! The lifecycle requests against real runners and a driver whose tasks
//! run until stopped: a restart stops and starts the instance outside the
//! restart policy, a signal reaches the driver with its event recorded,
//! collection removes only terminal allocations, for good.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caravan_api_types::alloc::Allocation;
use caravan_api_types::job::{Job, RestartPolicy, Task, TaskGroup};
use caravan_api_types::sync::lock;
use caravan_drivers::{
    Driver, DriverError, ExitResult, Fingerprint, ProcessUsage, StartAttempt, TaskConfig,
    TaskHandle, TaskUsage,
};
use caravan_rpc::{AllocUpdate, NodeAllocsReply};
use futures::future::BoxFuture;
use tokio::sync::watch;

use super::super::state::{LocalTask, StateStore};
use super::super::{AllocManager, RunnerContext, UpdateSink};
use super::*;

const ALLOC: &str = "0c7f5b1a-7a47-4b1e-9d3e-2a6f0e9b8c41";
const LIMIT: Duration = Duration::from_secs(10);

/// Tasks run until stopped, or exit at once when `exit_at_once`.
#[derive(Default)]
struct Fake {
    exit_at_once: bool,
    starts: Mutex<Vec<String>>,
    signals: Mutex<Vec<String>>,
    /// Instances stopped, by their start's attempt.
    stopped: Mutex<HashSet<String>>,
    changes: watch::Sender<u64>,
}

impl Fake {
    fn attempt(handle: &TaskHandle) -> String {
        handle.state.as_str().unwrap_or_default().to_string()
    }
}

impl Driver for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn fingerprint(&self) -> BoxFuture<'_, Fingerprint> {
        Box::pin(std::future::ready(Fingerprint::default()))
    }

    fn start(&self, config: TaskConfig) -> BoxFuture<'_, Result<TaskHandle, DriverError>> {
        lock(&self.starts).push(config.attempt.clone());
        Box::pin(std::future::ready(Ok(TaskHandle {
            driver: "fake".into(),
            task_id: config.id,
            state: serde_json::json!(config.attempt),
            started_at: chrono::Utc::now(),
        })))
    }

    fn wait<'a>(
        &'a self,
        handle: &'a TaskHandle,
    ) -> BoxFuture<'a, Result<ExitResult, DriverError>> {
        let attempt = Self::attempt(handle);
        Box::pin(async move {
            let mut changes = self.changes.subscribe();
            let _ = changes
                .wait_for(|_| self.exit_at_once || lock(&self.stopped).contains(&attempt))
                .await;
            Ok(ExitResult::default())
        })
    }

    fn stop<'a>(
        &'a self,
        handle: &'a TaskHandle,
        _signal: &'a str,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        lock(&self.stopped).insert(Self::attempt(handle));
        self.changes.send_modify(|count| *count += 1);
        Box::pin(std::future::ready(Ok(())))
    }

    fn signal<'a>(
        &'a self,
        _handle: &'a TaskHandle,
        signal: &'a str,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        lock(&self.signals).push(signal.to_string());
        Box::pin(std::future::ready(Ok(())))
    }

    fn find<'a>(
        &'a self,
        _attempt: &'a StartAttempt,
    ) -> BoxFuture<'a, Result<Option<TaskHandle>, DriverError>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    fn recover<'a>(&'a self, _handle: &'a TaskHandle) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn destroy<'a>(&'a self, _handle: &'a TaskHandle) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn usage<'a>(
        &'a self,
        _handle: &'a TaskHandle,
    ) -> BoxFuture<'a, Result<TaskUsage, DriverError>> {
        let usage = TaskUsage {
            processes: vec![ProcessUsage {
                pid: 7,
                rss_bytes: 4096,
                ..ProcessUsage::default()
            }],
        };
        Box::pin(std::future::ready(Ok(usage)))
    }
}

struct NoSink;

impl UpdateSink for NoSink {
    fn push(&self, _update: AllocUpdate) {}
}

fn setup(exit_at_once: bool) -> (tempfile::TempDir, Arc<Fake>, AllocManager) {
    let root = tempfile::tempdir().unwrap();
    let driver = Arc::new(Fake {
        exit_at_once,
        ..Fake::default()
    });
    let manager = AllocManager::new(RunnerContext {
        alloc_dir: root.path().join("alloc"),
        store: StateStore::new(root.path()),
        drivers: BTreeMap::from([("fake".to_string(), Arc::clone(&driver) as Arc<dyn Driver>)]),
        sink: Arc::new(NoSink),
        node: Arc::new(Default::default),
        region: "global".into(),
        max_kill_timeout: Duration::from_secs(1),
        host_env: Vec::new(),
    });
    (root, driver, manager)
}

/// A job of `job_type` whose one task may never restart by policy.
fn alloc(job_type: &str) -> Allocation {
    let job = Job {
        id: "j".into(),
        name: "j".into(),
        job_type: job_type.into(),
        task_groups: vec![TaskGroup {
            name: "g".into(),
            count: 1,
            restart_policy: Some(RestartPolicy {
                attempts: 0,
                interval: 60_000_000_000,
                delay: 0,
                mode: "fail".into(),
                render_templates: false,
            }),
            tasks: vec![Task {
                name: "t".into(),
                driver: "fake".into(),
                ..Task::default()
            }],
            ..TaskGroup::default()
        }],
        ..Job::default()
    };
    Allocation {
        id: ALLOC.into(),
        node_id: "n1".into(),
        job_id: "j".into(),
        task_group: "g".into(),
        desired_status: "run".into(),
        client_status: "pending".into(),
        job: Some(Arc::new(job)),
        ..Allocation::default()
    }
}

fn reply(changed: Vec<Allocation>) -> NodeAllocsReply {
    NodeAllocsReply {
        index: 10,
        allocs: BTreeMap::from([(ALLOC.to_string(), 5)]),
        changed,
    }
}

fn task(manager: &AllocManager) -> LocalTask {
    manager
        .shared(ALLOC)
        .map(|shared| shared.task("t"))
        .unwrap_or_default()
}

fn event_types(task: &LocalTask) -> Vec<String> {
    task.state
        .events
        .iter()
        .flatten()
        .map(|event| event.event_type.clone())
        .collect()
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn running(manager: &AllocManager, driver: &Fake, starts: usize) {
    eventually("the task to run", || {
        task(manager).state.state == "running" && lock(&driver.starts).len() == starts
    })
    .await;
}

#[tokio::test]
async fn a_restart_stops_and_starts_the_task_outside_the_policy() {
    let (_root, driver, manager) = setup(false);
    manager.sync(reply(vec![alloc("service")]));
    running(&manager, &driver, 1).await;
    // The policy allows no restarts; a user's restarts are not its to count.
    for round in 2..=3 {
        manager.restart(ALLOC, "t", false).await.unwrap();
        running(&manager, &driver, round).await;
    }
    let local = task(&manager);
    assert_eq!(local.state.restarts, 2);
    assert!(!local.state.failed);
    let types = event_types(&local);
    assert_eq!(
        types[types.len() - 4..],
        ["Restart Signaled", "Terminated", "Restarting", "Started"],
        "{types:?}"
    );
    let events = local.state.events.unwrap_or_default();
    let signaled = &events[events.len() - 4];
    assert_eq!(signaled.display_message, REASON_RESTART_TASK);
    assert_eq!(
        events[events.len() - 2].display_message,
        "Task restarting in 0s"
    );

    manager.restart(ALLOC, "", false).await.unwrap();
    running(&manager, &driver, 4).await;
    let events = task(&manager).state.events.unwrap_or_default();
    assert!(events
        .iter()
        .any(|event| event.display_message == REASON_RESTART_RUNNING));
}

#[tokio::test]
async fn restarts_and_signals_are_refused_with_nomads_texts() {
    let (_root, driver, manager) = setup(false);
    let refused = |result: Result<(), LifecycleError>| result.unwrap_err().to_string();
    assert_eq!(
        refused(manager.restart(ALLOC, "t", false).await),
        format!("Unknown allocation {ALLOC:?}")
    );
    manager.sync(reply(vec![alloc("service")]));
    running(&manager, &driver, 1).await;
    assert_eq!(
        refused(manager.restart(ALLOC, "t", true).await),
        "task name cannot be set when restarting all tasks"
    );
    assert_eq!(
        refused(manager.restart(ALLOC, "nope", false).await),
        "Task not found"
    );
    assert_eq!(
        refused(manager.signal(ALLOC, "nope", "SIGHUP").await),
        "Task not found"
    );
    assert_eq!(
        refused(manager.signal(ALLOC, "t", "SIGNOPE").await),
        "invalid signal \"SIGNOPE\""
    );
    assert!(lock(&driver.signals).is_empty());
}

#[tokio::test]
async fn a_signal_reaches_the_driver_and_is_recorded() {
    let (_root, driver, manager) = setup(false);
    manager.sync(reply(vec![alloc("service")]));
    running(&manager, &driver, 1).await;
    manager.signal(ALLOC, "", "usr1").await.unwrap();
    assert_eq!(*lock(&driver.signals), ["SIGUSR1"]);
    let events = task(&manager).state.events.unwrap_or_default();
    let last = events.last().unwrap();
    assert_eq!(last.event_type, "Signaling");
    assert_eq!(last.display_message, "Task being sent signal SIGUSR1");
    assert_eq!(last.task_signal, "SIGUSR1");
}

#[tokio::test]
async fn stats_cover_running_tasks() {
    let (_root, driver, manager) = setup(false);
    manager.sync(reply(vec![alloc("service")]));
    running(&manager, &driver, 1).await;
    let usage = manager.stats(ALLOC, "").await.unwrap();
    assert_eq!(usage.resource_usage.memory_stats.rss, 4096);
    assert_eq!(usage.tasks["t"].resource_usage.memory_stats.rss, 4096);
    assert!(matches!(
        manager.stats(ALLOC, "nope").await,
        Err(LifecycleError::TaskNotFound)
    ));
}

#[tokio::test]
async fn only_a_terminal_allocation_is_collected_and_it_stays_gone() {
    let (root, driver, manager) = setup(false);
    manager.sync(reply(vec![alloc("service")]));
    running(&manager, &driver, 1).await;
    assert!(matches!(
        manager.collect(ALLOC).await,
        Err(LifecycleError::NotTerminal(_))
    ));
    assert!(matches!(manager.restart(ALLOC, "", true).await, Ok(())));
    drop(manager);

    let (_, driver, manager) = setup(true);
    let mut batch = alloc("batch");
    batch.id = ALLOC.into();
    manager.sync(reply(vec![batch.clone()]));
    eventually("the batch task to finish", || task(&manager).run_complete).await;
    let dir = manager.view(ALLOC).unwrap().root;
    assert!(dir.exists());
    assert_eq!(manager.collect_all().await, 1);
    assert!(!dir.exists());
    assert!(manager.view(ALLOC).is_none());
    // The servers still list it: it is not run again.
    manager.sync(reply(vec![batch]));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(manager.view(ALLOC).is_none());
    assert_eq!(lock(&driver.starts).len(), 1);
    drop(root);
}
