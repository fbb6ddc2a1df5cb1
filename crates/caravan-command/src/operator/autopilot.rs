//! `operator autopilot get-config`, `set-config` and `health`.

use caravan_api_types::duration::{format_go_duration_nanos, parse_go_duration_nanos};
use caravan_api_types::operator::OperatorHealthReply;
use caravan_sdk::{QueryOptions, WriteOptions};

use super::{given_bool, parsed_flag};
use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::server::client;
use crate::ui;

const GET_USAGE: &str = "Usage: caravan operator autopilot get-config [options]

  Displays the current Autopilot configuration.

  If ACLs are enabled, this command requires a token with the 'operator:read'
  capability.

Get Config Options:

  -json
    Output the Autopilot configuration in JSON format.

  -t
    Format and display the Autopilot configuration using a Go template.
";

pub fn autopilot_get(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("operator autopilot get-config", GET_USAGE)
        .bool("json")
        .value("t");
    let parsed = flags.parse_with(args, 0, 0, "This command takes no arguments")?;
    let client = client(&parsed)?;
    let (config, _) = crate::block_on(
        client
            .operator()
            .autopilot_configuration(&QueryOptions::default()),
    )
    .map_err(|error| CommandError::call("querying Autopilot configuration", error))?;
    if crate::output::json_or_template(&parsed, &config)? {
        return Ok(());
    }
    // Nomad prints these unaligned, one `Name = value` a line.
    crate::outln!("CleanupDeadServers = {}", config.cleanup_dead_servers);
    crate::outln!(
        "LastContactThreshold = {}",
        format_go_duration_nanos(config.last_contact_threshold)
    );
    crate::outln!("MaxTrailingLogs = {}", config.max_trailing_logs);
    crate::outln!("MinQuorum = {}", config.min_quorum);
    crate::outln!(
        "ServerStabilizationTime = {}",
        format_go_duration_nanos(config.server_stabilization_time)
    );
    crate::outln!("EnableRedundancyZones = {}", config.enable_redundancy_zones);
    crate::outln!(
        "DisableUpgradeMigration = {}",
        config.disable_upgrade_migration
    );
    crate::outln!("EnableCustomUpgrades = {}", config.enable_custom_upgrades);
    Ok(())
}

const SET_USAGE: &str = "Usage: caravan operator autopilot set-config [options]

  Modifies the current Autopilot configuration. Only the flags given change;
  the rest of the configuration is kept.

  If ACLs are enabled, this command requires a token with the
  'operator:write' capability.

Set Config Options:

  -cleanup-dead-servers=[true|false]
    Whether dead servers are removed when new ones are added.

  -last-contact-threshold=<duration>
    How long a server may go without contact from the leader before it is
    unhealthy, such as \"200ms\".

  -max-trailing-logs=<count>
    How many log entries a server may trail the leader by before it is
    unhealthy.

  -min-quorum=<count>
    The minimum number of servers before autopilot prunes dead servers.

  -server-stabilization-time=<duration>
    How long a new server must be healthy before it becomes a voter, such
    as \"10s\".

  -enable-redundancy-zones, -disable-upgrade-migration,
  -enable-custom-upgrades=[true|false]
    Kept for Nomad compatibility (Enterprise features in Nomad).
";

