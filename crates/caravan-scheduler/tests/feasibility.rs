//! Feasibility: every constraint operator, targets, datacenter globs,
//! drivers, distinct_hosts, and the per-class memo.

use caravan_api_types::job::Constraint;
use caravan_api_types::node::DriverInfo;
use caravan_scheduler::feasible::constraint::{check_operand, node_satisfies, RegexCache};
use caravan_scheduler::feasible::version::{satisfies, Flavor};
use caravan_scheduler::feasible::{glob_match, Feasibility};
use caravan_scheduler::harness::{job, node, MemoryState};
use caravan_scheduler::SequentialIds;

fn op(operand: &str, left: Option<&str>, right: Option<&str>) -> bool {
    check_operand(operand, left, right, &mut RegexCache::default())
}

#[test]
fn equality_and_inequality() {
    for eq in ["=", "==", "is"] {
        assert!(op(eq, Some("linux"), Some("linux")));
        assert!(!op(eq, Some("linux"), Some("windows")));
        assert!(!op(eq, None, Some("linux")));
    }
    for ne in ["!=", "not"] {
        assert!(op(ne, Some("a"), Some("b")));
        assert!(!op(ne, Some("a"), Some("a")));
        // A missing target counts as "".
        assert!(op(ne, None, Some("x")));
        assert!(!op(ne, None, Some("")));
    }
}

#[test]
fn ordering_numeric_then_lexical() {
    assert!(op("<", Some("9"), Some("10")), "numbers compare as numbers");
    assert!(op(">", Some("10"), Some("9")));
    assert!(op("<=", Some("10"), Some("10")));
    assert!(op(">=", Some("2.5"), Some("2.25")), "floats");
    assert!(
        op("<", Some("abc"), Some("abd")),
        "strings compare lexically"
    );
    assert!(!op("<", Some("b"), Some("a")));
    assert!(!op("<", None, Some("1")), "missing target fails");
}

#[test]
fn set_and_presence_operators() {
    assert!(op("set_contains", Some("a, b,c"), Some("a,c")));
    assert!(!op("set_contains", Some("a,b"), Some("a,d")));
    assert!(op("set_contains_all", Some("a,b"), Some("b")));
    assert!(op("set_contains_any", Some("a,b"), Some("z,b")));
    assert!(!op("set_contains_any", Some("a,b"), Some("y,z")));
    assert!(op("is_set", Some(""), None));
    assert!(!op("is_set", None, None));
    assert!(op("is_not_set", None, None));
    assert!(!op("is_not_set", Some("x"), None));
    assert!(!op("no_such_operator", Some("x"), Some("x")));
    assert!(
        op("distinct_hosts", None, None),
        "judged by its own iterator"
    );
}

#[test]
fn regexp_is_unanchored() {
    assert!(op("regexp", Some("linux-5.15"), Some("5\\.1")));
    assert!(op("regexp", Some("abc"), Some("^a.c$")));
    assert!(!op("regexp", Some("abc"), Some("^b")));
    assert!(
        !op("regexp", Some("abc"), Some("(")),
        "a bad pattern never matches"
    );
}

#[test]
fn version_constraints() {
    assert!(satisfies("1.5.0", ">= 1.2, < 2.0", Flavor::GoVersion));
    assert!(!satisfies("2.0.0", ">= 1.2, < 2.0", Flavor::GoVersion));
    assert!(
        satisfies("v1.2", "= 1.2.0", Flavor::GoVersion),
        "lenient parse"
    );
    assert!(satisfies("1.4.7", "~> 1.4.3", Flavor::GoVersion));
    assert!(!satisfies("1.5.0", "~> 1.4.3", Flavor::GoVersion));
    assert!(satisfies("1.9", "~> 1.2", Flavor::GoVersion));
    assert!(!satisfies("2.0", "~> 1.2", Flavor::GoVersion));
    assert!(satisfies("1.3.0", "!= 1.2.0", Flavor::GoVersion));
    // A pre-release only matches constraints naming a pre-release of it.
    assert!(!satisfies("1.3.0-beta1", ">= 1.2.0", Flavor::GoVersion));
    assert!(satisfies(
        "1.3.0-beta2",
        ">= 1.3.0-beta1",
        Flavor::GoVersion
    ));
    assert!(
        satisfies("1.3.0", "> 1.3.0-rc1", Flavor::GoVersion),
        "release above its pre-release"
    );
    assert!(!satisfies("not-a-version", ">= 1.0", Flavor::GoVersion));
    // semver: strict three-part constraints, no pessimistic operator.
    assert!(satisfies("1.2.3", ">= 1.2.0, < 1.3.0", Flavor::Semver));
    assert!(!satisfies("1.2.3", "~> 1.2.0", Flavor::Semver));
    assert!(!satisfies("1.2.3", ">= 1.2", Flavor::Semver));
    assert!(op("version", Some("1.6.1"), Some(">= 1.6")));
    assert!(op("semver", Some("1.6.1"), Some("> 1.6.0")));
}

#[test]
fn targets_resolve_on_the_node() {
    let mut n = node("n1", "dc1", 1000, 1000);
    n.node_class = "large".into();
    n.meta.insert("rack".into(), "r7".into());
    let mut regexes = RegexCache::default();
    let mut check = |l: &str, o: &str, r: &str| node_satisfies(l, o, r, &n, &mut regexes);
    assert!(check("${node.unique.id}", "=", "n1"));
    assert!(check("${node.unique.name}", "=", "node-n1"));
    assert!(check("${node.datacenter}", "=", "dc1"));
    assert!(check("${node.class}", "=", "large"));
    assert!(check("${node.pool}", "=", "default"));
    assert!(check("${attr.kernel.name}", "=", "linux"));
    assert!(check("${meta.rack}", "=", "r7"));
    assert!(check("${meta.rack}", "=", "${meta.rack}"));
    assert!(!check("${attr.missing}", "=", "x"));
    assert!(!check("${bogus.thing}", "is_set", ""));
    assert!(check("${meta.missing}", "is_not_set", ""));
}

