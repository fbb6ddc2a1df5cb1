//! Job validation with Nomad's texts: every problem found, not the first,
//! each nested under the group and task it belongs to
//! (`Task group web validation failed: ... Task app validation failed: ...`),
//! formatted as hashicorp/go-multierror formats them (jobs-api.md §4.1).

use std::collections::BTreeMap;

use crate::duration::format_go_duration_nanos as go;

mod placement;
mod policies;
mod volumes;

pub use placement::validate_constraint;
use placement::{validate_affinity, validate_group_ports, validate_spread};
use policies::{validate_migrate, validate_reschedule, validate_restart, validate_update};
use volumes::{validate_group_volumes, validate_volume_mounts};

use super::group::TaskGroup;
use super::task::Task;
use super::{
    Job, JOB_TYPE_BATCH, JOB_TYPE_CORE, JOB_TYPE_SERVICE, JOB_TYPE_SYSBATCH, JOB_TYPE_SYSTEM,
    MAX_PRIORITY,
};

/// go-multierror's text for a list of errors: `1 error occurred:\n\t* a\n\n`.
pub fn multierror(errors: &[String]) -> String {
    let noun = if errors.len() == 1 {
        "error occurred"
    } else {
        "errors occurred"
    };
    let mut text = format!("{} {noun}:\n", errors.len());
    for error in errors {
        text.push_str("\t* ");
        text.push_str(error);
        text.push('\n');
    }
    text.push('\n');
    text
}

/// Nomad's warnings text: `1 warning:\n\n* a`, `""` for none.
pub fn warnings_text(warnings: &[String]) -> String {
    if warnings.is_empty() {
        return String::new();
    }
    let noun = if warnings.len() == 1 {
        "warning"
    } else {
        "warnings"
    };
    let items: Vec<String> = warnings
        .iter()
        .map(|warning| format!("* {}", warning.trim()))
        .collect();
    format!("{} {noun}:\n\n{}", warnings.len(), items.join("\n"))
}

/// A nested validation's errors under `prefix`, if there are any.
fn nest(errors: &mut Vec<String>, prefix: String, inner: Vec<String>) {
    if !inner.is_empty() {
        errors.push(format!("{prefix}{}", multierror(&inner)));
    }
}

/// Every problem with a canonical job; empty when it is valid.
pub fn validate(job: &Job) -> Vec<String> {
    let mut errors = Vec::new();
    if job.id.is_empty() {
        errors.push("Missing job ID".into());
    } else if job.id.contains(' ') {
        errors.push("Job ID contains a space".into());
    } else if job.id.contains('\0') {
        errors.push("Job ID contains a null character".into());
    }
    if job.name.is_empty() {
        errors.push("Missing job name".into());
    } else if job.name.contains('\0') {
        errors.push("Job Name contains a null character".into());
    }
    if job.namespace.is_empty() {
        errors.push("Job must be in a namespace".into());
    }
    match job.job_type.as_str() {
        "" => errors.push("Missing job type".into()),
        JOB_TYPE_CORE => errors.push("job type cannot be core".into()),
        JOB_TYPE_SERVICE | JOB_TYPE_BATCH | JOB_TYPE_SYSTEM | JOB_TYPE_SYSBATCH => {}
        other => errors.push(format!("Invalid job type: {other:?}")),
    }
    if !(1..=MAX_PRIORITY).contains(&job.priority) {
        errors.push(format!("job priority must be between [1, {MAX_PRIORITY}]"));
    }
    match &job.datacenters {
        None => errors.push("Missing job datacenters".into()),
        Some(list) if list.is_empty() => errors.push("Missing job datacenters".into()),
        Some(list) if list.iter().any(String::is_empty) => {
            errors.push("Job datacenter must be non-empty string".into())
        }
        Some(_) => {}
    }
    if job.task_groups.is_empty() {
        errors.push("Missing job task groups".into());
    }
    if job.payload.is_some() && !job.dispatched {
        errors.push("job can't be submitted with a payload, only dispatched".into());
    }
    for (number, constraint) in job.constraints.iter().flatten().enumerate() {
        nest(
            &mut errors,
            format!("Constraint {} validation failed: ", number + 1),
            validate_constraint(constraint),
        );
    }
    if job.job_type == JOB_TYPE_SYSTEM {
        if job.affinities.is_some() {
            errors.push("System jobs may not have an affinity block".into());
        }
        if job.spreads.is_some() {
            errors.push("System jobs may not have a spread block".into());
        }
    } else {
        for (number, affinity) in job.affinities.iter().flatten().enumerate() {
            nest(
                &mut errors,
                format!("Affinity {} validation failed: ", number + 1),
                validate_affinity(affinity),
            );
        }
        for (number, spread) in job.spreads.iter().flatten().enumerate() {
            nest(
                &mut errors,
                format!("Spread {} validation failed: ", number + 1),
                validate_spread(spread),
            );
        }
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, group) in job.task_groups.iter().enumerate() {
        if group.name.is_empty() {
            errors.push(format!("Job task group {} missing name", index + 1));
        } else if let Some(first) = seen.get(group.name.as_str()) {
            errors.push(format!(
                "Job task group {} redefines '{}' from group {}",
                index + 1,
                group.name,
                first + 1
            ));
        } else {
            seen.insert(&group.name, index);
        }
        if job.job_type == JOB_TYPE_SYSTEM && group.count > 1 {
            errors.push(format!(
                "Job task group {} has count {}. Count cannot exceed 1 with system scheduler",
                group.name, group.count
            ));
        }
        nest(
            &mut errors,
            format!("Task group {} validation failed: ", group.name),
            validate_group(job, group),
        );
    }
    let batch_like = job.job_type == JOB_TYPE_BATCH || job.job_type == JOB_TYPE_SYSBATCH;
    if let Some(periodic) = job.periodic.as_ref().filter(|periodic| periodic.enabled) {
        if !batch_like {
            errors
                .push("Periodic can only be used with \"batch\" or \"sysbatch\" scheduler".into());
        }
        let specs = periodic.specs.as_ref().is_some_and(|list| !list.is_empty());
        match (periodic.spec.is_empty(), specs) {
            (false, true) => errors.push("Only cron or crons may be used".into()),
            (true, false) => errors.push("Must specify a spec".into()),
            _ => {}
        }
    }
    if let Some(config) = &job.parameterized_job {
        if !batch_like {
            errors.push(
                "Parameterized job can only be used with \"batch\" or \"sysbatch\" scheduler"
                    .into(),
            );
        }
        if !["optional", "required", "forbidden"].contains(&config.payload.as_str()) {
            errors.push(format!("Unknown payload requirement: {:?}", config.payload));
        }
    }
    errors
}

