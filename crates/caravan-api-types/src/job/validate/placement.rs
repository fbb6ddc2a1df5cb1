//! Constraints, affinities, spreads and ports: what decides where a group
//! may go.

use std::collections::BTreeMap;

use crate::job::group::TaskGroup;
use crate::job::task::{Affinity, Constraint, NetworkResource, Spread};

/// Port labels are unique and static ports do not collide, across the
/// group's networks and its tasks' networks.
pub(super) fn validate_group_ports(group: &TaskGroup) -> Vec<String> {
    let mut errors = Vec::new();
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    let mut statics: BTreeMap<i32, String> = BTreeMap::new();
    let mut check = |network: &NetworkResource, owner: &str, errors: &mut Vec<String>| {
        for port in network.ports() {
            if let Some(first) = labels.get(&port.label) {
                errors.push(format!(
                    "Port label {} already in use by {first}",
                    port.label
                ));
            } else {
                labels.insert(port.label.clone(), owner.to_string());
            }
            if !(0..=65535).contains(&port.value) {
                errors.push(format!(
                    "Port {} ({}) out of range 0-65535",
                    port.label, port.value
                ));
            }
            if port.value > 0 {
                if let Some(first) = statics.get(&port.value) {
                    errors.push(format!(
                        "Static port {} already reserved by {first}",
                        port.value
                    ));
                } else {
                    statics.insert(port.value, format!("{owner}:{}", port.label));
                }
            }
        }
    };
    for network in group.networks.iter().flatten() {
        check(network, "taskgroup network", &mut errors);
    }
    for task in &group.tasks {
        for network in task.resources.networks.iter().flatten() {
            check(network, &task.name, &mut errors);
        }
    }
    errors
}

/// Operands and whether they need an `RTarget`.
fn operand_needs_rtarget(operand: &str) -> Option<bool> {
    match operand {
        "=" | "==" | "is" | "!=" | "not" | "<" | "<=" | ">" | ">=" | "regexp" | "version"
        | "semver" | "set_contains" | "set_contains_all" | "set_contains_any" => Some(true),
        "distinct_hosts" | "distinct_property" | "is_set" | "is_not_set" => Some(false),
        _ => None,
    }
}

pub fn validate_constraint(constraint: &Constraint) -> Vec<String> {
    let mut errors = Vec::new();
    let operand = constraint.operand.as_str();
    if operand.is_empty() {
        errors.push("Missing constraint operand".into());
        return errors;
    }
    match operand_needs_rtarget(operand) {
        None => errors.push(format!("Unknown constraint type {operand:?}")),
        Some(needs) => {
            if needs && constraint.r_target.is_empty() {
                errors.push(format!("Operator {operand:?} requires an RTarget"));
            }
            let needs_ltarget = !matches!(operand, "distinct_hosts");
            if needs_ltarget && constraint.l_target.is_empty() {
                errors.push("No LTarget provided but is required by constraint".into());
            }
        }
    }
    if operand == "distinct_property" && !constraint.r_target.is_empty() {
        match constraint.r_target.parse::<u64>() {
            Ok(0) | Err(_) => errors.push(format!(
                "Failed to convert RTarget {:?} to a positive integer",
                constraint.r_target
            )),
            Ok(_) => {}
        }
    }
    errors
}

pub(super) fn validate_affinity(affinity: &Affinity) -> Vec<String> {
    let mut errors = Vec::new();
    let operand = affinity.operand.as_str();
    match operand {
        "=" | "==" | "is" | "!=" | "not" | "<" | "<=" | ">" | ">=" | "regexp" | "version"
        | "semver" | "set_contains_all" | "set_contains" | "set_contains_any" => {
            if affinity.r_target.is_empty() {
                errors.push(format!("Operator {operand:?} requires an RTarget"));
            }
        }
        "" => errors.push("Missing affinity operand".into()),
        other => errors.push(format!("Unknown affinity operator {other:?}")),
    }
    if affinity.l_target.is_empty() {
        errors.push("No LTarget provided but is required".into());
    }
    if affinity.weight == 0 {
        errors.push("Affinity weight cannot be zero".into());
    } else if !(-100..=100).contains(&affinity.weight) {
        errors.push(format!(
            "Affinity weight must be within the range [-100,100]; got {}",
            affinity.weight
        ));
    }
    errors
}

pub(super) fn validate_spread(spread: &Spread) -> Vec<String> {
    let mut errors = Vec::new();
    if spread.attribute.is_empty() {
        errors.push("Missing spread attribute".into());
    }
    if spread.weight <= 0 || spread.weight > 100 {
        errors.push("Spread block must have a positive weight from 0 to 100".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut total: u32 = 0;
    for target in spread.spread_target.iter().flatten() {
        if !seen.insert(target.value.as_str()) {
            errors.push(format!(
                "Spread target value {:?} already defined",
                target.value
            ));
        }
        if target.percent > 100 {
            errors.push(format!(
                "Spread target percentage for value {:?} must be between 0 and 100",
                target.value
            ));
        }
        total += u32::from(target.percent);
    }
    if total > 100 {
        errors.push(format!(
            "Sum of spread target percentages must not be greater than 100%; got {total}%"
        ));
    }
    errors
}
