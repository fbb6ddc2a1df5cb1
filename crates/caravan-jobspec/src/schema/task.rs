//! The blocks inside a task: resources, logs, artifacts, templates, vault,
//! secrets, identities, scaling.

use super::Kind::*;
use super::{Field, Schema};
use super::{AFFINITY, CONSTRAINT, NETWORK};

pub(crate) static RESOURCES: Schema = Schema {
    name: "resources",
    label: None,
    fields: &[
        f!("cpu" => "CPU", Int),
        f!("cores" => "Cores", Int),
        f!("memory" => "MemoryMB", Int),
        f!("memory_max" => "MemoryMaxMB", Int),
        f!("disk" => "DiskMB", Int),
        f!("network" => "Networks", Blocks(&NETWORK)),
        f!("device" => "Devices", Blocks(&DEVICE)),
        f!("numa" => "NUMA", Block(&NUMA)),
        f!("secrets" => "SecretsMB", Int),
        f!("iops" => "IOPS", Int),
    ],
    post: None,
};

pub(crate) static DEVICE: Schema = Schema {
    name: "device",
    label: Some("Name"),
    fields: &[
        f!("count" => "Count", Int),
        f!("constraint" => "Constraints", Blocks(&CONSTRAINT)),
        f!("affinity" => "Affinities", Blocks(&AFFINITY)),
    ],
    post: None,
};

pub(crate) static NUMA: Schema = Schema {
    name: "numa",
    label: None,
    fields: &[
        f!("affinity" => "Affinity", Str),
        f!("devices" => "Devices", StrList),
    ],
    post: None,
};

pub(crate) static LIFECYCLE: Schema = Schema {
    name: "lifecycle",
    label: None,
    fields: &[
        f!("hook" => "Hook", Str, required),
        f!("sidecar" => "Sidecar", Bool),
    ],
    post: None,
};

pub(crate) static LOGS: Schema = Schema {
    name: "logs",
    label: None,
    fields: &[
        f!("max_files" => "MaxFiles", Int),
        f!("max_file_size" => "MaxFileSizeMB", Int),
        f!("enabled" => "Enabled", Bool),
        f!("disabled" => "Disabled", Bool),
    ],
    post: None,
};

pub(crate) static ARTIFACT: Schema = Schema {
    name: "artifact",
    label: None,
    fields: &[
        f!("source" => "GetterSource", Str),
        f!("options" => "GetterOptions", StrMap),
        f!("headers" => "GetterHeaders", StrMap),
        f!("mode" => "GetterMode", Str),
        f!("insecure" => "GetterInsecure", Bool),
        f!("destination" => "RelativeDest", Str),
        f!("chown" => "Chown", Bool),
    ],
    post: None,
};

pub(crate) static TEMPLATE: Schema = Schema {
    name: "template",
    label: None,
    fields: &[
        f!("source" => "SourcePath", Str),
        f!("destination" => "DestPath", Str),
        f!("data" => "EmbeddedTmpl", Str),
        f!("change_mode" => "ChangeMode", Str),
        f!("change_script" => "ChangeScript", Block(&CHANGE_SCRIPT)),
        f!("change_signal" => "ChangeSignal", Str),
        f!("once" => "Once", Bool),
        f!("splay" => "Splay", Dur),
        f!("perms" => "Perms", Str),
        f!("uid" => "Uid", Int),
        f!("gid" => "Gid", Int),
        f!("left_delimiter" => "LeftDelim", Str),
        f!("right_delimiter" => "RightDelim", Str),
        f!("env" => "Envvars", Bool),
        f!("vault_grace" => "VaultGrace", Dur),
        f!("wait" => "Wait", Block(&TEMPLATE_WAIT)),
        f!("error_on_missing_key" => "ErrMissingKey", Bool),
    ],
    post: Some(crate::normalize::template),
};