fn validate_group(job: &Job, group: &TaskGroup) -> Vec<String> {
    let mut errors = Vec::new();
    if group.count < 0 {
        errors.push("Task group count can't be negative".into());
    }
    if group.tasks.is_empty() {
        errors.push("Missing tasks for task group".into());
    }
    let job_type = job.job_type.as_str();
    let batch_like = job_type == JOB_TYPE_BATCH || job_type == JOB_TYPE_SYSBATCH;
    if let Some(update) = &group.update {
        if batch_like {
            errors.push(format!("Job type {job_type:?} does not allow update block"));
        } else {
            errors.extend(validate_update(update));
        }
    }
    if let Some(migrate) = &group.migrate {
        if job_type != JOB_TYPE_SERVICE {
            errors.push(format!(
                "Job type {job_type:?} does not allow migrate block"
            ));
        } else {
            errors.extend(validate_migrate(migrate));
        }
    }
    if let Some(reschedule) = &group.reschedule_policy {
        if job.is_system() {
            errors.push("System or sysbatch jobs should not have a reschedule policy".into());
        } else {
            errors.extend(validate_reschedule(reschedule));
        }
    }
    if group.max_run_duration.is_some() && !batch_like {
        errors.push(format!(
            "Job type {job_type:?} does not allow max_run_duration"
        ));
    }
    if let Some(restart) = &group.restart_policy {
        errors.extend(validate_restart(restart));
    }
    for (number, constraint) in group.constraints.iter().flatten().enumerate() {
        nest(
            &mut errors,
            format!("Constraint {} validation failed: ", number + 1),
            validate_constraint(constraint),
        );
    }
    if job_type == JOB_TYPE_SYSTEM {
        if group.affinities.is_some() {
            errors.push("System jobs may not have an affinity block".into());
        }
        if group.spreads.is_some() {
            errors.push("System jobs may not have a spread block".into());
        }
    } else {
        for (number, affinity) in group.affinities.iter().flatten().enumerate() {
            nest(
                &mut errors,
                format!("Affinity {} validation failed: ", number + 1),
                validate_affinity(affinity),
            );
        }
        for (number, spread) in group.spreads.iter().flatten().enumerate() {
            nest(
                &mut errors,
                format!("Spread {} validation failed: ", number + 1),
                validate_spread(spread),
            );
        }
    }
    let disk = &group.ephemeral_disk;
    if disk.size_mb < 10 {
        errors.push(format!("minimum DiskMB value is 10; got {}", disk.size_mb));
    }
    let mut leaders = 0;
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, task) in group.tasks.iter().enumerate() {
        if task.name.is_empty() {
            errors.push(format!("Task {} missing name", index + 1));
        } else if let Some(first) = seen.get(task.name.as_str()) {
            errors.push(format!(
                "Task {} redefines '{}' from task {}",
                index + 1,
                task.name,
                first + 1
            ));
        } else {
            seen.insert(&task.name, index);
        }
        if task.leader {
            leaders += 1;
        }
        let logs = task.log_config.max_files * task.log_config.max_file_size_mb;
        if logs >= disk.size_mb && disk.size_mb >= 10 {
            errors.push(format!(
                "Task {} validation failed: {}",
                task.name,
                multierror(&[format!(
                    "log storage ({logs} MB) must be less than requested disk capacity ({} MB)",
                    disk.size_mb
                )])
            ));
        }
    }
    if leaders > 1 {
        errors.push("Only one task may be marked as leader".into());
    }
    if !group.tasks.is_empty() && !group.tasks.iter().any(Task::is_main) {
        errors.push(format!(
            "Task group {} must have at least one main task",
            group.name
        ));
    }
    errors.extend(validate_group_volumes(job_type, group));
    errors.extend(validate_group_ports(group));
    for task in &group.tasks {
        nest(
            &mut errors,
            format!("Task {} validation failed: ", task.name),
            validate_task(job, group, task),
        );
    }
    errors
}

