//! The simulated nodes' allocations (`node-sim -run-allocs`): each node
//! reads its allocations through the same blocking RPC a client uses and
//! reports them through the client's [`UpdateBatcher`]: a new allocation
//! `running` (each task running, with Nomad's first events), batch and
//! sysbatch ones `complete` after `-batch-runtime`, and those the servers
//! stop or evict `complete`. Nothing runs; a node's whole loop is one
//! task plus its batcher, and it ends at the run's deadline.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use caravan_api_types::alloc::{
    AllocDeploymentStatus, Allocation, TaskEvent, TaskState, ALLOC_CLIENT_COMPLETE,
    ALLOC_CLIENT_RUNNING, TASK_STATE_DEAD, TASK_STATE_RUNNING,
};
use caravan_api_types::job::{JOB_TYPE_BATCH, JOB_TYPE_SYSBATCH};
use caravan_client::allocs::UpdateBatcher;
use caravan_client::{rpc, ServerList};
use caravan_rpc::{AllocUpdate, NodeAllocsRequest, NodeAllocsUpdate, RpcClient};

/// The longest one allocation query is held (Nomad's default blocking
/// wait).
const MAX_FETCH_WAIT: Duration = Duration::from_secs(300);
/// The pause after a failed query before the next.
const FETCH_RETRY: Duration = Duration::from_secs(1);

/// What every simulated node's allocation loop counts.
#[derive(Default)]
pub struct AllocCounters {
    pub started: AtomicU64,
    pub completed: AtomicU64,
    pub fetch_failures: AtomicU64,
}

/// One simulated node, as its allocation loop needs it.
pub struct SimNode {
    pub rpc: RpcClient,
    pub servers: Arc<ServerList>,
    pub node_id: String,
    pub secret_id: String,
}

/// An allocation the node "runs".
struct Running {
    task_states: BTreeMap<String, TaskState>,
    /// When a batch allocation finishes.
    complete_at: Option<Instant>,
    /// Reported complete (or ended by the servers): nothing more to say.
    done: bool,
}

/// Reads and reports `node`'s allocations until `deadline`.
pub async fn run_node(
    node: SimNode,
    batch_runtime: Duration,
    deadline: Instant,
    counters: Arc<AllocCounters>,
) {
    let batcher = UpdateBatcher::new();
    let send = |allocs: Vec<AllocUpdate>| {
        let update = NodeAllocsUpdate {
            node_id: node.node_id.clone(),
            secret_id: node.secret_id.clone(),
            allocs,
        };
        let node = &node;
        async move {
            let update = &update;
            node.servers
                .call_with_failover(|server| async move {
                    rpc::update_allocs(&node.rpc, &server, update).await
                })
                .await
        }
    };
    let reporting = batcher.run_with(send, tokio::time::sleep_until(deadline.into()));
    let fetching = fetch_loop(&node, &batcher, batch_runtime, deadline, &counters);
    tokio::join!(reporting, fetching);
}

async fn fetch_loop(
    node: &SimNode,
    batcher: &UpdateBatcher,
    batch_runtime: Duration,
    deadline: Instant,
    counters: &AllocCounters,
) {
    let mut index = 0;
    let mut running: HashMap<String, Running> = HashMap::new();
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        complete_due(&mut running, batcher, now, counters);
        let next_due = running
            .values()
            .filter(|alloc| !alloc.done)
            .filter_map(|alloc| alloc.complete_at)
            .min()
            .unwrap_or(deadline);
        let wait = next_due.min(deadline).saturating_duration_since(now);
        let request = NodeAllocsRequest {
            node_id: node.node_id.clone(),
            secret_id: node.secret_id.clone(),
            min_index: index,
            wait_ms: u64::try_from(wait.min(MAX_FETCH_WAIT).as_millis()).unwrap_or(0),
            // A simulated node starts with nothing to lose: stale reads do.
            consistent: false,
        };
        let request = &request;
        let reply = node
            .servers
            .call_with_failover(|server| async move {
                rpc::get_allocs(&node.rpc, &server, request).await
            })
            .await;
        match reply {
            Ok(reply) => {
                index = reply.index;
                running.retain(|id, _| reply.allocs.contains_key(id));
                for alloc in &reply.changed {
                    accept(&mut running, batcher, alloc, batch_runtime, counters);
                }
            }
            Err(_) => {
                counters.fetch_failures.fetch_add(1, Ordering::Relaxed);
                let resume = (Instant::now() + FETCH_RETRY).min(deadline);
                tokio::time::sleep_until(resume.into()).await;
            }
        }
    }
}

