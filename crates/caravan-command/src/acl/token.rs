//! `acl token create`, `list`, `info`, `self`, `update` and `delete`.

use caravan_api_types::acl::{AclToken, AclTokenListStub};
use caravan_api_types::duration::parse_go_duration_nanos;
use caravan_sdk::{QueryOptions, WriteOptions};
use chrono::Utc;

use super::format_token;
use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::server::client;
use crate::ui;

const CREATE_USAGE: &str = "Usage: caravan acl token create [options]

  Creates a new ACL token.

  This command requires a management ACL token.

Create Options:

  -name=\"\"
    The name of the token.

  -type=\"client\"
    The type of token: \"client\" (the default) or \"management\".

  -global=false
    Whether the token is replicated to all regions.

  -policy=\"\"
    A policy the token holds; give it once per policy.

  -ttl
    How long the token lives, as a duration such as \"1h\".

  -json
    Output the token in JSON format.

  -t
    Format and display the token using a Go template.
";

pub fn token_create(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("acl token create", CREATE_USAGE)
        .value("name")
        .value("type")
        .bool("global")
        .value("policy")
        .value("ttl")
        .bool("json")
        .value("t");
    let parsed = flags.parse_with(args, 0, 0, "This command takes no arguments")?;
    let mut token = AclToken {
        name: parsed.get("name").unwrap_or_default().to_string(),
        token_type: parsed.get("type").unwrap_or("client").to_string(),
        policies: parsed
            .all("policy")
            .into_iter()
            .map(str::to_string)
            .collect(),
        global: parsed.bool("global"),
        ..AclToken::default()
    };
    if let Some(ttl) = parsed.get("ttl").filter(|ttl| !ttl.is_empty()) {
        token.expiration_ttl = parse_go_duration_nanos(ttl).map_err(|error| {
            CommandError::failed(format!("Failed to parse TTL as time duration: {error}"))
        })?;
    }
    let client = client(&parsed)?;
    let acl = client.acl();
    let created = crate::block_on(async {
        // A policy that does not exist (yet) is only a warning.
        for policy in &token.policies {
            if let Err(error) = acl.policy(policy, &QueryOptions::default()).await {
                eprintln!("Error fetching info on {policy} policy: {error}");
            }
        }
        acl.create_as::<serde_json::Value>(&token, &WriteOptions::default())
            .await
    })
    .map_err(|error| CommandError::call("creating token", error))?;
    if crate::output::json_or_template(&parsed, &created)? {
        return Ok(());
    }
    let created: AclToken = crate::error::typed(created, "creating token")?;
    crate::outln!("{}", format_token(&created));
    Ok(())
}

const LIST_USAGE: &str = "Usage: caravan acl token list [options]

  Lists the ACL tokens.

  This command requires a management ACL token.

List Options:

  -json
    Output the ACL tokens in JSON format.

  -t
    Format and display the ACL tokens using a Go template.
";

pub fn token_list(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("acl token list", LIST_USAGE)
        .bool("json")
        .value("t");
    let parsed = flags.parse_with(args, 0, 0, "This command takes no arguments")?;
    let client = client(&parsed)?;
    let (answer, _) = crate::block_on(
        client
            .acl()
            .tokens_as::<serde_json::Value>(&QueryOptions::default()),
    )
    .map_err(|error| CommandError::call("listing ACL tokens", error))?;
    if crate::output::json_or_template(&parsed, &answer)? {
        return Ok(());
    }
    let tokens: Vec<AclTokenListStub> = crate::error::typed(answer, "listing ACL tokens")?;
    if tokens.is_empty() {
        crate::outln!("No tokens found");
        return Ok(());
    }
    let now = Utc::now();
    let rows = tokens
        .into_iter()
        .map(|token| {
            let expired = token.expiration_time.is_some_and(|expiry| expiry < now);
            vec![
                token.name,
                token.token_type,
                token.global.to_string(),
                token.accessor_id,
                expired.to_string(),
            ]
        })
        .collect();
    crate::outln!(
        "{}",
        ui::table(&["Name", "Type", "Global", "Accessor ID", "Expired"], rows)
    );
    Ok(())
}

const INFO_USAGE: &str = "Usage: caravan acl token info [options] <token_accessor_id>

  Fetches information on an existing ACL token.