pub(crate) static CHANGE_SCRIPT: Schema = Schema {
    name: "change_script",
    label: None,
    fields: &[
        f!("command" => "Command", Str, required),
        f!("args" => "Args", StrList),
        f!("timeout" => "Timeout", Dur),
        f!("fail_on_error" => "FailOnError", Bool, required),
        f!("run_on_first_render" => "RunOnFirstRender", Bool),
    ],
    post: None,
};

pub(crate) static TEMPLATE_WAIT: Schema = Schema {
    name: "wait",
    label: None,
    fields: &[
        f!("min" => "Min", Dur, required),
        f!("max" => "Max", Dur, required),
    ],
    post: None,
};

pub(crate) static DISPATCH_PAYLOAD: Schema = Schema {
    name: "dispatch_payload",
    label: None,
    fields: &[f!("file" => "File", Str)],
    post: None,
};

pub(crate) static VAULT: Schema = Schema {
    name: "vault",
    label: None,
    fields: &[
        f!("policies" => "Policies", StrList),
        f!("role" => "Role", Str),
        f!("namespace" => "Namespace", Str),
        f!("cluster" => "Cluster", Str),
        f!("env" => "Env", Bool),
        f!("disable_file" => "DisableFile", Bool),
        f!("change_mode" => "ChangeMode", Str),
        f!("change_signal" => "ChangeSignal", Str),
        f!("allow_token_expiration" => "AllowTokenExpiration", Bool),
    ],
    post: Some(crate::normalize::vault),
};

pub(crate) static CONSUL: Schema = Schema {
    name: "consul",
    label: None,
    fields: &[
        f!("namespace" => "Namespace", Str),
        f!("cluster" => "Cluster", Str),
        f!("partition" => "Partition", Str),
    ],
    post: None,
};

pub(crate) static SECRET: Schema = Schema {
    name: "secret",
    label: Some("Name"),
    fields: &[
        f!("provider" => "Provider", Str),
        f!("path" => "Path", Str),
        f!("config" => "Config", FreeMap),
        f!("env" => "Env", StrMap),
    ],
    post: None,
};

pub(crate) static IDENTITY: Schema = Schema {
    name: "identity",
    label: None,
    fields: &[
        f!("name" => "Name", Str),
        f!("aud" => "Audience", StrList),
        f!("change_mode" => "ChangeMode", Str),
        f!("change_signal" => "ChangeSignal", Str),
        f!("env" => "Env", Bool),
        f!("file" => "File", Bool),
        f!("filepath" => "Filepath", Str),
        f!("service_name" => "ServiceName", Str),
        f!("ttl" => "TTL", Dur),
        f!("extra_claims" => "ExtraClaims", StrList),
    ],
    post: None,
};

pub(crate) static ACTION: Schema = Schema {
    name: "action",
    label: Some("Name"),
    fields: &[
        f!("command" => "Command", Str, required),
        f!("args" => "Args", StrList),
    ],
    post: None,
};

pub(crate) static CSI_PLUGIN: Schema = Schema {
    name: "csi_plugin",
    label: None,
    fields: &[
        f!("id" => "ID", Str),
        f!("type" => "Type", Str),
        f!("mount_dir" => "MountDir", Str),
        f!("stage_publish_base_dir" => "StagePublishBaseDir", Str),
        f!("health_timeout" => "HealthTimeout", Dur),
    ],
    post: None,
};

pub(crate) static GROUP_SCALING: Schema = Schema {
    name: "scaling",
    label: None,
    fields: &[
        f!("min" => "Min", Int),
        f!("max" => "Max", Int),
        f!("policy" => "Policy", FreeMap),
        f!("enabled" => "Enabled", Bool),
        f!("type" => "Type", Str),
    ],
    post: Some(crate::normalize::group_scaling),
};

pub(crate) static TASK_SCALING: Schema = Schema {
    name: "scaling",
    label: Some("__label"),
    fields: GROUP_SCALING.fields,
    post: Some(crate::normalize::task_scaling),
};