#[test]
fn datacenter_globs() {
    assert!(glob_match("*", "dc1"));
    assert!(glob_match("dc-*", "dc-east"));
    assert!(!glob_match("dc-*", "eu-1"));
    assert!(glob_match("*-east", "dc-east"));
    assert!(glob_match("a*c*e", "abcde"));
    assert!(!glob_match("dc1", "dc10"));

    let mut state = MemoryState::default();
    state.upsert_node(node("a", "dc-east", 4000, 8000));
    state.upsert_node(node("b", "eu-1", 4000, 8000));
    let mut web = job("web", "service", 4);
    web.datacenters = Some(vec!["dc-*".into()]);
    let eval = state.upsert_job(web);
    let result = state.schedule(&eval, 0, &mut SequentialIds::default());
    assert_eq!(
        result.plan.node_allocation.keys().collect::<Vec<_>>(),
        ["a"]
    );
    assert_eq!(result.plan.placements().count(), 4);
}

#[test]
fn unhealthy_driver_is_filtered() {
    let mut state = MemoryState::default();
    let mut sick = node("sick", "dc1", 4000, 8000);
    sick.drivers.insert(
        "raw_exec".into(),
        DriverInfo {
            detected: true,
            healthy: false,
            ..DriverInfo::default()
        },
    );
    state.upsert_node(sick);
    let mut attr_only = node("attr", "dc1", 4000, 8000);
    attr_only.drivers.clear();
    attr_only
        .attributes
        .insert("driver.raw_exec".into(), "1".into());
    state.upsert_node(attr_only);
    let eval = state.upsert_job(job("web", "service", 3));
    let result = state.schedule(&eval, 0, &mut SequentialIds::default());
    assert_eq!(
        result.plan.node_allocation.keys().collect::<Vec<_>>(),
        ["attr"]
    );
    let metrics = result
        .plan
        .placements()
        .next()
        .unwrap()
        .metrics
        .clone()
        .unwrap();
    assert_eq!(
        metrics.constraint_filtered.unwrap().get("missing drivers"),
        Some(&1)
    );
}

#[test]
fn distinct_hosts_one_per_node() {
    let mut state = MemoryState::default();
    for id in ["a", "b", "c"] {
        state.upsert_node(node(id, "dc1", 4000, 8000));
    }
    let mut web = job("web", "service", 4);
    web.task_groups[0].constraints = Some(vec![Constraint::new("", "distinct_hosts", "true")]);
    let eval = state.upsert_job(web);
    let result = state.schedule(&eval, 0, &mut SequentialIds::default());
    assert_eq!(result.plan.placements().count(), 3);
    assert!(result
        .plan
        .node_allocation
        .values()
        .all(|allocs| allocs.len() == 1));
    let failed = &result.failed_tg_allocs["group"];
    assert_eq!(
        failed.constraint_filtered.as_ref().unwrap()["distinct_hosts"],
        3
    );
    assert_eq!(result.queued_allocations["group"], 1);
}

#[test]
fn distinct_property_limits_per_value() {
    let mut state = MemoryState::default();
    for (id, rack) in [("a", "r1"), ("b", "r1"), ("c", "r2"), ("d", "r2")] {
        let mut n = node(id, "dc1", 4000, 8000);
        n.meta.insert("rack".into(), rack.into());
        state.upsert_node(n);
    }
    let mut web = job("web", "service", 3);
    web.constraints = Some(vec![Constraint::new(
        "${meta.rack}",
        "distinct_property",
        "1",
    )]);
    let eval = state.upsert_job(web);
    let result = state.schedule(&eval, 0, &mut SequentialIds::default());
    assert_eq!(result.plan.placements().count(), 2, "one per rack");
    let failed = &result.failed_tg_allocs["group"];
    let reasons = failed.constraint_filtered.as_ref().unwrap();
    assert!(
        reasons
            .keys()
            .any(|r| r.starts_with("distinct_property: ${meta.rack}=")),
        "{reasons:?}"
    );
}

#[test]
fn class_memo_skips_repeated_checks() {
    let linux = node("a", "dc1", 4000, 8000);
    let same_class = node("b", "dc1", 4000, 8000);
    assert_eq!(linux.computed_class, same_class.computed_class);
    let mut web = job("web", "service", 1);
    web.constraints = Some(vec![Constraint::new("${attr.kernel.name}", "=", "windows")]);
    let mut feasibility = Feasibility::new(&web);
    let mut metrics = Default::default();
    assert!(!feasibility.check("group", &linux, &mut metrics));
    assert!(!feasibility.check("group", &same_class, &mut metrics));
    let reasons = metrics.constraint_filtered.unwrap();
    assert_eq!(reasons["${attr.kernel.name} = windows"], 1);
    assert_eq!(reasons["computed class ineligible"], 1);
    assert!(!feasibility.class_eligibility()[&linux.computed_class]);

    // A constraint on a unique attribute escapes the memo.
    let mut pinned = job("pinned", "service", 1);
    pinned.constraints = Some(vec![Constraint::new("${node.unique.id}", "=", "b")]);
    let mut feasibility = Feasibility::new(&pinned);
    assert!(feasibility.escaped());
    let mut metrics = Default::default();
    assert!(!feasibility.check("group", &linux, &mut metrics));
    assert!(feasibility.check("group", &same_class, &mut metrics));
}
