//! From the submitted shape ([`ApiJob`]) to the stored one ([`Job`]): the
//! defaults of Nomad's `api` package, then the server's own (datacenters,
//! node pool, priority, region). jobs-api.md §2.1–2.2 lists them; the
//! per-type tables live in [`super::group`] and [`super::task`].

use super::api::{
    ApiAffinity, ApiJob, ApiMigrateStrategy, ApiReschedulePolicy, ApiRestartPolicy, ApiSpread,
    ApiTask, ApiTaskGroup, ApiUpdateStrategy,
};
use super::group::{
    EphemeralDisk, MigrateStrategy, ReschedulePolicy, RestartPolicy, TaskGroup, UpdateStrategy,
    SECOND,
};
use super::task::{Affinity, LogConfig, Resources, Spread, Task, TaskArtifact};
use super::{
    Job, ParameterizedJobConfig, PeriodicConfig, DEFAULT_NODE_POOL, DEFAULT_PRIORITY,
    JOB_TYPE_BATCH, JOB_TYPE_SERVICE, JOB_TYPE_SYSBATCH, JOB_TYPE_SYSTEM,
};

/// What the server fills in that the `api` package leaves alone.
#[derive(Debug, Clone)]
pub struct ServerDefaults {
    /// The agent's region, written into jobs that say `global` or nothing.
    pub region: String,
    /// `job_default_priority`.
    pub default_priority: i64,
}

impl Default for ServerDefaults {
    fn default() -> Self {
        Self {
            region: "global".into(),
            default_priority: DEFAULT_PRIORITY,
        }
    }
}

/// The `api` package's defaults: the stored shape before the server's
/// mutators (`/v1/jobs/parse` with `Canonicalize: true` shows this).
pub fn canonicalize(api: ApiJob) -> Job {
    let job_type = api
        .job_type
        .clone()
        .unwrap_or_else(|| JOB_TYPE_SERVICE.into());
    let service_like = job_type == JOB_TYPE_SERVICE || job_type == JOB_TYPE_SYSTEM;
    let id = api.id.clone().unwrap_or_default();
    let job_update = api.update.clone();
    let job_level_update = if service_like {
        let merged = merge_update(UpdateStrategy::default_group(), job_update.as_ref());
        UpdateStrategy {
            stagger: merged.stagger,
            max_parallel: merged.max_parallel,
            ..UpdateStrategy::default()
        }
    } else {
        UpdateStrategy::default()
    };
    let groups = api
        .task_groups
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|group| canonical_group(group, &api, &job_type))
        .collect();
    Job {
        stop: api.stop.unwrap_or(false),
        region: api.region.unwrap_or_else(|| "global".into()),
        namespace: api
            .namespace
            .unwrap_or_else(|| super::DEFAULT_NAMESPACE.into()),
        name: api
            .name
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| id.clone()),
        id,
        parent_id: api.parent_id.unwrap_or_default(),
        job_type,
        priority: api.priority.unwrap_or(0),
        all_at_once: api.all_at_once.unwrap_or(false),
        datacenters: api.datacenters.filter(|list| !list.is_empty()),
        node_pool: api.node_pool.unwrap_or_default(),
        constraints: non_empty(api.constraints),
        affinities: non_empty(
            api.affinities
                .map(|list| list.into_iter().map(affinity).collect()),
        ),
        spreads: non_empty(
            api.spreads
                .map(|list| list.into_iter().map(spread).collect()),
        ),
        task_groups: groups,
        update: job_level_update,
        multiregion: api.multiregion,
        periodic: api.periodic.map(|periodic| PeriodicConfig {
            enabled: periodic.enabled.unwrap_or(true),
            spec: periodic.spec.unwrap_or_default(),
            specs: periodic.specs.filter(|list| !list.is_empty()),
            spec_type: periodic.spec_type.unwrap_or_else(|| "cron".into()),
            prohibit_overlap: periodic.prohibit_overlap.unwrap_or(false),
            time_zone: periodic.time_zone.unwrap_or_else(|| "UTC".into()),
        }),
        parameterized_job: api.parameterized_job.map(|config| ParameterizedJobConfig {
            payload: config
                .payload
                .filter(|payload| !payload.is_empty())
                .unwrap_or_else(|| "optional".into()),
            meta_required: config.meta_required,
            meta_optional: config.meta_optional,
        }),
        dispatched: api.dispatched.unwrap_or(false),
        dispatch_idempotency_token: api.dispatch_idempotency_token.unwrap_or_default(),
        payload: api.payload.filter(|payload| !payload.is_empty()),
        meta: api.meta.filter(|meta| !meta.is_empty()),
        consul_namespace: api.consul_namespace.unwrap_or_default(),
        vault_namespace: api.vault_namespace.unwrap_or_default(),
        nomad_token_id: String::new(),
        status: String::new(),
        status_description: String::new(),
        stable: false,
        version: 0,
        submit_time: 0,
        create_index: 0,
        modify_index: 0,
        job_modify_index: 0,
        ui: api.ui,
        version_tag: api.version_tag,
    }
}

