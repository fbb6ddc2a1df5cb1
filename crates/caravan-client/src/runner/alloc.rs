//! The alloc runner (scheduling.md §8.2): builds the allocation directory,
//! runs the task runners through the lifecycle gates (prestart, main,
//! poststart, poststop), applies the sibling rules, kills the tasks when
//! the servers stop the allocation, and derives the allocation's client
//! status from its tasks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use caravan_api_types::alloc::{
    AllocDeploymentStatus, Allocation, ALLOC_CLIENT_COMPLETE, ALLOC_CLIENT_FAILED,
    ALLOC_CLIENT_PENDING, ALLOC_CLIENT_RUNNING, TASK_STATE_DEAD, TASK_STATE_PENDING,
    TASK_STATE_RUNNING,
};
use caravan_api_types::job::Task;
use caravan_api_types::sync::lock;
use caravan_rpc::AllocUpdate;
use tokio::sync::{mpsc, watch, Notify};

use super::dir::AllocDir;
use super::events;
use super::health;
use super::lifecycle::RestartRequest;
use super::state::{LocalAlloc, LocalTask};
use super::task::{phase_of, Kill, TaskRunner};
use super::RunnerContext;

/// The lifecycle gate that is open: a task starts once the gate of its
/// phase is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Prestart,
    Main,
    Poststart,
    Poststop,
}

/// What the alloc runner and its task runners share.
pub(crate) struct AllocShared {
    pub id: String,
    pub dir: AllocDir,
    local: Mutex<LocalAlloc>,
    ctx: Arc<RunnerContext>,
    /// Wakes the alloc runner after any change.
    changed: Notify,
    /// Whether the servers' view of the allocation has been applied since
    /// this client started.
    pub synced: watch::Sender<bool>,
    pub phase: watch::Sender<Phase>,
    /// Set when the servers no longer have the allocation: kill
    /// everything, then remove the directory and the state.
    destroy: watch::Sender<bool>,
    /// Set when the runner has finished: its tasks are dead and, if it was
    /// destroyed, its directory and state are gone.
    pub done: watch::Sender<bool>,
    last_reported: Mutex<Option<AllocUpdate>>,
    /// Bumped on every task change (what the health watcher waits on; the
    /// alloc runner has `changed`).
    pub revision: watch::Sender<u64>,
    /// Per task, where restarts asked for through the API go (its task
    /// runner takes them while the task runs).
    pub restarts: BTreeMap<String, mpsc::UnboundedSender<RestartRequest>>,
}

impl AllocShared {
    pub fn alloc(&self) -> Allocation {
        lock(&self.local).alloc.clone()
    }

    pub fn task_states(&self) -> BTreeMap<String, LocalTask> {
        lock(&self.local).tasks.clone()
    }

    /// Records and reports the allocation's health verdict.
    pub fn set_health(&self, health: AllocDeploymentStatus) {
        let mut local = lock(&self.local);
        local.health = Some(health);
        if let Err(error) = self.ctx.store.save(&local) {
            tracing::warn!(alloc_id = %self.id, %error, "failed to save allocation state");
        }
        self.report(client_update(&local));
    }

