//! Constraint targets (`${attr.x}`, `${node.unique.id}`, ...) and operators,
//! as Nomad's `resolveTarget` and `checkConstraint`.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;

use caravan_api_types::node::Node;
use regex::Regex;

use super::version::{satisfies, Flavor};

pub const OP_DISTINCT_HOSTS: &str = "distinct_hosts";
pub const OP_DISTINCT_PROPERTY: &str = "distinct_property";

/// The value a target names on `node`; `None` when it is not found. A value
/// that does not start with `${` is a literal.
pub fn resolve_target<'a>(target: &'a str, node: &'a Node) -> Option<Cow<'a, str>> {
    let Some(inner) = target.strip_prefix("${").and_then(|t| t.strip_suffix('}')) else {
        return Some(Cow::Borrowed(target));
    };
    let borrowed = |value: &'a str| Some(Cow::Borrowed(value));
    match inner {
        "node.unique.id" => borrowed(&node.id),
        "node.unique.name" => borrowed(&node.name),
        "node.datacenter" => borrowed(&node.datacenter),
        "node.class" => borrowed(&node.node_class),
        "node.pool" => borrowed(&node.node_pool),
        _ => {
            if let Some(key) = inner.strip_prefix("attr.") {
                node.attributes.get(key).map(|v| Cow::Borrowed(v.as_str()))
            } else if let Some(key) = inner.strip_prefix("meta.") {
                node.meta.get(key).map(|v| Cow::Borrowed(v.as_str()))
            } else {
                None
            }
        }
    }
}

/// Whether a target reads something unique to a node, which a computed
/// class cannot stand for (the job "escapes" class caching).
pub fn is_unique_target(target: &str) -> bool {
    target.starts_with("${")
        && (target.contains("node.unique.")
            || target.contains("attr.unique.")
            || target.contains("meta.unique.")
            || target.starts_with("${unique."))
}

/// Regexps compiled once per evaluation (Nomad caches them per eval too).
#[derive(Debug, Default)]
pub struct RegexCache(HashMap<String, Option<Regex>>);

impl RegexCache {
    fn get(&mut self, pattern: &str) -> Option<&Regex> {
        self.0
            .entry(pattern.to_string())
            .or_insert_with(|| Regex::new(pattern).ok())
            .as_ref()
    }
}

fn compare_ordered(left: &str, right: &str) -> Ordering {
    if let (Ok(l), Ok(r)) = (left.parse::<i64>(), right.parse::<i64>()) {
        return l.cmp(&r);
    }
    if let (Ok(l), Ok(r)) = (left.parse::<f64>(), right.parse::<f64>()) {
        return l.partial_cmp(&r).unwrap_or(Ordering::Equal);
    }
    left.cmp(right)
}

fn set(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim)
}

/// Nomad's `checkConstraint`: does the pair of resolved targets satisfy the
/// operand? `distinct_*` operands always pass here; their own iterators
/// judge them. An unknown operand is never satisfied.
pub fn check_operand(
    operand: &str,
    left: Option<&str>,
    right: Option<&str>,
    regexes: &mut RegexCache,
) -> bool {
    let both = left.zip(right);
    match operand {
        OP_DISTINCT_HOSTS | OP_DISTINCT_PROPERTY => true,
        "=" | "==" | "is" => both.is_some_and(|(l, r)| l == r),
        // A missing target counts as "": `${attr.missing} != "x"` holds.
        "!=" | "not" => left.unwrap_or("") != right.unwrap_or(""),
        "<" => both.is_some_and(|(l, r)| compare_ordered(l, r) == Ordering::Less),
        "<=" => both.is_some_and(|(l, r)| compare_ordered(l, r) != Ordering::Greater),
        ">" => both.is_some_and(|(l, r)| compare_ordered(l, r) == Ordering::Greater),
        ">=" => both.is_some_and(|(l, r)| compare_ordered(l, r) != Ordering::Less),
        "is_set" => left.is_some(),
        "is_not_set" => left.is_none(),
        "version" => both.is_some_and(|(l, r)| satisfies(l, r, Flavor::GoVersion)),
        "semver" => both.is_some_and(|(l, r)| satisfies(l, r, Flavor::Semver)),
        "regexp" => both.is_some_and(|(l, r)| regexes.get(r).is_some_and(|re| re.is_match(l))),
        "set_contains" | "set_contains_all" => {
            both.is_some_and(|(l, r)| set(r).all(|want| set(l).any(|have| have == want)))
        }
        "set_contains_any" => {
            both.is_some_and(|(l, r)| set(r).any(|want| set(l).any(|have| have == want)))
        }
        _ => false,
    }
}

/// Resolves both targets on `node` and checks the operand.
pub fn node_satisfies(
    l_target: &str,
    operand: &str,
    r_target: &str,
    node: &Node,
    regexes: &mut RegexCache,
) -> bool {
    let left = resolve_target(l_target, node);
    let right = resolve_target(r_target, node);
    check_operand(operand, left.as_deref(), right.as_deref(), regexes)
}