/// The server's mutators after [`canonicalize`]: datacenters `["*"]`, node
/// pool `default`, the default priority, the agent's region, and
/// `HostNetwork: default` on every port.
pub fn apply_server_defaults(job: &mut Job, defaults: &ServerDefaults) {
    if job.datacenters.as_ref().is_none_or(|list| list.is_empty()) {
        job.datacenters = Some(vec!["*".into()]);
    }
    if job.node_pool.is_empty() {
        job.node_pool = DEFAULT_NODE_POOL.into();
    }
    if job.priority == 0 {
        job.priority = defaults.default_priority;
    }
    if job.region.is_empty() || job.region == "global" {
        job.region = defaults.region.clone();
    }
    if job.namespace.is_empty() {
        job.namespace = super::DEFAULT_NAMESPACE.into();
    }
    for group in &mut job.task_groups {
        let task_networks = group
            .tasks
            .iter_mut()
            .flat_map(|task| task.resources.networks.iter_mut().flatten());
        for network in group.networks.iter_mut().flatten().chain(task_networks) {
            for port in network
                .reserved_ports
                .iter_mut()
                .flatten()
                .chain(network.dynamic_ports.iter_mut().flatten())
            {
                if port.host_network.is_empty() {
                    port.host_network = "default".into();
                }
            }
        }
    }
}

fn non_empty<T>(list: Option<Vec<T>>) -> Option<Vec<T>> {
    list.filter(|list| !list.is_empty())
}

fn affinity(api: ApiAffinity) -> Affinity {
    Affinity {
        l_target: api.l_target.unwrap_or_default(),
        r_target: api.r_target.unwrap_or_default(),
        operand: api.operand.unwrap_or_else(|| "=".into()),
        weight: api
            .weight
            .unwrap_or(50)
            .clamp(i8::MIN as i64, i8::MAX as i64) as i8,
    }
}

fn spread(api: ApiSpread) -> Spread {
    Spread {
        attribute: api.attribute.unwrap_or_default(),
        weight: api
            .weight
            .unwrap_or(50)
            .clamp(i8::MIN as i64, i8::MAX as i64) as i8,
        spread_target: non_empty(api.spread_target),
    }
}

/// Copies each field of `over` that was given onto `base`: a block given
/// at a narrower level merges field by field over the wider one's.
macro_rules! overlay {
    ($base:ident, $over:ident, $($field:ident),*) => {{
        let mut base = $base;
        if let Some(over) = $over {
            $( if let Some(value) = over.$field.clone() { base.$field = value; } )*
        }
        base
    }};
}

fn merge_update(base: UpdateStrategy, over: Option<&ApiUpdateStrategy>) -> UpdateStrategy {
    overlay!(
        base,
        over,
        stagger,
        max_parallel,
        health_check,
        min_healthy_time,
        healthy_deadline,
        progress_deadline,
        auto_revert,
        auto_promote,
        canary
    )
}

fn merge_migrate(base: MigrateStrategy, over: Option<&ApiMigrateStrategy>) -> MigrateStrategy {
    overlay!(
        base,
        over,
        max_parallel,
        health_check,
        min_healthy_time,
        healthy_deadline
    )
}

