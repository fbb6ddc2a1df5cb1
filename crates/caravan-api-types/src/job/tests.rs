use serde_json::json;

use super::api::ApiJob;
use super::canonicalize::{apply_server_defaults, canonicalize, ServerDefaults};
use super::validate::{multierror, validate};
use super::*;

fn submitted(value: serde_json::Value) -> Job {
    let api: ApiJob = serde_json::from_value(value).unwrap();
    let mut job = canonicalize(api);
    apply_server_defaults(&mut job, &ServerDefaults::default());
    job
}

/// jobs-api.md §2.10: what a minimal service job becomes.
#[test]
fn a_minimal_service_job_gets_nomads_defaults() {
    let job = submitted(json!({"ID": "web", "TaskGroups": [{"Name": "web",
        "Networks": [{"DynamicPorts": [{"Label": "http", "To": 8080}]}],
        "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "nginx:1"}}]}]}));
    let expected: serde_json::Value = serde_json::from_str(
        r#"{"Stop": false, "Region": "global", "Namespace": "default", "ID": "web", "ParentID": "",
     "Name": "web", "Type": "service", "Priority": 50, "AllAtOnce": false,
     "Datacenters": ["*"], "NodePool": "default",
     "Constraints": null, "Affinities": null, "Spreads": null,
     "TaskGroups": [{
       "Name": "web", "Count": 1,
       "Update": {"Stagger": 30000000000, "MaxParallel": 1, "HealthCheck": "checks",
                  "MinHealthyTime": 10000000000, "HealthyDeadline": 300000000000,
                  "ProgressDeadline": 600000000000, "AutoRevert": false, "AutoPromote": false,
                  "Canary": 0},
       "Migrate": {"MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": 10000000000,
                   "HealthyDeadline": 300000000000},
       "Constraints": null, "Scaling": null,
       "RestartPolicy": {"Attempts": 2, "Interval": 1800000000000, "Delay": 15000000000,
                         "Mode": "fail", "RenderTemplates": false},
       "Disconnect": null,
       "Tasks": [{
         "Name": "app", "Driver": "docker", "User": "", "Config": {"image": "nginx:1"},
         "Env": null, "Services": null, "Vault": null, "Secrets": null, "Consul": null,
         "Templates": null, "Constraints": null, "Affinities": null,
         "Resources": {"CPU": 100, "Cores": 0, "MemoryMB": 300, "MemoryMaxMB": 0, "DiskMB": 0,
                       "IOPS": 0, "Networks": null, "Devices": null, "NUMA": null, "SecretsMB": 0},
         "RestartPolicy": {"Attempts": 2, "Interval": 1800000000000, "Delay": 15000000000,
                           "Mode": "fail", "RenderTemplates": false},
         "DispatchPayload": null, "Lifecycle": null, "Meta": null, "KillTimeout": 5000000000,
         "LogConfig": {"MaxFiles": 10, "MaxFileSizeMB": 10, "Disabled": false},
         "Artifacts": null, "Leader": false, "ShutdownDelay": 0, "VolumeMounts": null,
         "ScalingPolicies": null, "KillSignal": "", "Kind": "", "CSIPluginConfig": null,
         "Identity": {"Name": "default", "Audience": ["nomadproject.io"], "ChangeMode": "",
                      "ChangeSignal": "", "Env": false, "File": false, "Filepath": "",
                      "ServiceName": "", "TTL": 0, "ExtraClaims": null},
         "Identities": null, "Actions": null, "Schedule": null}],
       "EphemeralDisk": {"Sticky": false, "SizeMB": 300, "Migrate": false},
       "Meta": null,
       "ReschedulePolicy": {"Attempts": 0, "Interval": 0, "Delay": 30000000000,
                            "DelayFunction": "exponential", "MaxDelay": 3600000000000,
                            "Unlimited": true},
       "Affinities": null, "Spreads": null,
       "Networks": [{"DynamicPorts": [{"Label": "http", "To": 8080, "HostNetwork": "default"}]}],
       "Consul": null, "Services": null, "Volumes": null, "ShutdownDelay": null,
       "MaxRunDuration": null, "StopAfterClientDisconnect": null, "MaxClientDisconnect": null,
       "PreventRescheduleOnLost": false}],
     "Update": {"Stagger": 30000000000, "MaxParallel": 1, "HealthCheck": "", "MinHealthyTime": 0,
                "HealthyDeadline": 0, "ProgressDeadline": 0, "AutoRevert": false,
                "AutoPromote": false, "Canary": 0},
     "Multiregion": null, "Periodic": null, "ParameterizedJob": null, "Dispatched": false,
     "DispatchIdempotencyToken": "", "Payload": null, "Meta": null, "ConsulNamespace": "",
     "VaultNamespace": "", "NomadTokenID": "", "Status": "", "StatusDescription": "",
     "Stable": false, "Version": 0, "SubmitTime": 0,
     "CreateIndex": 0, "ModifyIndex": 0, "JobModifyIndex": 0, "UI": null, "VersionTag": null}"#,
    )
    .unwrap();
    let actual = serde_json::to_value(&job).unwrap();
    assert_eq!(actual, expected);
    // Wire order is Nomad's struct order.
    let text = serde_json::to_string(&job).unwrap();
    assert!(text.starts_with(r#"{"Stop":false,"Region":"global","Namespace":"default","ID":"web""#));
    assert!(validate(&job).is_empty(), "{:?}", validate(&job));
}

#[test]
fn a_batch_job_gets_the_batch_policies_and_no_update() {
    let job = submitted(
        json!({"ID": "b", "Type": "batch", "TaskGroups": [{"Name": "g",
        "Tasks": [{"Name": "t", "Driver": "raw_exec"}]}]}),
    );
    let group = &job.task_groups[0];
    assert_eq!(group.update, None);
    assert_eq!(group.migrate, None);
    assert_eq!(group.restart_policy, Some(RestartPolicy::default_batch()));
    assert_eq!(
        group.reschedule_policy,
        Some(ReschedulePolicy::default_batch())
    );
    assert_eq!(job.update, UpdateStrategy::default());
    assert!(validate(&job).is_empty());
}

#[test]
fn an_explicit_zero_count_is_kept_and_a_missing_one_is_one() {
    let job = submitted(json!({"ID": "z", "TaskGroups": [
        {"Name": "a", "Count": 0, "Tasks": [{"Name": "t", "Driver": "raw_exec"}]},
        {"Name": "b", "Tasks": [{"Name": "t", "Driver": "raw_exec"}]}]}));
    assert_eq!(job.task_groups[0].count, 0);
    assert_eq!(job.task_groups[1].count, 1);
}

#[test]
fn a_task_restart_policy_merges_over_the_groups() {
    let job = submitted(json!({"ID": "r", "TaskGroups": [{"Name": "g",
        "RestartPolicy": {"Attempts": 5, "Interval": 600000000000i64},
        "Tasks": [{"Name": "t", "Driver": "raw_exec", "RestartPolicy": {"Mode": "delay"}}]}]}));
    let task = &job.task_groups[0].tasks[0];
    let restart = task.restart_policy.as_ref().unwrap();
    assert_eq!(
        (
            restart.attempts,
            restart.interval,
            restart.delay,
            restart.mode.as_str()
        ),
        (5, 600_000_000_000, 15_000_000_000, "delay")
    );
}

#[test]
fn job_update_fields_flow_into_groups_under_their_own() {
    let job = submitted(json!({"ID": "u", "Update": {"MaxParallel": 3, "Canary": 1},
        "TaskGroups": [{"Name": "g", "Update": {"Canary": 2},
        "Tasks": [{"Name": "t", "Driver": "raw_exec"}]}]}));
    let update = job.task_groups[0].update.as_ref().unwrap();
    assert_eq!((update.max_parallel, update.canary), (3, 2));
    assert_eq!(update.healthy_deadline, 300_000_000_000);
    assert_eq!((job.update.max_parallel, job.update.canary), (3, 0));
}

#[test]
fn cores_without_cpu_leaves_cpu_zero() {
    let job = submitted(json!({"ID": "c", "TaskGroups": [{"Name": "g",
        "Tasks": [{"Name": "t", "Driver": "raw_exec", "Resources": {"Cores": 2}}]}]}));
    let resources = &job.task_groups[0].tasks[0].resources;
    assert_eq!(
        (resources.cpu, resources.cores, resources.memory_mb),
        (0, 2, 300)
    );
    assert!(validate(&job).is_empty());
}

/// jobs-api.md §4.1: the exact text for a task without a driver.
#[test]
fn a_missing_driver_is_reported_nested_as_nomad_does() {
    let job = submitted(json!({"ID": "cache", "TaskGroups": [{"Name": "cache",
        "Tasks": [{"Name": "redis"}]}]}));
    let errors = validate(&job);
    assert_eq!(
        multierror(&errors),
        "1 error occurred:\n\t* Task group cache validation failed: 1 error occurred:\n\t* Task redis validation failed: 1 error occurred:\n\t* Missing task driver\n\n\n\n\n\n"
    );
}

#[test]
fn every_problem_is_listed() {
    let job = submitted(json!({"ID": "bad id", "Type": "batch", "Priority": 101,
        "TaskGroups": [
            {"Name": "g", "Count": -1, "Update": {"MaxParallel": 1},
             "Tasks": [{"Name": "alloc", "Driver": "raw_exec",
                        "Resources": {"CPU": 0, "MemoryMB": 5}}]},
            {"Name": "g", "Tasks": [{"Name": "t", "Driver": "x",
              "Constraints": [{"LTarget": "${attr.kernel.name}", "Operand": "=",
                               "RTarget": ""}, {"Operand": "wat"}]}]}]}));
    let text = multierror(&validate(&job));
    for expected in [
        "Job ID contains a space",
        "job priority must be between [1, 100]",
        "Job task group 2 redefines 'g' from group 1",
        "Task group count can't be negative",
        "Job type \"batch\" does not allow update block",
        "Task cannot be named \"alloc\"",
        "minimum CPU value is 1; got 0",
        "minimum MemoryMB value is 10; got 5",
        "Constraint 1 validation failed: 1 error occurred:\n\t* Operator \"=\" requires an RTarget",
        "Unknown constraint type \"wat\"",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from {text}");
    }
}

#[test]
fn colliding_static_ports_and_labels_are_refused() {
    let job = submitted(json!({"ID": "p", "TaskGroups": [{"Name": "g",
        "Networks": [{"ReservedPorts": [{"Label": "http", "Value": 80}],
                      "DynamicPorts": [{"Label": "http"}]}],
        "Tasks": [{"Name": "t", "Driver": "raw_exec", "Resources": {"Networks": [
            {"ReservedPorts": [{"Label": "admin", "Value": 80}]}]}}]}]}));
    let text = multierror(&validate(&job));
    assert!(
        text.contains("Port label http already in use by taskgroup network"),
        "{text}"
    );
    assert!(
        text.contains("Static port 80 already reserved by taskgroup network:http"),
        "{text}"
    );
}

#[test]
fn a_system_job_may_not_count_above_one_or_reschedule() {
    let job = submitted(
        json!({"ID": "s", "Type": "system", "TaskGroups": [{"Name": "g",
        "Count": 2, "ReschedulePolicy": {"Attempts": 1},
        "Tasks": [{"Name": "t", "Driver": "raw_exec"}]}]}),
    );
    let text = multierror(&validate(&job));
    assert!(
        text.contains("Job task group g has count 2. Count cannot exceed 1 with system scheduler")
    );
    assert!(text.contains("System or sysbatch jobs should not have a reschedule policy"));
}

#[test]
fn spec_changed_ignores_what_the_server_stamps() {
    let job = submitted(json!({"ID": "x", "TaskGroups": [{"Name": "g",
        "Tasks": [{"Name": "t", "Driver": "raw_exec"}]}]}));
    let mut stored = job.clone();
    stored.version = 3;
    stored.modify_index = 40;
    stored.status = JOB_STATUS_RUNNING.into();
    assert!(!job.spec_changed(&stored));
    stored.task_groups[0].count = 2;
    assert!(job.spec_changed(&stored));
}

#[test]
fn the_region_global_becomes_the_agents() {
    let api: ApiJob = serde_json::from_value(json!({"ID": "x", "Region": "global"})).unwrap();
    let mut job = canonicalize(api);
    apply_server_defaults(
        &mut job,
        &ServerDefaults {
            region: "eu".into(),
            default_priority: 50,
        },
    );
    assert_eq!(job.region, "eu");
}