Info Options:

  -json
    Output the token in JSON format.

  -t
    Format and display the token using a Go template.
";

pub fn token_info(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("acl token info", INFO_USAGE)
        .bool("json")
        .value("t");
    let parsed = flags.parse_with(
        args,
        1,
        1,
        "This command takes one argument: <token_accessor_id>",
    )?;
    let accessor = parsed.arg(0).unwrap_or_default();
    let client = client(&parsed)?;
    let (answer, _) = crate::block_on(
        client
            .acl()
            .token_as::<serde_json::Value>(accessor, &QueryOptions::default()),
    )
    .map_err(|error| CommandError::call("fetching token", error))?;
    if crate::output::json_or_template(&parsed, &answer)? {
        return Ok(());
    }
    let token: AclToken = crate::error::typed(answer, "fetching token")?;
    crate::outln!("{}", format_token(&token));
    Ok(())
}

const SELF_USAGE: &str = "Usage: caravan acl token self [options]

  Shows the ACL token the command is run with (-token or NOMAD_TOKEN).

Self Options:

  -json
    Output the token in JSON format.

  -t
    Format and display the token using a Go template.
";

pub fn token_self(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("acl token self", SELF_USAGE)
        .bool("json")
        .value("t");
    let parsed = flags.parse_with(args, 0, 0, "This command takes no arguments")?;
    let client = client(&parsed)?;
    if client
        .config()
        .token
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        return Err(CommandError::failed(
            "No token present in the environment or set via the CLI flag",
        ));
    }
    let (answer, _) = crate::block_on(
        client
            .acl()
            .token_self_as::<serde_json::Value>(&QueryOptions::default()),
    )
    .map_err(|error| CommandError::call("fetching self token", error))?;
    if crate::output::json_or_template(&parsed, &answer)? {
        return Ok(());
    }
    let token: AclToken = crate::error::typed(answer, "fetching self token")?;
    crate::outln!("{}", format_token(&token));
    Ok(())
}

const UPDATE_USAGE: &str = "Usage: caravan acl token update [options] <token_accessor_id>

  Updates an existing ACL token: only the flags given change.

  This command requires a management ACL token.

Update Options:

  -name=\"\"
    The new name of the token.

  -type=\"\"
    The new type of the token: \"client\" or \"management\".

  -policy=\"\"
    A policy the token holds; give it once per policy. The given policies
    replace the token's.
";

pub fn token_update(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("acl token update", UPDATE_USAGE)
        .value("name")
        .value("type")
        .value("policy");
    let parsed = flags.parse_with(
        args,
        1,
        1,
        "This command takes one argument: <token_accessor_id>",
    )?;
    let accessor = parsed.arg(0).unwrap_or_default();
    let client = client(&parsed)?;
    let acl = client.acl();
    let updated = crate::block_on(async {
        let (mut token, _) = acl
            .token(accessor, &QueryOptions::default())
            .await
            .map_err(|error| CommandError::call("fetching token", error))?;
        if let Some(name) = parsed.get("name").filter(|name| !name.is_empty()) {
            token.name = name.to_string();
        }
        if let Some(kind) = parsed.get("type").filter(|kind| !kind.is_empty()) {
            token.token_type = kind.to_string();
        }
        let policies = parsed.all("policy");
        if !policies.is_empty() {
            token.policies = policies.into_iter().map(str::to_string).collect();
        }
        acl.update_token(&token, &WriteOptions::default())
            .await
            .map_err(|error| CommandError::call("updating token", error))
    })?;
    crate::outln!("{}", format_token(&updated));
    Ok(())
}

const DELETE_USAGE: &str = "Usage: caravan acl token delete [options] <token_accessor_id>

  Deletes an existing ACL token.

  This command requires a management ACL token.
";

pub fn token_delete(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("acl token delete", DELETE_USAGE);
    let parsed = flags.parse_with(
        args,
        1,
        1,
        "This command takes one argument: <token_accessor_id>",
    )?;
    let accessor = parsed.arg(0).unwrap_or_default();
    let client = client(&parsed)?;
    crate::block_on(
        client
            .acl()
            .delete_token(accessor, &WriteOptions::default()),
    )
    .map_err(|error| CommandError::call("deleting token", error))?;
    crate::outln!("Token {accessor} successfully deleted");
    Ok(())
}