fn merge_restart(base: RestartPolicy, over: Option<&ApiRestartPolicy>) -> RestartPolicy {
    overlay!(
        base,
        over,
        attempts,
        interval,
        delay,
        mode,
        render_templates
    )
}

fn merge_reschedule(
    base: ReschedulePolicy,
    over: Option<&ApiReschedulePolicy>,
) -> ReschedulePolicy {
    overlay!(
        base,
        over,
        attempts,
        interval,
        delay,
        delay_function,
        max_delay,
        unlimited
    )
}

fn canonical_group(api: ApiTaskGroup, job: &ApiJob, job_type: &str) -> TaskGroup {
    let service = job_type == JOB_TYPE_SERVICE;
    let service_like = service || job_type == JOB_TYPE_SYSTEM;
    let batch_like = job_type == JOB_TYPE_BATCH || job_type == JOB_TYPE_SYSBATCH;
    let update = if service_like {
        let merged = merge_update(UpdateStrategy::default_group(), job.update.as_ref());
        Some(merge_update(merged, api.update.as_ref()))
    } else if api.update.is_some() {
        // Kept so that validation can refuse it by name.
        Some(merge_update(UpdateStrategy::default(), api.update.as_ref()))
    } else {
        None
    };
    // Non-service groups keep a given block so that validation refuses it.
    let migrate = (service || api.migrate.is_some() || job.migrate.is_some()).then(|| {
        let merged = merge_migrate(MigrateStrategy::default(), job.migrate.as_ref());
        merge_migrate(merged, api.migrate.as_ref())
    });
    let restart_default = if batch_like {
        RestartPolicy::default_batch()
    } else {
        RestartPolicy::default_service()
    };
    let restart = merge_restart(restart_default, api.restart_policy.as_ref());
    let reschedule = match job_type {
        JOB_TYPE_SERVICE | JOB_TYPE_BATCH => {
            let base = if service {
                ReschedulePolicy::default_service()
            } else {
                ReschedulePolicy::default_batch()
            };
            let merged = merge_reschedule(base, job.reschedule.as_ref());
            Some(merge_reschedule(merged, api.reschedule_policy.as_ref()))
        }
        _ if api.reschedule_policy.is_some() || job.reschedule.is_some() => {
            let merged = merge_reschedule(ReschedulePolicy::default(), job.reschedule.as_ref());
            Some(merge_reschedule(merged, api.reschedule_policy.as_ref()))
        }
        _ => None,
    };
    let disk_default = EphemeralDisk::default();
    let ephemeral_disk = match api.ephemeral_disk {
        Some(disk) => EphemeralDisk {
            sticky: disk.sticky.unwrap_or(disk_default.sticky),
            size_mb: disk.size_mb.unwrap_or(disk_default.size_mb),
            migrate: disk.migrate.unwrap_or(disk_default.migrate),
        },
        None => disk_default,
    };
    let scaling_min = api
        .scaling
        .as_ref()
        .and_then(|scaling| scaling.get("Min"))
        .and_then(|min| min.as_i64());
    let tasks = api
        .tasks
        .unwrap_or_default()
        .into_iter()
        .map(|task| canonical_task(task, &restart))
        .collect();
    TaskGroup {
        name: api.name.unwrap_or_default(),
        count: api.count.or(scaling_min).unwrap_or(1),
        update,
        migrate,
        constraints: non_empty(api.constraints),
        scaling: api.scaling,
        restart_policy: Some(restart),
        disconnect: api.disconnect,
        tasks,
        ephemeral_disk,
        meta: api.meta.filter(|meta| !meta.is_empty()),
        reschedule_policy: reschedule,
        affinities: non_empty(
            api.affinities
                .map(|list| list.into_iter().map(affinity).collect()),
        ),
        spreads: non_empty(
            api.spreads
                .map(|list| list.into_iter().map(spread).collect()),
        ),
        networks: non_empty(api.networks),
        consul: api.consul,
        services: api.services,
        volumes: api.volumes,
        shutdown_delay: api.shutdown_delay,
        max_run_duration: api.max_run_duration,
        stop_after_client_disconnect: None,
        max_client_disconnect: None,
        prevent_reschedule_on_lost: false,
    }
}

