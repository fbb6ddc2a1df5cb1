//! `operator scheduler get-config` and `set-config`.

use caravan_api_types::operator::{SCHEDULER_ALGORITHM_BINPACK, SCHEDULER_ALGORITHM_SPREAD};
use caravan_sdk::{QueryOptions, WriteOptions};

use super::{given_bool, parsed_flag};
use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::server::client;
use crate::ui;

const GET_USAGE: &str = "Usage: caravan operator scheduler get-config [options]

  Displays the current scheduler configuration.

  If ACLs are enabled, this command requires a token with the 'operator:read'
  capability.

Scheduler Get Config Options:

  -json
    Output the scheduler config in its JSON format.

  -t
    Format and display the scheduler config using a Go template.
";

pub fn scheduler_get(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("operator scheduler get-config", GET_USAGE)
        .bool("json")
        .value("t");
    let parsed = flags.parse_with(args, 0, 0, "This command takes no arguments")?;
    let client = client(&parsed)?;
    let (response, _) = crate::block_on(
        client
            .operator()
            .scheduler_configuration(&QueryOptions::default()),
    )
    .map_err(|error| CommandError::call("querying scheduler configuration", error))?;
    if crate::output::json_or_template(&parsed, &response)? {
        return Ok(());
    }
    let config = &response.scheduler_config;
    let preemption = &config.preemption_config;
    crate::outln!(
        "{}",
        ui::kv(&[
            ("Scheduler Algorithm", config.scheduler_algorithm.clone()),
            (
                "Memory Oversubscription",
                config.memory_oversubscription_enabled.to_string()
            ),
            (
                "Reject Job Registration",
                config.reject_job_registration.to_string()
            ),
            ("Pause Eval Broker", config.pause_eval_broker.to_string()),
            (
                "Preemption System Scheduler",
                preemption.system_scheduler_enabled.to_string()
            ),
            (
                "Preemption Service Scheduler",
                preemption.service_scheduler_enabled.to_string()
            ),
            (
                "Preemption Batch Scheduler",
                preemption.batch_scheduler_enabled.to_string()
            ),
            (
                "Preemption SysBatch Scheduler",
                preemption.sys_batch_scheduler_enabled.to_string()
            ),
            (
                "Node Limit For Feasibility Checks",
                config.node_limit_for_feasibility_checks.to_string()
            ),
            ("Modify Index", config.modify_index.to_string()),
        ])
    );
    Ok(())
}

const SET_USAGE: &str = "Usage: caravan operator scheduler set-config [options]

  Modifies the current scheduler configuration. Only the flags given change.

  If ACLs are enabled, this command requires a token with the
  'operator:write' capability.

Scheduler Set Config Options:

  -check-index=<index>
    Only update the configuration if its modify index is this one.

  -scheduler-algorithm=[binpack|spread]
    Whether the scheduler binpacks or spreads allocations on nodes.

  -memory-oversubscription=[true|false]
    Whether tasks may use more memory than reserved (memory_max).

  -reject-job-registration=[true|false]
    Whether job registration is refused to all but management tokens.

  -pause-eval-broker=[true|false]
    Whether the eval broker is paused (no new scheduling work).

  -preempt-batch-scheduler, -preempt-service-scheduler,
  -preempt-sysbatch-scheduler, -preempt-system-scheduler=[true|false]
    Whether jobs of that type may preempt lower-priority allocations.

  -node-limit-for-feasibility-checks=<count>
    How many feasible nodes to consider for spread and affinity.
";

const SET_BOOLS: &[&str] = &[
    "memory-oversubscription",
    "reject-job-registration",
    "pause-eval-broker",
    "preempt-batch-scheduler",
    "preempt-service-scheduler",
    "preempt-sysbatch-scheduler",
    "preempt-system-scheduler",
];

pub fn scheduler_set(args: &[String]) -> CommandResult {
    let flags = SET_BOOLS
        .iter()
        .fold(
            FlagSet::new("operator scheduler set-config", SET_USAGE),
            |flags, name| flags.bool(name),
        )
        .value("check-index")
        .value("scheduler-algorithm")
        .value("node-limit-for-feasibility-checks");
    let parsed = flags.parse_with(args, 0, 0, "This command takes no arguments")?;
    let check_index = match parsed.get("check-index").filter(|text| !text.is_empty()) {
        Some(text) => text.parse::<u64>().map_err(|error| {
            CommandError::failed(format!("Error parsing check-index value {text:?}: {error}"))
        })?,
        None => 0,
    };
    let algorithm = parsed.get("scheduler-algorithm").filter(|a| !a.is_empty());
    if let Some(algorithm) = algorithm {
        if ![SCHEDULER_ALGORITHM_BINPACK, SCHEDULER_ALGORITHM_SPREAD].contains(&algorithm) {
            return Err(flags.usage_error(format!(
                "Invalid -scheduler-algorithm {algorithm:?}: must be \"binpack\" or \"spread\""
            )));
        }
    }
    let node_limit: Option<u64> = parsed_flag(&parsed, "node-limit-for-feasibility-checks")?;
    let client = client(&parsed)?;
    let operator = client.operator();
    let updated = crate::block_on(async {
        let (response, _) = operator
            .scheduler_configuration(&QueryOptions::default())
            .await
            .map_err(|error| CommandError::call("querying for scheduler configuration", error))?;
        let mut config = response.scheduler_config;
        if check_index > 0 && config.modify_index != check_index {
            return Err(CommandError::failed(format!(
                "Error performing check index set: check-index {check_index} does not match \
                 current state value {}",
                config.modify_index
            )));
        }
        if let Some(algorithm) = algorithm {
            config.scheduler_algorithm = algorithm.to_string();
        }
        let preemption = &mut config.preemption_config;
        for (slot, name) in [
            (&mut config.memory_oversubscription_enabled, SET_BOOLS[0]),
            (&mut config.reject_job_registration, SET_BOOLS[1]),
            (&mut config.pause_eval_broker, SET_BOOLS[2]),
            (&mut preemption.batch_scheduler_enabled, SET_BOOLS[3]),
            (&mut preemption.service_scheduler_enabled, SET_BOOLS[4]),
            (&mut preemption.sys_batch_scheduler_enabled, SET_BOOLS[5]),
            (&mut preemption.system_scheduler_enabled, SET_BOOLS[6]),
        ] {
            if let Some(value) = given_bool(&parsed, name) {
                *slot = value;
            }
        }
        if let Some(limit) = node_limit {
            config.node_limit_for_feasibility_checks = limit;
        }
        operator
            .cas_scheduler_configuration(&config, &WriteOptions::default())
            .await
            .map_err(|error| CommandError::call("setting scheduler configuration", error))
    })?;
    if !updated.updated {
        crate::outln!("Scheduler configuration could not be atomically updated, please try again");
        return Err(CommandError::Exit(1));
    }
    crate::outln!("Scheduler configuration updated!");
    Ok(())
}
