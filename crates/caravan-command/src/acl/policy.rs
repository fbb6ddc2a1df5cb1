//! `acl policy apply`, `list`, `info` and `delete`.

use caravan_api_types::acl::{AclPolicy, AclPolicyListStub};
use caravan_sdk::{QueryOptions, WriteOptions};

use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::prompt::read_input;
use crate::server::client;
use crate::ui;

const APPLY_USAGE: &str = "Usage: caravan acl policy apply [options] <name> <path>

  Creates or updates an ACL policy from the rules in <path> (\"-\" reads
  stdin).

  This command requires a management ACL token.

Apply Options:

  -description
    A description of the policy.
";

pub fn policy_apply(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("acl policy apply", APPLY_USAGE).value("description");
    let parsed = flags.parse_with(
        args,
        2,
        2,
        "This command takes two arguments: <name> and <path>",
    )?;
    let (name, path) = (
        parsed.arg(0).unwrap_or_default(),
        parsed.arg(1).unwrap_or_default(),
    );
    let rules = read_input(path).map_err(|error| match path {
        "-" => CommandError::failed(format!("Failed to read stdin: {error}")),
        _ => CommandError::failed(format!("Failed to read file: {error}")),
    })?;
    let description = parsed.get("description").unwrap_or_default();
    let client = client(&parsed)?;
    crate::block_on(client.acl().upsert_policy(
        name,
        description,
        &rules,
        &WriteOptions::default(),
    ))
    .map_err(|error| CommandError::call("writing ACL policy", error))?;
    crate::outln!("Successfully wrote {name:?} ACL policy!");
    Ok(())
}

const LIST_USAGE: &str = "Usage: caravan acl policy list [options]

  Lists the ACL policies.

List Options:

  -json
    Output the ACL policies in JSON format.

  -t
    Format and display the ACL policies using a Go template.
";

pub fn policy_list(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("acl policy list", LIST_USAGE)
        .bool("json")
        .value("t");
    let parsed = flags.parse_with(args, 0, 0, "This command takes no arguments")?;
    let client = client(&parsed)?;
    let doing = "listing ACL policies";
    let (answer, _) = crate::block_on(
        client
            .acl()
            .policies_as::<serde_json::Value>(&QueryOptions::default()),
    )
    .map_err(|error| CommandError::call(doing, error))?;
    if crate::output::json_or_template(&parsed, &answer)? {
        return Ok(());
    }
    let policies: Vec<AclPolicyListStub> = crate::error::typed(answer, doing)?;
    if policies.is_empty() {
        crate::outln!("No policies found");
        return Ok(());
    }
    let rows = policies
        .into_iter()
        .map(|policy| vec![policy.name, policy.description])
        .collect();
    crate::outln!("{}", ui::table(&["Name", "Description"], rows));
    Ok(())
}

const INFO_USAGE: &str = "Usage: caravan acl policy info <name>

  Fetches information on an existing ACL policy.
";

pub fn policy_info(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("acl policy info", INFO_USAGE)
        .bool("json")
        .value("t");
    let parsed = flags.parse_with(args, 1, 1, "This command takes one argument: <name>")?;
    let name = parsed.arg(0).unwrap_or_default();
    let client = client(&parsed)?;
    let doing = "fetching info on ACL policy";
    let (answer, _) = crate::block_on(
        client
            .acl()
            .policy_as::<serde_json::Value>(name, &QueryOptions::default()),
    )
    .map_err(|error| CommandError::call(doing, error))?;
    if crate::output::json_or_template(&parsed, &answer)? {
        return Ok(());
    }
    let policy: AclPolicy = crate::error::typed(answer, doing)?;
    let mut text = ui::kv(&[
        ("Name", policy.name.clone()),
        ("Description", policy.description.clone()),
        ("CreateIndex", policy.create_index.to_string()),
        ("ModifyIndex", policy.modify_index.to_string()),
    ]);
    if let Some(workload) = policy.job_acl.as_ref().filter(|value| !value.is_null()) {
        text.push_str("\n\nAssociated Workload\n");
        text.push_str(&ui::kv(&[
            ("Namespace", ui::cell(&workload["Namespace"])),
            ("JobID", ui::cell(&workload["JobID"])),
            ("Group", ui::cell(&workload["Group"])),
            ("Task", ui::cell(&workload["Task"])),
        ]));
    }
    // The rules may be long: last.
    text.push_str("\n\nRules\n\n");
    text.push_str(&policy.rules);
    crate::outln!("{text}");
    Ok(())
}

const DELETE_USAGE: &str = "Usage: caravan acl policy delete <name>

  Deletes an existing ACL policy.

  This command requires a management ACL token.
";

pub fn policy_delete(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("acl policy delete", DELETE_USAGE);
    let parsed = flags.parse_with(args, 1, 1, "This command takes one argument: <name>")?;
    let name = parsed.arg(0).unwrap_or_default();
    let client = client(&parsed)?;
    crate::block_on(client.acl().delete_policy(name, &WriteOptions::default()))
        .map_err(|error| CommandError::call("deleting ACL policy", error))?;
    crate::outln!("Successfully deleted {name} policy!");
    Ok(())
}
