//! The runners' crash windows, with a driver that records what was saved
//! on disk when it was called: a start's attempt is saved before the
//! driver starts the task, a restored runner finds a start whose handle was
//! never saved instead of starting the task again, and a task's exit is
//! saved before the driver forgets it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caravan_api_types::alloc::{Allocation, TaskState};
use caravan_api_types::job::{Job, Task, TaskGroup};
use caravan_api_types::sync::lock;
use caravan_drivers::{
    Driver, DriverError, ExitResult, Fingerprint, StartAttempt, TaskConfig, TaskHandle,
};
use caravan_rpc::{AllocUpdate, NodeAllocsReply};
use futures::future::BoxFuture;

use super::events::{self, STARTED, TERMINATED};
use super::state::{LocalAlloc, LocalTask, StateStore};
use super::{AllocManager, RunnerContext, UpdateSink};

const ALLOC: &str = "6a3c1f2e-0b7d-4c59-9e21-3f4a5b6c7d8e";
const LIMIT: Duration = Duration::from_secs(10);

/// A driver whose tasks run until the test ends (or exit at once), and
/// which notes what the client had saved when it was called.
struct Fake {
    store: StateStore,
    exit_at_once: bool,
    /// What [`Driver::find`] answers.
    found: Option<TaskHandle>,
    /// [`Driver::find`] cannot tell (answers this error) instead.
    find_error: Option<String>,
    finds: AtomicUsize,
    /// Per start: its attempt, and the attempt saved when it was called.
    starts: Mutex<Vec<(String, Option<StartAttempt>)>>,
    /// The task as saved when the driver was told to forget an exit.
    at_destroy: Mutex<Vec<LocalTask>>,
}

impl Fake {
    fn new(store: &StateStore, exit_at_once: bool, found: Option<TaskHandle>) -> Arc<Self> {
        Arc::new(Self {
            store: store.clone(),
            exit_at_once,
            found,
            find_error: None,
            finds: AtomicUsize::new(0),
            starts: Mutex::new(Vec::new()),
            at_destroy: Mutex::new(Vec::new()),
        })
    }

    fn saved(&self) -> LocalTask {
        saved_task(&self.store)
    }
}

fn saved_task(store: &StateStore) -> LocalTask {
    store
        .load_all()
        .into_iter()
        .find(|local| local.alloc.id == ALLOC)
        .and_then(|local| local.tasks.get("t").cloned())
        .unwrap_or_default()
}

fn handle(task_id: &str, name: &str) -> TaskHandle {
    TaskHandle {
        driver: "fake".into(),
        task_id: task_id.into(),
        state: serde_json::json!(name),
        started_at: chrono::Utc::now(),
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
        let saved = self.saved().starting;
        lock(&self.starts).push((config.attempt.clone(), saved));
        Box::pin(std::future::ready(Ok(handle(&config.id, "started"))))
    }

    fn wait<'a>(
        &'a self,
        _handle: &'a TaskHandle,
    ) -> BoxFuture<'a, Result<ExitResult, DriverError>> {
        match self.exit_at_once {
            true => Box::pin(std::future::ready(Ok(ExitResult::default()))),
            false => Box::pin(std::future::pending()),
        }
    }

    fn stop<'a>(
        &'a self,
        _handle: &'a TaskHandle,
        _signal: &'a str,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn signal<'a>(
        &'a self,
        _handle: &'a TaskHandle,
        _signal: &'a str,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn find<'a>(
        &'a self,
        _attempt: &'a StartAttempt,
    ) -> BoxFuture<'a, Result<Option<TaskHandle>, DriverError>> {
        self.finds.fetch_add(1, Ordering::SeqCst);
        let found = match &self.find_error {
            Some(error) => Err(DriverError::Start(error.clone())),
            None => Ok(self.found.clone()),
        };
        Box::pin(std::future::ready(found))
    }

    fn recover<'a>(&'a self, _handle: &'a TaskHandle) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn destroy<'a>(&'a self, _handle: &'a TaskHandle) -> BoxFuture<'a, Result<(), DriverError>> {
        let saved = self.saved();
        lock(&self.at_destroy).push(saved);
        Box::pin(std::future::ready(Ok(())))
    }
}

struct NoSink;

impl UpdateSink for NoSink {
    fn push(&self, _update: AllocUpdate) {}
}

fn manager(root: &std::path::Path, store: &StateStore, driver: Arc<Fake>) -> AllocManager {
    AllocManager::new(RunnerContext {
        alloc_dir: root.join("alloc"),
        store: store.clone(),
        drivers: BTreeMap::from([("fake".to_string(), driver as Arc<dyn Driver>)]),
        sink: Arc::new(NoSink),
        node: Arc::new(Default::default),
        region: "global".into(),
        max_kill_timeout: Duration::from_secs(1),
        host_env: Vec::new(),
    })
}

