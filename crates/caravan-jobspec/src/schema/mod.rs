//! Which blocks and arguments each jobspec block accepts and the api-package
//! JSON field each one becomes: Nomad's `hcl:"..."` tags on the `api` structs
//! (`api/jobs.go`, `api/tasks.go`, `api/resources.go`, `api/services.go`, ...)
//! paired with the Go field names `encoding/json` writes.

use serde_json::{Map, Value};

use crate::error::ErrorKind;

/// What an argument or nested block holds, and how its value is converted.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Str,
    Int,
    Bool,
    /// Go duration string (or integer ns) → integer nanoseconds.
    Dur,
    StrList,
    IntList,
    /// `map[string]string`: a block or an attribute holding an object
    /// (`meta`, `env`: keys a block cannot spell, like `a.b`, need the
    /// attribute form).
    StrMap,
    /// `map[string][]string` block (check `header`).
    StrListMap,
    /// `map[string]any` block (`config`): kept as written, nested blocks
    /// becoming lists of objects the way Nomad's jobspec2 turns them.
    FreeMap,
    /// At most one nested block.
    Block(&'static Schema),
    /// Repeated nested blocks → a list.
    Blocks(&'static Schema),
    /// Repeated labelled blocks → an object keyed by label (group `volume`).
    BlockMap(&'static Schema),
}

pub(crate) struct Field {
    pub hcl: &'static str,
    pub json: &'static str,
    pub kind: Kind,
    pub required: bool,
}

/// Rewrites a decoded block into its final shape (constraint shorthands,
/// defaults jobspec2 fills in).
pub(crate) type Post = fn(&mut Map<String, Value>) -> Result<(), ErrorKind>;

pub(crate) struct Schema {
    pub name: &'static str,
    /// The JSON field that takes the block's one label; `None` for blocks
    /// without labels.
    pub label: Option<&'static str>,
    pub fields: &'static [Field],
    pub post: Option<Post>,
}

macro_rules! f {
    ($hcl:literal => $json:literal, $kind:expr) => {
        Field {
            hcl: $hcl,
            json: $json,
            kind: $kind,
            required: false,
        }
    };
    ($hcl:literal => $json:literal, $kind:expr, required) => {
        Field {
            hcl: $hcl,
            json: $json,
            kind: $kind,
            required: true,
        }
    };
}

use Kind::*;

mod service;
mod task;

pub(crate) use service::*;
pub(crate) use task::*;

pub(crate) static JOB: Schema = Schema {
    name: "job",
    label: None, // the label is the job ID, handled by `decode::job`
    fields: &[
        f!("region" => "Region", Str),
        f!("namespace" => "Namespace", Str),
        f!("id" => "ID", Str),
        f!("name" => "Name", Str),
        f!("type" => "Type", Str),
        f!("priority" => "Priority", Int),
        f!("all_at_once" => "AllAtOnce", Bool),
        f!("datacenters" => "Datacenters", StrList),
        f!("node_pool" => "NodePool", Str),
        f!("constraint" => "Constraints", Blocks(&CONSTRAINT)),
        f!("affinity" => "Affinities", Blocks(&AFFINITY)),
        f!("group" => "TaskGroups", Blocks(&GROUP)),
        f!("update" => "Update", Block(&UPDATE)),
        f!("multiregion" => "Multiregion", Block(&MULTIREGION)),
        f!("spread" => "Spreads", Blocks(&SPREAD)),
        f!("periodic" => "Periodic", Block(&PERIODIC)),
        f!("parameterized" => "ParameterizedJob", Block(&PARAMETERIZED)),
        f!("reschedule" => "Reschedule", Block(&RESCHEDULE)),
        f!("migrate" => "Migrate", Block(&MIGRATE)),
        f!("meta" => "Meta", StrMap),
        f!("ui" => "UI", Block(&UI)),
        // Job-level blocks jobspec2 moves into the tasks (see `normalize`).
        f!("vault" => "__Vault", Block(&VAULT)),
        f!("secret" => "__Secrets", Blocks(&SECRET)),
        f!("task" => "__Tasks", Blocks(&TASK)),
    ],
    post: None,
};

pub(crate) static GROUP: Schema = Schema {
    name: "group",
    label: Some("Name"),
    fields: &[
        f!("count" => "Count", Int),
        f!("constraint" => "Constraints", Blocks(&CONSTRAINT)),
        f!("affinity" => "Affinities", Blocks(&AFFINITY)),
        f!("task" => "Tasks", Blocks(&TASK)),
        f!("spread" => "Spreads", Blocks(&SPREAD)),
        f!("volume" => "Volumes", BlockMap(&VOLUME)),
        f!("restart" => "RestartPolicy", Block(&RESTART)),
        f!("disconnect" => "Disconnect", Block(&DISCONNECT)),
        f!("reschedule" => "ReschedulePolicy", Block(&RESCHEDULE)),
        f!("ephemeral_disk" => "EphemeralDisk", Block(&EPHEMERAL_DISK)),
        f!("update" => "Update", Block(&UPDATE)),
        f!("migrate" => "Migrate", Block(&MIGRATE)),
        f!("network" => "Networks", Blocks(&NETWORK)),
        f!("meta" => "Meta", StrMap),
        f!("service" => "Services", Blocks(&SERVICE)),
        f!("shutdown_delay" => "ShutdownDelay", Dur),
        f!("max_run_duration" => "MaxRunDuration", Dur),
        f!("stop_after_client_disconnect" => "StopAfterClientDisconnect", Dur),
        f!("max_client_disconnect" => "MaxClientDisconnect", Dur),
        f!("scaling" => "Scaling", Block(&GROUP_SCALING)),
        f!("consul" => "Consul", Block(&CONSUL)),
        f!("prevent_reschedule_on_lost" => "PreventRescheduleOnLost", Bool),
        f!("vault" => "__Vault", Block(&VAULT)),
        f!("secret" => "__Secrets", Blocks(&SECRET)),
    ],
    post: None,
};

pub(crate) static TASK: Schema = Schema {
    name: "task",
    label: Some("Name"),
    fields: &[
        f!("driver" => "Driver", Str),
        f!("user" => "User", Str),
        f!("lifecycle" => "Lifecycle", Block(&LIFECYCLE)),
        f!("config" => "Config", FreeMap),
        f!("constraint" => "Constraints", Blocks(&CONSTRAINT)),
        f!("affinity" => "Affinities", Blocks(&AFFINITY)),
        f!("env" => "Env", StrMap),
        f!("service" => "Services", Blocks(&SERVICE)),
        f!("resources" => "Resources", Block(&RESOURCES)),
        f!("restart" => "RestartPolicy", Block(&RESTART)),
        f!("meta" => "Meta", StrMap),
        f!("kill_timeout" => "KillTimeout", Dur),
        f!("logs" => "LogConfig", Block(&LOGS)),
        f!("artifact" => "Artifacts", Blocks(&ARTIFACT)),
        f!("vault" => "Vault", Block(&VAULT)),
        f!("consul" => "Consul", Block(&CONSUL)),
        f!("template" => "Templates", Blocks(&TEMPLATE)),
        f!("dispatch_payload" => "DispatchPayload", Block(&DISPATCH_PAYLOAD)),
        f!("volume_mount" => "VolumeMounts", Blocks(&VOLUME_MOUNT)),
        f!("csi_plugin" => "CSIPluginConfig", Block(&CSI_PLUGIN)),
        f!("leader" => "Leader", Bool),
        f!("shutdown_delay" => "ShutdownDelay", Dur),
        f!("kill_signal" => "KillSignal", Str),
        f!("kind" => "Kind", Str),
        f!("scaling" => "ScalingPolicies", Blocks(&TASK_SCALING)),
        f!("secret" => "Secrets", Blocks(&SECRET)),
        f!("identity" => "Identities", Blocks(&IDENTITY)),
        f!("action" => "Actions", Blocks(&ACTION)),
    ],
    post: None,
};

pub(crate) static CONSTRAINT: Schema = Schema {
    name: "constraint",
    label: None,
    fields: &[
        f!("attribute" => "attribute", Str),
        f!("value" => "value", Str),
        f!("operator" => "operator", Str),
        f!("distinct_property" => "distinct_property", Str),
        f!("distinct_hosts" => "distinct_hosts", Bool),
        f!("regexp" => "regexp", Str),
        f!("version" => "version", Str),
        f!("semver" => "semver", Str),
        f!("set_contains" => "set_contains", Str),
        // Accepted by jobspec2's constraint spec but never read: kept out of
        // the output, as there.
        f!("set_contains_all" => "set_contains_all", Str),
        f!("set_contains_any" => "set_contains_any", Str),
        f!("is_set" => "is_set", Str),
        f!("is_not_set" => "is_not_set", Str),
    ],
    post: Some(crate::normalize::constraint),
};

pub(crate) static AFFINITY: Schema = Schema {
    name: "affinity",
    label: None,
    fields: &[
        f!("attribute" => "attribute", Str),
        f!("value" => "value", Str),
        f!("operator" => "operator", Str),
        f!("weight" => "weight", Int),
        f!("version" => "version", Str),
        f!("semver" => "semver", Str),
        f!("regexp" => "regexp", Str),
        f!("set_contains" => "set_contains", Str),
        f!("set_contains_all" => "set_contains_all", Str),
        f!("set_contains_any" => "set_contains_any", Str),
    ],
    post: Some(crate::normalize::affinity),
};

pub(crate) static SPREAD: Schema = Schema {
    name: "spread",
    label: None,
    fields: &[
        f!("attribute" => "Attribute", Str),
        f!("weight" => "Weight", Int),
        f!("target" => "SpreadTarget", Blocks(&SPREAD_TARGET)),
    ],
    post: None,
};

pub(crate) static SPREAD_TARGET: Schema = Schema {
    name: "target",
    label: Some("Value"),
    fields: &[f!("percent" => "Percent", Int)],
    post: None,
};

pub(crate) static UPDATE: Schema = Schema {
    name: "update",
    label: None,
    fields: &[
        f!("stagger" => "Stagger", Dur),
        f!("max_parallel" => "MaxParallel", Int),
        f!("health_check" => "HealthCheck", Str),
        f!("min_healthy_time" => "MinHealthyTime", Dur),
        f!("healthy_deadline" => "HealthyDeadline", Dur),
        f!("progress_deadline" => "ProgressDeadline", Dur),
        f!("canary" => "Canary", Int),
        f!("auto_revert" => "AutoRevert", Bool),
        f!("auto_promote" => "AutoPromote", Bool),
    ],
    post: None,
};

pub(crate) static MULTIREGION: Schema = Schema {
    name: "multiregion",
    label: None,
    fields: &[
        f!("strategy" => "Strategy", Block(&MULTIREGION_STRATEGY)),
        f!("region" => "Regions", Blocks(&MULTIREGION_REGION)),
    ],
    post: None,
};

pub(crate) static MULTIREGION_STRATEGY: Schema = Schema {
    name: "strategy",
    label: None,
    fields: &[
        f!("max_parallel" => "MaxParallel", Int),
        f!("on_failure" => "OnFailure", Str),
    ],
    post: None,
};

pub(crate) static MULTIREGION_REGION: Schema = Schema {
    name: "region",
    label: Some("Name"),
    fields: &[
        f!("count" => "Count", Int),
        f!("datacenters" => "Datacenters", StrList),
        f!("node_pool" => "NodePool", Str),
        f!("meta" => "Meta", StrMap),
    ],
    post: None,
};

pub(crate) static PERIODIC: Schema = Schema {
    name: "periodic",
    label: None,
    fields: &[
        f!("enabled" => "Enabled", Bool),
        f!("cron" => "Spec", Str),
        f!("crons" => "Specs", StrList),
        f!("prohibit_overlap" => "ProhibitOverlap", Bool),
        f!("time_zone" => "TimeZone", Str),
    ],
    post: Some(crate::normalize::periodic),
};

pub(crate) static PARAMETERIZED: Schema = Schema {
    name: "parameterized",
    label: None,
    fields: &[
        f!("payload" => "Payload", Str),
        f!("meta_required" => "MetaRequired", StrList),
        f!("meta_optional" => "MetaOptional", StrList),
    ],
    post: None,
};

pub(crate) static RESCHEDULE: Schema = Schema {
    name: "reschedule",
    label: None,
    fields: &[
        f!("attempts" => "Attempts", Int),
        f!("interval" => "Interval", Dur),
        f!("delay" => "Delay", Dur),
        f!("delay_function" => "DelayFunction", Str),
        f!("max_delay" => "MaxDelay", Dur),
        f!("unlimited" => "Unlimited", Bool),
    ],
    post: None,
};

pub(crate) static MIGRATE: Schema = Schema {
    name: "migrate",
    label: None,
    fields: &[
        f!("max_parallel" => "MaxParallel", Int),
        f!("health_check" => "HealthCheck", Str),
        f!("min_healthy_time" => "MinHealthyTime", Dur),
        f!("healthy_deadline" => "HealthyDeadline", Dur),
    ],
    post: None,
};

pub(crate) static UI: Schema = Schema {
    name: "ui",
    label: None,
    fields: &[
        f!("description" => "Description", Str),
        f!("link" => "Links", Blocks(&UI_LINK)),
    ],
    post: None,
};

pub(crate) static UI_LINK: Schema = Schema {
    name: "link",
    label: None,
    fields: &[f!("label" => "Label", Str), f!("url" => "URL", Str)],
    post: None,
};

pub(crate) static RESTART: Schema = Schema {
    name: "restart",
    label: None,
    fields: &[
        f!("interval" => "Interval", Dur),
        f!("attempts" => "Attempts", Int),
        f!("delay" => "Delay", Dur),
        f!("mode" => "Mode", Str),
        f!("render_templates" => "RenderTemplates", Bool),
    ],
    post: None,
};

pub(crate) static DISCONNECT: Schema = Schema {
    name: "disconnect",
    label: None,
    fields: &[
        f!("lost_after" => "LostAfter", Dur),
        f!("stop_on_client_after" => "StopOnClientAfter", Dur),
        f!("replace" => "Replace", Bool),
        f!("reconcile" => "Reconcile", Str),
    ],
    post: None,
};

pub(crate) static EPHEMERAL_DISK: Schema = Schema {
    name: "ephemeral_disk",
    label: None,
    fields: &[
        f!("sticky" => "Sticky", Bool),
        f!("migrate" => "Migrate", Bool),
        f!("size" => "SizeMB", Int),
    ],
    post: None,
};

pub(crate) static VOLUME: Schema = Schema {
    name: "volume",
    label: Some("Name"),
    fields: &[
        f!("type" => "Type", Str),
        f!("source" => "Source", Str),
        f!("read_only" => "ReadOnly", Bool),
        f!("sticky" => "Sticky", Bool),
        f!("access_mode" => "AccessMode", Str),
        f!("attachment_mode" => "AttachmentMode", Str),
        f!("mount_options" => "MountOptions", Block(&MOUNT_OPTIONS)),
        f!("per_alloc" => "PerAlloc", Bool),
    ],
    post: None,
};

pub(crate) static MOUNT_OPTIONS: Schema = Schema {
    name: "mount_options",
    label: None,
    fields: &[
        f!("fs_type" => "FSType", Str),
        f!("mount_flags" => "MountFlags", StrList),
    ],
    post: None,
};

pub(crate) static VOLUME_MOUNT: Schema = Schema {
    name: "volume_mount",
    label: None,
    fields: &[
        f!("volume" => "Volume", Str),
        f!("destination" => "Destination", Str),
        f!("read_only" => "ReadOnly", Bool),
        f!("propagation_mode" => "PropagationMode", Str),
        f!("selinux_label" => "SELinuxLabel", Str),
    ],
    post: None,
};

pub(crate) static NETWORK: Schema = Schema {
    name: "network",
    label: None,
    fields: &[
        f!("mode" => "Mode", Str),
        f!("device" => "Device", Str),
        f!("cidr" => "CIDR", Str),
        f!("ip" => "IP", Str),
        f!("dns" => "DNS", Block(&DNS)),
        f!("reserved_ports" => "ReservedPorts", Blocks(&PORT)),
        f!("port" => "DynamicPorts", Blocks(&PORT)),
        f!("hostname" => "Hostname", Str),
        f!("mbits" => "MBits", Int),
        f!("cni" => "CNI", Block(&CNI)),
    ],
    post: Some(crate::normalize::network_ports),
};

pub(crate) static PORT: Schema = Schema {
    name: "port",
    label: Some("Label"),
    fields: &[
        f!("static" => "Value", Int),
        f!("to" => "To", Int),
        f!("host_network" => "HostNetwork", Str),
        f!("ignore_collision" => "IgnoreCollision", Bool),
    ],
    post: None,
};

pub(crate) static DNS: Schema = Schema {
    name: "dns",
    label: None,
    fields: &[
        f!("servers" => "Servers", StrList),
        f!("searches" => "Searches", StrList),
        f!("options" => "Options", StrList),
    ],
    post: None,
};

pub(crate) static CNI: Schema = Schema {
    name: "cni",
    label: None,
    fields: &[f!("args" => "Args", StrMap)],
    post: None,
};