fn validate_task(job: &Job, group: &TaskGroup, task: &Task) -> Vec<String> {
    let mut errors = Vec::new();
    if task.name.is_empty() {
        errors.push("Missing task name".into());
    } else if task.name == "alloc" {
        errors.push("Task cannot be named \"alloc\"".into());
    } else if task.name.contains('/') || task.name.contains('\\') {
        errors.push("Task name cannot include slashes".into());
    } else if task.name.contains('\0') {
        errors.push("Task name cannot include null characters".into());
    }
    if task.driver.is_empty() {
        errors.push("Missing task driver".into());
    }
    if task.kill_timeout < 0 {
        errors.push("KillTimeout must be a positive value".into());
    } else if let Some(update) = &group.update {
        if update.progress_deadline > 0 && task.kill_timeout > update.progress_deadline {
            errors.push(format!(
                "KillTimout ({}) longer than the group's ProgressDeadline ({})",
                go(task.kill_timeout),
                go(update.progress_deadline)
            ));
        }
    }
    let resources = &task.resources;
    if resources.cpu > 0 && resources.cores > 0 {
        errors.push("Task can only ask for 'cpu' or 'cores' resource, not both.".into());
    } else if resources.cores == 0 && resources.cpu < 1 {
        errors.push(format!("minimum CPU value is 1; got {}", resources.cpu));
    }
    if resources.memory_mb < 10 {
        errors.push(format!(
            "minimum MemoryMB value is 10; got {}",
            resources.memory_mb
        ));
    }
    if resources.memory_max_mb != 0
        && resources.memory_max_mb != -1
        && resources.memory_max_mb < resources.memory_mb
    {
        errors.push(format!(
            "MemoryMaxMB value ({}) should be larger than MemoryMB value ({})",
            resources.memory_max_mb, resources.memory_mb
        ));
    }
    if resources.disk_mb > 0 {
        errors.push(
            "Task can't ask for disk resources, they have to be specified at the task group level."
                .into(),
        );
    }
    if let Some(hook) = &task.lifecycle {
        if !["prestart", "poststart", "poststop"].contains(&hook.hook.as_str()) {
            errors.push(format!("invalid hook: {}", hook.hook));
        }
    }
    if let Some(restart) = &task.restart_policy {
        errors.extend(validate_restart(restart));
    }
    for (number, constraint) in task.constraints.iter().flatten().enumerate() {
        let mut inner = validate_constraint(constraint);
        if matches!(
            constraint.operand.as_str(),
            "distinct_hosts" | "distinct_property"
        ) {
            inner.push(format!(
                "{} constraint not allowed at the task level",
                constraint.operand
            ));
        }
        nest(
            &mut errors,
            format!("Constraint {} validation failed: ", number + 1),
            inner,
        );
    }
    if job.job_type == JOB_TYPE_SYSTEM {
        if task.affinities.is_some() {
            errors.push("System jobs may not have an affinity block".into());
        }
    } else {
        for (number, affinity) in task.affinities.iter().flatten().enumerate() {
            nest(
                &mut errors,
                format!("Affinity {} validation failed: ", number + 1),
                validate_affinity(affinity),
            );
        }
    }
    errors.extend(validate_volume_mounts(group, task));
    errors
}