    pub fn task(&self, name: &str) -> LocalTask {
        lock(&self.local)
            .tasks
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// Changes one task's record, persists the allocation, reports it if
    /// its client view changed, and wakes the alloc runner.
    pub fn with_task(&self, name: &str, change: impl FnOnce(&mut LocalTask)) {
        if let Err(error) = self.try_with_task(name, change) {
            tracing::warn!(alloc_id = %self.id, %error, "failed to save allocation state");
        }
    }

    /// [`Self::with_task`], saying whether the change reached the disk:
    /// for a change a step must not be taken without (the change stays
    /// made in memory either way).
    pub fn try_with_task(
        &self,
        name: &str,
        change: impl FnOnce(&mut LocalTask),
    ) -> std::io::Result<()> {
        let saved = {
            let mut local = lock(&self.local);
            change(local.tasks.entry(name.to_string()).or_default());
            let saved = self.ctx.store.save(&local);
            // Reported under the same lock, so two task runners' updates
            // reach the batcher in the order they were made (the newest
            // wins there).
            self.report(client_update(&local));
            saved
        };
        self.revision.send_modify(|revision| *revision += 1);
        self.changed.notify_one();
        saved
    }

    fn report(&self, update: AllocUpdate) {
        let mut last = lock(&self.last_reported);
        if last.as_ref() == Some(&update) {
            return;
        }
        *last = Some(update.clone());
        drop(last);
        self.ctx.sink.push(update);
    }

    /// The servers sent a new version of the allocation.
    pub fn replace_alloc(&self, alloc: Allocation) {
        {
            let mut local = lock(&self.local);
            local.alloc = alloc;
            if let Err(error) = self.ctx.store.save(&local) {
                tracing::warn!(alloc_id = %self.id, %error, "failed to save allocation state");
            }
        }
        self.synced.send_replace(true);
        self.changed.notify_one();
    }

    pub fn request_destroy(&self) {
        self.destroy.send_replace(true);
        self.changed.notify_one();
    }

    pub fn is_finished(&self) -> bool {
        let local = lock(&self.local);
        !local.tasks.is_empty() && local.tasks.values().all(|task| task.run_complete)
    }
}

/// The allocation's client status from its tasks (first match): a failed
/// dead task, any running, any pending, else complete.
pub fn client_status(tasks: &BTreeMap<String, LocalTask>) -> (&'static str, &'static str) {
    let states = || tasks.values().map(|task| &task.state);
    if states().any(|state| state.state == TASK_STATE_DEAD && state.failed) {
        return (ALLOC_CLIENT_FAILED, "Failed tasks");
    }
    if states().any(|state| state.state == TASK_STATE_RUNNING) {
        return (ALLOC_CLIENT_RUNNING, "Tasks are running");
    }
    if states().any(|state| state.state == TASK_STATE_PENDING || state.state.is_empty()) {
        return (ALLOC_CLIENT_PENDING, "No tasks have started");
    }
    (ALLOC_CLIENT_COMPLETE, "All tasks have completed")
}

fn client_update(local: &LocalAlloc) -> AllocUpdate {
    let (status, description) = client_status(&local.tasks);
    AllocUpdate {
        id: local.alloc.id.clone(),
        client_status: status.to_string(),
        client_description: description.to_string(),
        task_states: local
            .tasks
            .iter()
            .map(|(name, task)| (name.clone(), task.state.clone()))
            .collect(),
        deployment_status: local.health.clone(),
    }
}

/// A running alloc runner, as the manager holds it.
pub(crate) struct AllocHandle {
    pub shared: Arc<AllocShared>,
}

/// Starts the runner of `local` (a new allocation, or one restored from
/// disk when `restore`).
pub(crate) fn start(
    ctx: &Arc<RunnerContext>,
    mut local: LocalAlloc,
    restore: bool,
) -> std::io::Result<AllocHandle> {
    let dir = AllocDir::new(&ctx.alloc_dir, &local.alloc.id)?;
    let tasks: Vec<Task> = local
        .alloc
        .job
        .as_ref()
        .and_then(|job| job.group(&local.alloc.task_group))
        .map(|group| group.tasks.clone())
        .unwrap_or_default();
    let mut restarts = BTreeMap::new();
    let mut restart_receivers = BTreeMap::new();
    for task in &tasks {
        local.tasks.entry(task.name.clone()).or_default();
        let (sender, receiver) = mpsc::unbounded_channel();
        restarts.insert(task.name.clone(), sender);
        restart_receivers.insert(task.name.clone(), receiver);
    }
    let shared = Arc::new(AllocShared {
        id: local.alloc.id.clone(),
        dir,
        local: Mutex::new(local),
        ctx: Arc::clone(ctx),
        changed: Notify::new(),
        synced: watch::Sender::new(!restore),
        phase: watch::Sender::new(Phase::Prestart),
        destroy: watch::Sender::new(false),
        done: watch::Sender::new(false),
        last_reported: Mutex::new(None),
        revision: watch::Sender::new(0),
        restarts,
    });
    let rule = {
        let local = lock(&shared.local);
        local
            .health
            .is_none()
            .then(|| health::rule_for(&local.alloc))
            .flatten()
    };
    if let Some(rule) = rule {
        tokio::spawn(health::watch(Arc::clone(&shared), tasks.clone(), rule));
    }
    tokio::spawn(run(
        Arc::clone(&shared),
        Arc::clone(ctx),
        tasks,
        restart_receivers,
        restore,
    ));
    Ok(AllocHandle { shared })
}

async fn run(
    shared: Arc<AllocShared>,
    ctx: Arc<RunnerContext>,
    tasks: Vec<Task>,
    mut restarts: BTreeMap<String, mpsc::UnboundedReceiver<RestartRequest>>,
    restore: bool,
) {
    if let Err(error) = shared.dir.build() {
        for task in &tasks {
            shared.with_task(&task.name, |local| {
                if local.run_complete {
                    return;
                }
                events::record(&mut local.state, events::setup_failure(&error.to_string()));
                local.state.state = TASK_STATE_DEAD.to_string();
                local.state.failed = true;
                local.run_complete = true;
            });
        }
    }
    let mut kills = BTreeMap::new();
    for task in &tasks {
        let (sender, receiver) = watch::channel(None);
        kills.insert(task.name.clone(), sender);
        // Every task got its channel in `start`; a missing one would only
        // mean restarts find it not running.
        let runner = TaskRunner {
            name: task.name.clone(),
            shared: Arc::clone(&shared),
            ctx: Arc::clone(&ctx),
            kill: receiver,
            restarts: restarts
                .remove(&task.name)
                .unwrap_or_else(|| mpsc::unbounded_channel().1),
            restore,
        };
        tokio::spawn(runner.run());
    }
    // Report the first state (every task pending) at once.
    if let Some(first) = tasks.first() {
        shared.with_task(&first.name, |_| {});
    }
    let mut coordinator = Coordinator {
        tasks,
        kills,
        stopping: false,
    };
    loop {
        coordinator.step(&shared);
        let destroying = *shared.destroy.borrow();
        if shared.is_finished() || coordinator.tasks.is_empty() {
            if destroying {
                break;
            }
            // Done: wait only for the servers to forget the allocation.
            let mut destroy = shared.destroy.subscribe();
            let _ = destroy.wait_for(|destroy| *destroy).await;
            break;
        }
        shared.changed.notified().await;
    }
    if let Err(error) = shared.dir.destroy() {
        tracing::warn!(alloc_id = %shared.id, %error, "failed to remove the allocation directory");
    }
    if let Err(error) = ctx.store.remove(&shared.id) {
        tracing::warn!(alloc_id = %shared.id, %error, "failed to remove the allocation state");
    }
    shared.done.send_replace(true);
}

/// The lifecycle coordinator and the sibling rules.
struct Coordinator {
    tasks: Vec<Task>,
    kills: BTreeMap<String, watch::Sender<Option<Kill>>>,
    stopping: bool,
}

impl Coordinator {
    fn step(&mut self, shared: &AllocShared) {
        let alloc = shared.alloc();
        let destroying = *shared.destroy.borrow();
        let states: BTreeMap<String, LocalTask> = self
            .tasks
            .iter()
            .map(|task| (task.name.clone(), shared.task(&task.name)))
            .collect();
        let dead = |name: &str| states.get(name).is_some_and(|task| task.run_complete);
        let sidecar = |task: &Task| task.lifecycle.as_ref().is_some_and(|hook| hook.sidecar);
        if destroying || (alloc.server_terminal() && !self.stopping) {
            self.stopping = true;
            for task in &self.tasks {
                // Poststop tasks still run after a stop; only a destroy
                // kills them.
                if destroying || phase_of(task) != Phase::Poststop {
                    self.kill(&task.name, Kill::default());
                }
            }
        }
        // A failed task takes its siblings down.
        if let Some(failed) = states
            .iter()
            .find(|(_, task)| task.run_complete && task.state.failed)
            .map(|(name, _)| name.clone())
        {
            for task in &self.tasks {
                if task.name != failed && phase_of(task) != Phase::Poststop && !dead(&task.name) {
                    self.kill(
                        &task.name,
                        Kill {
                            reason: String::new(),
                            event: Some(events::sibling_failed(&failed)),
                        },
                    );
                }
            }
        }
        // A dead leader takes the others down.
        if self
            .tasks
            .iter()
            .any(|task| task.leader && dead(&task.name))
        {
            for task in &self.tasks {
                if !task.leader && phase_of(task) != Phase::Poststop && !dead(&task.name) {
                    self.kill(
                        &task.name,
                        Kill {
                            reason: String::new(),
                            event: Some(events::leader_dead()),
                        },
                    );
                }
            }
        }
        // Sidecars do not outlive the main tasks.
        let mains: Vec<&Task> = self
            .tasks
            .iter()
            .filter(|task| !sidecar(task) && phase_of(task) != Phase::Poststop)
            .collect();
        if !mains.is_empty() && mains.iter().all(|task| dead(&task.name)) {
            for task in self.tasks.iter().filter(|task| sidecar(task)) {
                if !dead(&task.name) {
                    self.kill(
                        &task.name,
                        Kill {
                            reason: String::new(),
                            event: Some(events::main_dead()),
                        },
                    );
                }
            }
        }
        // Read the gate before opening the next one: a watch's borrow holds
        // its lock, and sending while holding it would deadlock.
        let current = *shared.phase.borrow();
        let next = self.next_phase(current, &states);
        if next != current {
            shared.phase.send_replace(next);
        }
    }

