use std::collections::BTreeMap;

use caravan_api_types::namespace::{Namespace, NamespaceCapabilities};
use serde_json::json;

use super::spec::{from_api_json, from_hcl_text, from_hcl_value};
use super::*;
use crate::complete::candidates;

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|word| word.to_string()).collect()
}

fn usage_error(result: CommandResult) -> (String, String) {
    match result {
        Err(CommandError::Usage { message, usage }) => (message, usage),
        other => panic!("not a usage error: {other:?}"),
    }
}

#[test]
fn argument_counts_are_usage_errors_in_nomads_words() {
    let (message, usage) = usage_error(apply(&args(&["some", "bad", "args"])));
    assert_eq!(message, "This command takes one argument: <input>");
    assert_eq!(
        usage,
        "For additional help try 'caravan namespace apply -help'"
    );
    let (message, _) = usage_error(apply(&[]));
    assert_eq!(message, "This command takes one argument: <input>");
    let (message, _) = usage_error(list(&args(&["extra"])));
    assert_eq!(message, "This command takes no arguments");
    for run in [status, inspect, delete] {
        let (message, _) = usage_error(run(&[]));
        assert_eq!(message, "This command takes one argument: <namespace>");
        let (message, _) = usage_error(run(&args(&["a", "b"])));
        assert_eq!(message, "This command takes one argument: <namespace>");
    }
}

#[test]
fn help_lists_each_commands_flags_and_completion_finds_them() {
    let (_, usage) = usage_error(apply(&args(&["-help"])));
    assert!(usage.starts_with("Usage: caravan namespace apply [options] <input>"));
    assert!(usage.contains("-address=<addr>"), "{usage}");
    let (_, usage) = usage_error(inspect(&args(&["-help"])));
    assert!(usage.contains("  -t\n"), "{usage}");
    assert!(!usage.contains("  -json\n"), "{usage}");

    assert_eq!(
        candidates("caravan namespace "),
        ["apply", "delete", "inspect", "list", "status"]
    );
    let flags = candidates("caravan namespace apply -");
    for flag in ["-description", "-quota", "-json", "-token"] {
        assert!(flags.contains(&flag.to_string()), "{flag}: {flags:?}");
    }
    let flags = candidates("caravan namespace status -");
    assert!(flags.contains(&"-t".to_string()), "{flags:?}");
}

#[test]
fn the_list_is_by_name_with_none_for_a_blank_description() {
    let namespace = |name: &str, description: &str, index: u64| Namespace {
        name: name.into(),
        description: description.into(),
        create_index: index,
        ..Namespace::default()
    };
    let namespaces = [
        namespace("team", "", 9),
        namespace("default", "Default shared namespace", 1),
    ];
    assert_eq!(
        format_namespaces(&namespaces),
        "Name     Description\ndefault  Default shared namespace\nteam     <none>"
    );
    assert_eq!(format_namespaces(&[]), "No namespaces found");
}

#[test]
fn status_prints_the_basics_and_each_section_the_namespace_has() {
    let bare = Namespace {
        name: "team".into(),
        ..Namespace::default()
    };
    assert_eq!(
        format_status(&bare),
        "Name                   = team\n\
         Description            = <none>\n\
         Quota                  = <none>\n\
         Enabled Drivers        = *\n\
         Disabled Drivers       = <none>\n\
         Enabled Network Modes  = *\n\
         Disabled Network Modes = <none>"
    );
    let full = Namespace {
        description: "d".into(),
        capabilities: Some(NamespaceCapabilities {
            enabled_task_drivers: Some(vec!["exec".into(), "docker".into()]),
            disabled_task_drivers: Some(vec!["raw_exec".into()]),
            ..NamespaceCapabilities::default()
        }),
        meta: Some(BTreeMap::from([
            ("z".to_string(), "last".to_string()),
            ("dept".to_string(), "eng".to_string()),
        ])),
        node_pool_configuration: Some(
            json!({"Default": "dev", "Allowed": ["prod*", "ci"], "Denied": null}),
        ),
        ..bare
    };
    let text = format_status(&full);
    assert!(
        text.contains("Enabled Drivers        = exec,docker\n"),
        "{text}"
    );
    assert!(
        text.contains("Disabled Drivers       = raw_exec\n"),
        "{text}"
    );
    assert!(
        text.ends_with(
            "\n\nMetadata\ndept = eng\nz    = last\n\n\
             Node Pool Configuration\nDefault = dev\nAllowed = prod*, ci"
        ),
        "{text}"
    );
}