fn alloc(job_type: &str) -> Allocation {
    let job = Job {
        id: "j".into(),
        name: "j".into(),
        job_type: job_type.into(),
        task_groups: vec![TaskGroup {
            name: "g".into(),
            count: 1,
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

fn last_event(task: &LocalTask) -> String {
    task.state
        .events
        .as_ref()
        .and_then(|events| events.last())
        .map(|event| event.event_type.clone())
        .unwrap_or_default()
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

#[tokio::test]
async fn the_attempt_is_saved_before_the_start_and_the_exit_before_the_destroy() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::new(root.path());
    let driver = Fake::new(&store, true, None);
    let manager = manager(root.path(), &store, Arc::clone(&driver));
    manager.sync(reply(vec![alloc("batch")]));
    eventually("the exit to be handled", || {
        !lock(&driver.at_destroy).is_empty()
    })
    .await;

    let starts = lock(&driver.starts).clone();
    let [(attempt, Some(saved))] = &starts[..] else {
        panic!("one start, its attempt saved before it: {starts:?}");
    };
    assert!(!attempt.is_empty());
    assert_eq!(&saved.attempt, attempt);
    assert_eq!(saved.task_id, format!("{ALLOC}/t"));

    // When the driver forgot the exit, the exit and its outcome (a batch
    // task done for good) were on disk already, the handle gone.
    let at_destroy = lock(&driver.at_destroy)[0].clone();
    assert_eq!(last_event(&at_destroy), TERMINATED, "{at_destroy:?}");
    assert!(at_destroy.handle.is_none(), "{at_destroy:?}");
    assert!(at_destroy.starting.is_none(), "{at_destroy:?}");
    assert!(at_destroy.run_complete, "{at_destroy:?}");
}

/// The allocation as a client killed while the driver started its task
/// left it: the attempt saved, no handle.
fn killed_while_starting(store: &StateStore, root: &std::path::Path) {
    let mut state = TaskState {
        state: "pending".into(),
        ..TaskState::default()
    };
    events::record(&mut state, events::received());
    events::record(&mut state, events::task_setup());
    let task = LocalTask {
        starting: Some(StartAttempt {
            driver: "fake".into(),
            task_id: format!("{ALLOC}/t"),
            attempt: "lost".into(),
            task_dir: root.join("alloc").join(ALLOC).join("t"),
        }),
        state,
        ..LocalTask::default()
    };
    let local = LocalAlloc {
        alloc: alloc("service"),
        tasks: BTreeMap::from([("t".to_string(), task)]),
        health: None,
    };
    store.save(&local).unwrap();
}

#[tokio::test]
async fn a_start_whose_handle_was_not_saved_is_found_not_made_again() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::new(root.path());
    killed_while_starting(&store, root.path());
    let found = handle(&format!("{ALLOC}/t"), "found");
    let driver = Fake::new(&store, false, Some(found.clone()));
    let manager = manager(root.path(), &store, Arc::clone(&driver));
    manager.restore();
    manager.sync(reply(Vec::new()));
    eventually("the found task to run", || {
        driver.saved().handle.as_ref() == Some(&found)
    })
    .await;
    // Time for a wrong second start to show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(lock(&driver.starts).is_empty(), "started a second copy");
    assert_eq!(driver.finds.load(Ordering::SeqCst), 1);
    let saved = driver.saved();
    assert_eq!(saved.state.state, "running");
    assert_eq!(last_event(&saved), STARTED);
    assert!(saved.starting.is_none());
}

#[tokio::test]
async fn a_start_that_never_happened_is_made_once_the_servers_want_it() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::new(root.path());
    killed_while_starting(&store, root.path());
    let driver = Fake::new(&store, false, None);
    let manager = manager(root.path(), &store, Arc::clone(&driver));
    manager.restore();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        lock(&driver.starts).is_empty(),
        "nothing starts before the servers have spoken"
    );
    manager.sync(reply(Vec::new()));
    eventually("the task to start", || !lock(&driver.starts).is_empty()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let starts = lock(&driver.starts).clone();
    assert_eq!(starts.len(), 1, "{starts:?}");
    assert_ne!(starts[0].0, "lost", "a new attempt");
    assert_eq!(driver.finds.load(Ordering::SeqCst), 1);
}

/// The driver cannot tell whether the lost start launched the task: the
/// task is not started again (it could run twice) but fails, saying why.
#[tokio::test]
async fn a_start_the_driver_cannot_settle_is_not_made_again() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::new(root.path());
    killed_while_starting(&store, root.path());
    let mut fake = Fake::new(&store, false, None);
    Arc::get_mut(&mut fake).unwrap().find_error = Some("no report yet".into());
    let manager = manager(root.path(), &store, Arc::clone(&fake));
    manager.restore();
    manager.sync(reply(Vec::new()));
    eventually("the task to fail", || fake.saved().run_complete).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(lock(&fake.starts).is_empty(), "started a second copy");
    let saved = fake.saved();
    assert!(saved.state.failed, "{saved:?}");
    let event = saved.state.events.as_ref().and_then(|events| events.last());
    let message = event.map(|event| event.display_message.clone());
    assert!(
        message
            .as_deref()
            .is_some_and(|text| text.contains("no report yet")),
        "{saved:?}"
    );
}

/// The attempt cannot be saved (here the state directory is a file): the
/// driver is never asked to start, since a client killed during that start
/// would start the task again.
#[tokio::test]
async fn a_start_whose_attempt_cannot_be_saved_is_not_made() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::new(root.path());
    std::fs::write(root.path().join("allocs"), b"not a directory").unwrap();
    let driver = Fake::new(&store, false, None);
    let manager = manager(root.path(), &store, Arc::clone(&driver));
    manager.sync(reply(vec![alloc("service")]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        lock(&driver.starts).is_empty(),
        "started without a saved attempt"
    );
}