pub fn autopilot_set(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("operator autopilot set-config", SET_USAGE)
        .bool("cleanup-dead-servers")
        .bool("enable-redundancy-zones")
        .bool("disable-upgrade-migration")
        .bool("enable-custom-upgrades")
        .value("max-trailing-logs")
        .value("min-quorum")
        .value("last-contact-threshold")
        .value("server-stabilization-time");
    let parsed = flags.parse_with(args, 0, 0, "This command takes no arguments")?;
    let duration = |name: &str| {
        parsed
            .get(name)
            .map(|text| {
                parse_go_duration_nanos(text).map_err(|error| {
                    CommandError::failed(format!(
                        "Failed to parse args: invalid value {text:?} for flag -{name}: {error}"
                    ))
                })
            })
            .transpose()
    };
    let max_trailing_logs: Option<u64> = parsed_flag(&parsed, "max-trailing-logs")?;
    let min_quorum: Option<u64> = parsed_flag(&parsed, "min-quorum")?;
    let last_contact_threshold = duration("last-contact-threshold")?;
    let server_stabilization_time = duration("server-stabilization-time")?;
    let client = client(&parsed)?;
    let operator = client.operator();
    let applied = crate::block_on(async {
        let (mut config, _) = operator
            .autopilot_configuration(&QueryOptions::default())
            .await
            .map_err(|error| CommandError::call("querying for Autopilot configuration", error))?;
        let merge = |slot: &mut bool, name: &str| {
            if let Some(value) = given_bool(&parsed, name) {
                *slot = value;
            }
        };
        merge(&mut config.cleanup_dead_servers, "cleanup-dead-servers");
        merge(
            &mut config.enable_redundancy_zones,
            "enable-redundancy-zones",
        );
        merge(
            &mut config.disable_upgrade_migration,
            "disable-upgrade-migration",
        );
        merge(&mut config.enable_custom_upgrades, "enable-custom-upgrades");
        config.max_trailing_logs = max_trailing_logs.unwrap_or(config.max_trailing_logs);
        config.min_quorum = min_quorum.unwrap_or(config.min_quorum);
        config.last_contact_threshold =
            last_contact_threshold.unwrap_or(config.last_contact_threshold);
        config.server_stabilization_time =
            server_stabilization_time.unwrap_or(config.server_stabilization_time);
        operator
            .cas_autopilot_configuration(&config, &WriteOptions::default())
            .await
            .map_err(|error| CommandError::call("setting Autopilot configuration", error))
    })?;
    if !applied {
        crate::outln!("Configuration could not be atomically updated, please try again");
        return Err(CommandError::Exit(1));
    }
    crate::outln!("Configuration updated!");
    Ok(())
}

const HEALTH_USAGE: &str = "Usage: caravan operator autopilot health [options]

  Displays the current Autopilot state: each server's health.

  If ACLs are enabled, this command requires a token with the 'operator:read'
  capability.

Output Options:

  -json
    Output the autopilot health in JSON format.
";

pub fn autopilot_health(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("operator autopilot health", HEALTH_USAGE).bool("json");
    let parsed = flags.parse_with(args, 0, 0, "This command takes no arguments")?;
    let client = client(&parsed)?;
    let (health, _) = crate::block_on(client.operator().autopilot_health(&QueryOptions::default()))
        .map_err(|error| CommandError::call("querying Autopilot configuration", error))?;
    if parsed.bool("json") {
        // Nomad prints this one compact, not indented.
        let text = serde_json::to_string(&health).map_err(|error| {
            CommandError::failed(format!("failed to serialize client state: {error}"))
        })?;
        crate::outln!("{text}");
        return Ok(());
    }
    crate::outln!("{}", format_health(&health));
    Ok(())
}

fn format_health(health: &OperatorHealthReply) -> String {
    let voters: Vec<Vec<String>> = health
        .voters
        .iter()
        .map(|voter| vec![format!("\t{voter}")])
        .collect();
    let rows = health
        .servers
        .iter()
        .map(|server| {
            vec![
                server.id.clone(),
                server.name.clone(),
                server.address.clone(),
                server.serf_status.clone(),
                server.version.clone(),
                server.leader.to_string(),
                server.voter.to_string(),
                server.healthy.to_string(),
                server.last_contact.clone(),
                server.last_term.to_string(),
                server.last_index.to_string(),
                server.stable_since.clone(),
            ]
        })
        .collect();
    let servers = ui::table(
        &[
            "ID",
            "Name",
            "Address",
            "SerfStatus",
            "Version",
            "Leader",
            "Voter",
            "Healthy",
            "LastContact",
            "LastTerm",
            "LastIndex",
            "StableSince",
        ],
        rows,
    );
    format!(
        "Healthy: {}\nFailureTolerance: {}\nLeader: {}\nVoters:  \n\t{}\nServers: \n{servers}\n",
        health.healthy,
        health.failure_tolerance,
        health.leader,
        ui::columns(&voters)
    )
}
