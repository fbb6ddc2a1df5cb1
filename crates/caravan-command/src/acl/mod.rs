//! `acl bootstrap`, `acl policy ...` and `acl token ...`.

mod policy;
mod token;

pub use policy::{policy_apply, policy_delete, policy_info, policy_list};
pub use token::{token_create, token_delete, token_info, token_list, token_self, token_update};

use caravan_api_types::acl::AclToken;
use chrono::{DateTime, Utc};

use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::server::client;
use crate::ui;

const BOOTSTRAP_USAGE: &str = "Usage: caravan acl bootstrap [options] [<path>]

  Bootstraps the ACL system and returns the initial management token.

  Without an argument the server generates the token's secret. With <path>,
  the secret (a UUID) is read from that file, or from stdin when <path> is
  \"-\". Keep such a secret out of your shell history.

Bootstrap Options:

  -json
    Output the bootstrap response in JSON format.

  -t
    Format and display the bootstrap response using a Go template.
";

pub fn bootstrap(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("acl bootstrap", BOOTSTRAP_USAGE)
        .bool("json")
        .value("t");
    let parsed = flags.parse_with(args, 0, 1, "This command takes up to one argument")?;
    let secret = match parsed.arg(0) {
        None | Some("") => String::new(),
        // Spaces, tabs and a Windows line end around the secret are not
        // part of it.
        Some(path) => crate::prompt::read_input(path)
            .map_err(|error| {
                CommandError::failed(format!("Error reading provided token: {error}"))
            })?
            .trim()
            .to_string(),
    };
    let client = client(&parsed)?;
    // Kept as the server wrote it, so -json shows the API's JSON.
    let answer: serde_json::Value = crate::block_on(client.acl().bootstrap_as(&secret))
        .map_err(|error| CommandError::call("bootstrapping", error))?;
    if crate::output::json_or_template(&parsed, &answer)? {
        return Ok(());
    }
    let token: AclToken = crate::error::typed(answer, "bootstrapping")?;
    crate::outln!("{}", format_token(&token));
    Ok(())
}

/// A time as Go's `time.Time` prints with `%v`, which Nomad's token output
/// uses: `2006-01-02 15:04:05.999999999 +0000 UTC`.
fn go_time(time: &DateTime<Utc>) -> String {
    let fraction = time.format("%9f").to_string();
    let fraction = fraction.trim_end_matches('0');
    let dot = if fraction.is_empty() { "" } else { "." };
    format!(
        "{}{dot}{fraction} +0000 UTC",
        time.format("%Y-%m-%d %H:%M:%S")
    )
}

/// A token as Nomad's `acl` commands print it.
pub(crate) fn format_token(token: &AclToken) -> String {
    let mut pairs = vec![
        ("Accessor ID", token.accessor_id.clone()),
        ("Secret ID", token.secret_id.clone()),
        ("Name", token.name.clone()),
        ("Type", token.token_type.clone()),
        ("Global", token.global.to_string()),
        (
            "Create Time",
            token
                .create_time
                .as_ref()
                .map(go_time)
                .unwrap_or_else(|| "0001-01-01 00:00:00 +0000 UTC".to_string()),
        ),
        (
            "Expiry Time",
            token
                .expiration_time
                .as_ref()
                .map(go_time)
                .unwrap_or_else(|| "<none>".to_string()),
        ),
        ("Create Index", token.create_index.to_string()),
        ("Modify Index", token.modify_index.to_string()),
    ];
    // A management token can hold no policies or roles: say so.
    if token.is_management() {
        pairs.push(("Policies", "n/a".to_string()));
        pairs.push(("Roles", "n/a".to_string()));
        return ui::kv(&pairs);
    }
    pairs.push(("Policies", format!("[{}]", token.policies.join(" "))));
    let roles = match token.roles.is_empty() {
        true => "<none>".to_string(),
        false => ui::table(
            &["ID", "Name"],
            token
                .roles
                .iter()
                .map(|role| vec![ui::cell(&role["ID"]), ui::cell(&role["Name"])])
                .collect(),
        ),
    };
    format!("{}\n\nRoles\n{roles}", ui::kv(&pairs))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn times_print_as_go_prints_them() {
        let time = Utc.timestamp_opt(1_700_000_000, 120_000_000).unwrap();
        assert_eq!(go_time(&time), "2023-11-14 22:13:20.12 +0000 UTC");
        let whole = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        assert_eq!(go_time(&whole), "2023-11-14 22:13:20 +0000 UTC");
    }

    #[test]
    fn client_tokens_list_policies_and_roles() {
        let token = AclToken {
            accessor_id: "a".into(),
            secret_id: "s".into(),
            name: "n".into(),
            token_type: "client".into(),
            policies: vec!["p1".into(), "p2".into()],
            ..AclToken::default()
        };
        let text = format_token(&token);
        assert!(text.contains("Policies     = [p1 p2]"), "{text}");
        assert!(text.ends_with("\n\nRoles\n<none>"), "{text}");
        let management = AclToken {
            token_type: "management".into(),
            ..token
        };
        assert!(format_token(&management).ends_with("Roles        = n/a"));
    }
}