#[test]
fn hcls_json_form_is_read_as_nomads_specification() {
    let text = r#"{
        "name": "test-namespace",
        "description": "Test namespace",
        "quota": "test",
        "capabilities": {"enabled_task_drivers": ["exec", "docker"],
                         "disabled_task_drivers": ["raw_exec"]},
        "node_pool_config": [{"default": "dev", "allowed": ["prod*"]}],
        "vault": {"default": "infra", "allowed": ["apps", "infra"]},
        "meta": [{"dept": "eng"}, {"cost": 12}],
        "required_extra_claims": {"foo": "${job.namespace}"},
        "unknown": true
    }"#;
    let namespace = from_hcl_text(text).expect("parsed");
    assert_eq!(namespace.name, "test-namespace");
    assert_eq!(namespace.description, "Test namespace");
    assert_eq!(namespace.quota, "test");
    let capabilities = namespace.capabilities.expect("capabilities");
    assert_eq!(
        capabilities.enabled_task_drivers,
        Some(vec!["exec".to_string(), "docker".to_string()])
    );
    assert_eq!(
        capabilities.disabled_task_drivers,
        Some(vec!["raw_exec".to_string()])
    );
    assert_eq!(capabilities.enabled_network_modes, None);
    // Lists not given are nil, as in Nomad's "nil lists" case.
    assert_eq!(
        namespace.node_pool_configuration,
        Some(json!({"Default": "dev", "Allowed": ["prod*"], "Denied": null}))
    );
    assert_eq!(
        namespace.vault_configuration,
        Some(json!({"Default": "infra", "Allowed": ["apps", "infra"], "Denied": null}))
    );
    assert_eq!(namespace.consul_configuration, None);
    let meta = namespace.meta.expect("meta");
    assert_eq!(meta["dept"], "eng");
    assert_eq!(meta["cost"], "12");

    assert_eq!(
        from_hcl_text(r#"{"name": "test-small"}"#).expect("minimal"),
        Namespace {
            name: "test-small".into(),
            ..Namespace::default()
        }
    );
    assert_eq!(from_hcl_text("  \n").expect("empty"), Namespace::default());
    // Native HCL, as `nomad namespace apply` reads it.
    let native = from_hcl_text(
        "name = \"team\"\ndescription = \"d\"\ncapabilities {\n  enabled_task_drivers = [\"docker\"]\n}\nmeta {\n  owner = \"ops\"\n}\n",
    )
    .expect("native HCL");
    assert_eq!(native.name, "team");
    assert_eq!(
        native.capabilities.and_then(|c| c.enabled_task_drivers),
        Some(vec!["docker".to_string()])
    );
    assert_eq!(native.meta.expect("meta")["owner"], "ops");
    assert!(from_hcl_text("name = ").is_err());
    assert_eq!(
        from_hcl_value(json!(["x"])).expect_err("not an object"),
        "error parsing: root should be an object"
    );
    assert_eq!(
        from_hcl_text(r#"{"capabilities": {"enabled_task_drivers": "docker"}}"#)
            .expect_err("not a list"),
        "capabilities.enabled_task_drivers: expected a list of strings"
    );
}

#[test]
fn the_apis_json_is_read_without_regard_to_case() {
    let text = r#"{"name": "team", "DESCRIPTION": "d", "Hash": "stale",
        "capabilities": {"enabledtaskdrivers": ["docker"]},
        "NodePoolConfiguration": {"default": "dev"},
        "Meta": {"owner": "ops"}, "RequiredExtraClaims": {"a": "b"}}"#;
    let namespace = from_api_json(text).expect("parsed");
    assert_eq!(namespace.name, "team");
    assert_eq!(namespace.description, "d");
    assert_eq!(namespace.hash, "");
    assert_eq!(
        namespace.capabilities.and_then(|c| c.enabled_task_drivers),
        Some(vec!["docker".to_string()])
    );
    assert_eq!(
        namespace.node_pool_configuration,
        Some(json!({"Default": "dev", "Allowed": null, "Denied": null}))
    );
    assert_eq!(namespace.meta.expect("meta")["owner"], "ops");
    assert!(from_api_json("[]").is_err());
    assert!(from_api_json("{\"Name\": 3}").is_err());
}

#[test]
fn the_longest_words_name_the_command() {
    let line = args(&["namespace", "status", "-json", "team"]);
    let (command, rest) = crate::find(&line).expect("found");
    assert_eq!(command.words, "namespace status");
    assert_eq!(rest, &args(&["-json", "team"])[..]);
}
