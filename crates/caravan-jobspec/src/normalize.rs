//! What jobspec2 does after decoding (`parse_job.go`'s `normalizeJob` and the
//! custom constraint/affinity decoders): shorthands, the job label as `ID`
//! and `Name`, job- and group-level `vault`/`secret`/`task` blocks moved into
//! the tasks, static ports split out of `port` blocks, and the few defaults
//! jobspec2 fills in itself (templates, vault, change scripts). Everything
//! else stays unset: the api defaults are the Canonicalize step's business,
//! not the parser's.

use serde_json::{json, Map, Value};

use crate::error::ErrorKind;

type Object = Map<String, Value>;

fn take_str(m: &mut Object, key: &str) -> Option<String> {
    match m.remove(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// `constraint`: `attribute`/`value`/`operator` → `LTarget`/`RTarget`/
/// `Operand`, with the shorthands (`version = "..."`, `semver`, `regexp`,
/// `set_contains`, `distinct_hosts = true`, `distinct_property = "..."`)
/// applied in jobspec2's order, and `=` when no operator is given.
pub(crate) fn constraint(m: &mut Object) -> Result<(), ErrorKind> {
    let mut l = take_str(m, "attribute").unwrap_or_default();
    let mut r = take_str(m, "value").unwrap_or_default();
    let mut op = take_str(m, "operator").unwrap_or_default();
    for shorthand in ["version", "semver", "regexp", "set_contains"] {
        if let Some(value) = take_str(m, shorthand) {
            op = shorthand.to_string();
            r = value;
        }
    }
    if let Some(Value::Bool(b)) = m.remove("distinct_hosts") {
        op = "distinct_hosts".to_string();
        r = b.to_string();
    }
    if let Some(property) = take_str(m, "distinct_property") {
        op = "distinct_property".to_string();
        l = property;
    }
    for ignored in [
        "set_contains_all",
        "set_contains_any",
        "is_set",
        "is_not_set",
    ] {
        m.remove(ignored);
    }
    if op.is_empty() {
        op = "=".to_string();
    }
    m.insert("LTarget".into(), Value::String(l));
    m.insert("RTarget".into(), Value::String(r));
    m.insert("Operand".into(), Value::String(op));
    Ok(())
}

/// `affinity`: like `constraint` plus `weight` (left unset when not given).
pub(crate) fn affinity(m: &mut Object) -> Result<(), ErrorKind> {
    let l = take_str(m, "attribute").unwrap_or_default();
    let mut r = take_str(m, "value").unwrap_or_default();
    let mut op = take_str(m, "operator").unwrap_or_default();
    for shorthand in [
        "version",
        "semver",
        "regexp",
        "set_contains_any",
        "set_contains_all",
        "set_contains",
    ] {
        if let Some(value) = take_str(m, shorthand) {
            op = shorthand.to_string();
            r = value;
        }
    }
    if op.is_empty() {
        op = "=".to_string();
    }
    let weight = m.remove("weight");
    m.insert("LTarget".into(), Value::String(l));
    m.insert("RTarget".into(), Value::String(r));
    m.insert("Operand".into(), Value::String(op));
    if let Some(weight) = weight {
        m.insert("Weight".into(), weight);
    }
    Ok(())
}

/// `periodic`: a cron spec means `SpecType: "cron"`.
pub(crate) fn periodic(m: &mut Object) -> Result<(), ErrorKind> {
    if m.contains_key("Spec") || m.contains_key("Specs") {
        m.insert("SpecType".into(), json!("cron"));
    }
    Ok(())
}

/// `port "x" { static = N }` blocks are reserved ports, the others dynamic.
/// (jobspec2 replaces any `reserved_ports` blocks with the static `port`
/// blocks; we keep both, the static ones after.)
pub(crate) fn network_ports(m: &mut Object) -> Result<(), ErrorKind> {
    let Some(Value::Array(ports)) = m.remove("DynamicPorts") else {
        return Ok(());
    };
    let (reserved, dynamic): (Vec<Value>, Vec<Value>) = ports.into_iter().partition(|p| {
        p.get("Value")
            .and_then(Value::as_i64)
            .is_some_and(|v| v > 0)
    });
    if !dynamic.is_empty() {
        m.insert("DynamicPorts".into(), Value::Array(dynamic));
    }
    if !reserved.is_empty() {
        match m
            .entry("ReservedPorts")
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            Value::Array(existing) => existing.extend(reserved),
            other => *other = Value::Array(reserved),
        }
    }
    Ok(())
}

fn default(m: &mut Object, key: &str, value: Value) {
    m.entry(key).or_insert(value);
}

/// The template defaults jobspec2 sets itself.
pub(crate) fn template(m: &mut Object) -> Result<(), ErrorKind> {
    default(m, "ChangeMode", json!("restart"));
    default(m, "Perms", json!("0644"));
    default(m, "Splay", json!(5_000_000_000i64));
    default(m, "ErrMissingKey", json!(false));
    if let Some(Value::Object(script)) = m.get_mut("ChangeScript") {
        default(script, "Args", json!([]));
        default(script, "Timeout", json!(5_000_000_000i64));
        default(script, "FailOnError", json!(false));
        default(script, "RunOnFirstRender", json!(false));
    }
    Ok(())
}

/// The vault defaults jobspec2 sets itself.
pub(crate) fn vault(m: &mut Object) -> Result<(), ErrorKind> {
    default(m, "Env", json!(true));
    default(m, "DisableFile", json!(false));
    default(m, "ChangeMode", json!("restart"));
    Ok(())
}

pub(crate) fn group_scaling(m: &mut Object) -> Result<(), ErrorKind> {
    if m.get("Type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        m.insert("Type".into(), json!("horizontal"));
    }
    Ok(())
}

/// Task `scaling "cpu"` / `scaling "mem"` are vertical policies.
pub(crate) fn task_scaling(m: &mut Object) -> Result<(), ErrorKind> {
    let label = take_str(m, "__label").unwrap_or_default().to_lowercase();
    let policy_type = match label.as_str() {
        "cpu" => "vertical_cpu",
        "mem" => "vertical_mem",
        _ => return Err(ErrorKind::ScalingName),
    };
    match m.get("Type").and_then(Value::as_str) {
        None | Some("") => {
            m.insert("Type".into(), json!(policy_type));
        }
        Some(given) if given == policy_type => {}
        Some(given) => {
            return Err(ErrorKind::Unsuitable {
                detail: format!(
                    "Invalid policy type, expected {given:?} but found {policy_type:?}"
                ),
            })
        }
    }
    Ok(())
}

/// The whole-job steps: `ID`/`Name` from the label, job-level tasks as
/// groups of their own, job- and group-level vault and secrets pushed into
/// the tasks, the default workload identity moved to `Identity`.
pub(crate) fn job(job: &mut Object, label: &str) {
    default(job, "ID", json!(label));
    default(job, "Name", json!(label));
    let job_vault = job.remove("__Vault");
    let job_secrets = take_list(job, "__Secrets");
    let lone_tasks = take_list(job, "__Tasks");

    let mut groups = Vec::new();
    for task in lone_tasks {
        let name = task.get("Name").cloned().unwrap_or(Value::Null);
        groups.push(json!({"Name": name, "Tasks": [task]}));
    }
    groups.extend(take_list(job, "TaskGroups"));

    for group in groups.iter_mut().filter_map(Value::as_object_mut) {
        let group_vault = group.remove("__Vault");
        let group_secrets = take_list(group, "__Secrets");
        if let Some(Value::Array(tasks)) = group.get_mut("Tasks") {
            for task in tasks.iter_mut().filter_map(Value::as_object_mut) {
                // Group-level blocks first (decodeTaskGroup), then job-level
                // (normalizeJob).
                if let Some(vault) = group_vault.as_ref().or(job_vault.as_ref()) {
                    task.entry("Vault").or_insert_with(|| vault.clone());
                }
                for secret in group_secrets.iter().chain(&job_secrets) {
                    match task
                        .entry("Secrets")
                        .or_insert_with(|| Value::Array(Vec::new()))
                    {
                        Value::Array(list) => list.push(secret.clone()),
                        other => *other = Value::Array(vec![secret.clone()]),
                    }
                }
                move_default_identity(task);
            }
        }
    }
    if !groups.is_empty() {
        job.insert("TaskGroups".into(), Value::Array(groups));
    }
}

fn take_list(m: &mut Object, key: &str) -> Vec<Value> {
    match m.remove(key) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

/// An `identity` block without a name (or named `default`) is the task's
/// default identity, which the api carries in `Identity`.
fn move_default_identity(task: &mut Object) {
    let Some(Value::Array(identities)) = task.get_mut("Identities") else {
        return;
    };
    let position = identities.iter().position(|id| {
        id.get("Name")
            .and_then(Value::as_str)
            .is_none_or(|name| name.is_empty() || name == "default")
    });
    if let Some(index) = position {
        let identity = identities.remove(index);
        if identities.is_empty() {
            task.remove("Identities");
        }
        task.insert("Identity".into(), identity);
    }
}