    fn next_phase(&self, current: Phase, states: &BTreeMap<String, LocalTask>) -> Phase {
        let dead = |name: &str| states.get(name).is_some_and(|task| task.run_complete);
        let running = |name: &str| {
            states
                .get(name)
                .is_some_and(|task| task.state.state == TASK_STATE_RUNNING)
        };
        // Nomad's rule: prestart tasks must have succeeded; a prestart
        // sidecar must have started once.
        let succeeded = |name: &str| {
            states
                .get(name)
                .is_some_and(|task| task.run_complete && !task.state.failed)
        };
        let started = |name: &str| {
            states
                .get(name)
                .is_some_and(|task| task.state.started_at.is_some())
        };
        let in_phase = |phase: Phase| {
            self.tasks
                .iter()
                .filter(move |task| phase_of(task) == phase)
        };
        let sidecar = |task: &Task| task.lifecycle.as_ref().is_some_and(|hook| hook.sidecar);
        if self
            .tasks
            .iter()
            .filter(|task| phase_of(task) != Phase::Poststop)
            .all(|task| dead(&task.name))
        {
            return Phase::Poststop;
        }
        let mut phase = current;
        if phase == Phase::Prestart
            && in_phase(Phase::Prestart).all(|task| match sidecar(task) {
                true => started(&task.name),
                false => succeeded(&task.name),
            })
        {
            phase = Phase::Main;
        }
        if phase == Phase::Main
            && in_phase(Phase::Main).all(|task| running(&task.name) || dead(&task.name))
        {
            phase = Phase::Poststart;
        }
        phase
    }

    fn kill(&self, task: &str, kill: Kill) {
        if let Some(sender) = self.kills.get(task) {
            sender.send_if_modified(|current| match current {
                Some(_) => false,
                None => {
                    *current = Some(kill);
                    true
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caravan_api_types::alloc::TaskState;

    fn task(state: &str, failed: bool) -> LocalTask {
        LocalTask {
            state: TaskState {
                state: state.to_string(),
                failed,
                ..TaskState::default()
            },
            ..LocalTask::default()
        }
    }

    #[test]
    fn client_status_follows_nomads_order() {
        let tasks = |list: &[(&str, bool)]| -> BTreeMap<String, LocalTask> {
            list.iter()
                .enumerate()
                .map(|(index, (state, failed))| (index.to_string(), task(state, *failed)))
                .collect()
        };
        assert_eq!(
            client_status(&tasks(&[("dead", true), ("running", false)])).0,
            "failed"
        );
        assert_eq!(
            client_status(&tasks(&[("pending", false), ("running", false)])).0,
            "running"
        );
        assert_eq!(client_status(&tasks(&[("pending", false)])).0, "pending");
        assert_eq!(
            client_status(&tasks(&[("dead", false), ("dead", false)])),
            ("complete", "All tasks have completed")
        );
    }
}