fn canonical_task(api: ApiTask, group_restart: &RestartPolicy) -> Task {
    let defaults = Resources::default();
    let resources = match api.resources {
        Some(given) => {
            let cores = given.cores.unwrap_or(0);
            Resources {
                cpu: given
                    .cpu
                    .unwrap_or(if cores > 0 { 0 } else { defaults.cpu }),
                cores,
                memory_mb: given.memory_mb.unwrap_or(defaults.memory_mb),
                memory_max_mb: given.memory_max_mb.unwrap_or(0),
                disk_mb: given.disk_mb.unwrap_or(0),
                iops: given.iops.unwrap_or(0),
                networks: non_empty(given.networks),
                devices: non_empty(given.devices.map(|devices| {
                    devices
                        .into_iter()
                        .map(|mut device| {
                            if device.count == 0 {
                                device.count = 1;
                            }
                            device
                        })
                        .collect()
                })),
                numa: given.numa,
                secrets_mb: given.secrets_mb.unwrap_or(0),
            }
        }
        None => defaults,
    };
    let log_default = LogConfig::default();
    let log_config = match api.log_config {
        Some(given) => LogConfig {
            max_files: given.max_files.unwrap_or(log_default.max_files),
            max_file_size_mb: given
                .max_file_size_mb
                .unwrap_or(log_default.max_file_size_mb),
            disabled: given.disabled.unwrap_or(false),
        },
        None => log_default,
    };
    let artifacts = api.artifacts.map(|list| {
        list.into_iter()
            .map(|artifact| {
                let mode = artifact.getter_mode.unwrap_or_else(|| "any".into());
                let source = artifact.getter_source.unwrap_or_default();
                let dest = artifact.relative_dest.unwrap_or_else(|| {
                    if mode == "file" {
                        let base = source.rsplit('/').next().unwrap_or_default();
                        format!("local/{base}")
                    } else {
                        "local/".into()
                    }
                });
                TaskArtifact {
                    getter_source: source,
                    getter_options: artifact.getter_options,
                    getter_headers: artifact.getter_headers,
                    getter_mode: mode,
                    getter_insecure: artifact.getter_insecure.unwrap_or(false),
                    relative_dest: dest,
                    chown: artifact.chown.unwrap_or(false),
                }
            })
            .collect()
    });
    Task {
        name: api.name.unwrap_or_default(),
        driver: api.driver.unwrap_or_default(),
        user: api.user.unwrap_or_default(),
        config: api.config.filter(|config| !config.is_empty()),
        env: api.env.filter(|env| !env.is_empty()),
        services: api.services,
        vault: api.vault,
        secrets: api.secrets,
        consul: api.consul,
        templates: api.templates,
        constraints: non_empty(api.constraints),
        affinities: non_empty(
            api.affinities
                .map(|list| list.into_iter().map(affinity).collect()),
        ),
        resources,
        restart_policy: Some(merge_restart(
            group_restart.clone(),
            api.restart_policy.as_ref(),
        )),
        dispatch_payload: api.dispatch_payload,
        lifecycle: api.lifecycle,
        meta: api.meta.filter(|meta| !meta.is_empty()),
        kill_timeout: api.kill_timeout.unwrap_or(5 * SECOND),
        log_config,
        artifacts: non_empty(artifacts),
        leader: api.leader.unwrap_or(false),
        shutdown_delay: api.shutdown_delay.unwrap_or(0),
        volume_mounts: api.volume_mounts,
        scaling_policies: api.scaling_policies,
        kill_signal: api.kill_signal.unwrap_or_default(),
        kind: api.kind.unwrap_or_default(),
        csi_plugin_config: api.csi_plugin_config,
        identity: api
            .identity
            .or_else(|| Some(super::task::default_identity())),
        identities: api.identities,
        actions: api.actions,
        schedule: api.schedule,
    }
}