/// Takes in one allocation the servers sent (new or changed).
fn accept(
    running: &mut HashMap<String, Running>,
    batcher: &UpdateBatcher,
    alloc: &Allocation,
    batch_runtime: Duration,
    counters: &AllocCounters,
) {
    if alloc.client_terminal() {
        // Already over (lost, or reported before): nothing to run.
        if let Some(known) = running.get_mut(&alloc.id) {
            known.done = true;
        }
        return;
    }
    if alloc.server_terminal() {
        let known = running.entry(alloc.id.clone()).or_insert_with(|| Running {
            task_states: task_states(alloc, now_utc()),
            complete_at: None,
            done: false,
        });
        if !known.done {
            finish(
                alloc.id.clone(),
                known,
                batcher,
                "Killed",
                "Task successfully killed",
            );
        }
        return;
    }
    if running.contains_key(&alloc.id) {
        return; // an in-place update of something already running
    }
    let batch = alloc
        .job
        .as_deref()
        .is_some_and(|job| matches!(job.job_type.as_str(), JOB_TYPE_BATCH | JOB_TYPE_SYSBATCH));
    let task_states = task_states(alloc, now_utc());
    // A simulated service task is healthy as soon as it runs, so drains
    // of simulated nodes move on without a real min_healthy_time.
    let health = (!batch).then(|| AllocDeploymentStatus {
        healthy: Some(true),
        timestamp: Some(now_utc()),
        ..AllocDeploymentStatus::default()
    });
    batcher.queue(AllocUpdate {
        id: alloc.id.clone(),
        client_status: ALLOC_CLIENT_RUNNING.to_string(),
        client_description: "Tasks are running".to_string(),
        task_states: task_states.clone(),
        deployment_status: health,
    });
    counters.started.fetch_add(1, Ordering::Relaxed);
    running.insert(
        alloc.id.clone(),
        Running {
            task_states,
            complete_at: batch.then(|| Instant::now() + batch_runtime),
            done: false,
        },
    );
}

/// Reports batch allocations whose run time is over complete.
fn complete_due(
    running: &mut HashMap<String, Running>,
    batcher: &UpdateBatcher,
    now: Instant,
    counters: &AllocCounters,
) {
    for (id, alloc) in running.iter_mut() {
        if !alloc.done && alloc.complete_at.is_some_and(|at| at <= now) {
            finish(id.clone(), alloc, batcher, "Terminated", "Exit Code: 0");
            counters.completed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Reports the allocation complete, each task dead after `event`.
fn finish(id: String, alloc: &mut Running, batcher: &UpdateBatcher, event: &str, text: &str) {
    let at = now_utc();
    for state in alloc.task_states.values_mut() {
        state.state = TASK_STATE_DEAD.to_string();
        state.finished_at = Some(at);
        let mut ended = task_event(event, text, at);
        if event == "Terminated" {
            ended
                .details
                .insert("exit_code".to_string(), "0".to_string());
        }
        state.events.get_or_insert_with(Vec::new).push(ended);
    }
    alloc.done = true;
    batcher.queue(AllocUpdate {
        id,
        client_status: ALLOC_CLIENT_COMPLETE.to_string(),
        client_description: "All tasks have completed".to_string(),
        task_states: alloc.task_states.clone(),
        deployment_status: None,
    });
}

fn now_utc() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn task_event(event_type: &str, display: &str, at: chrono::DateTime<chrono::Utc>) -> TaskEvent {
    TaskEvent {
        event_type: event_type.to_string(),
        time: at.timestamp_nanos_opt().unwrap_or_default(),
        display_message: display.to_string(),
        ..TaskEvent::default()
    }
}

/// Every task of the allocation's group running since `at`, with the
/// events a Nomad client reports on the way there.
fn task_states(
    alloc: &Allocation,
    at: chrono::DateTime<chrono::Utc>,
) -> BTreeMap<String, TaskState> {
    let tasks: Vec<String> = alloc
        .job
        .as_deref()
        .and_then(|job| job.group(&alloc.task_group))
        .map(|group| group.tasks.iter().map(|task| task.name.clone()).collect())
        .unwrap_or_default();
    tasks
        .into_iter()
        .map(|name| {
            let mut setup = task_event("Task Setup", "Building Task Directory", at);
            setup.message = "Building Task Directory".to_string();
            let state = TaskState {
                state: TASK_STATE_RUNNING.to_string(),
                started_at: Some(at),
                events: Some(vec![
                    task_event("Received", "Task received by client", at),
                    setup,
                    task_event("Started", "Task started by client", at),
                ]),
                ..TaskState::default()
            };
            (name, state)
        })
        .collect()
}
