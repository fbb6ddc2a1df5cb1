//! `caravan status [ID]`: with no ID the job list; with one, whatever the
//! ID names — a job, else an allocation, a node or an evaluation whose ID
//! starts with it — shown by that object's own status command.
//!
//! Nomad asks `/v1/search` which kinds of object match; Caravan has no
//! search endpoint, so each kind's list is asked with the prefix instead.

use caravan_sdk::{Client, QueryOptions};

use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;

const USAGE: &str = "Usage: caravan status [options] <identifier>

  Display the status output for any Caravan resource: a job, an
  allocation, a node or an evaluation, found by its ID or a prefix of it.
  With no identifier, the list of jobs is shown.

Status Options:

  -verbose
    Display full information.
";

/// The kinds of object an identifier can name, in the order they are
/// tried, with the command that shows one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Job,
    Allocation,
    Node,
    Evaluation,
}

impl Kind {
    fn command(self) -> &'static [&'static str] {
        match self {
            Kind::Job => &["job", "status"],
            Kind::Allocation => &["alloc", "status"],
            Kind::Node => &["node", "status"],
            Kind::Evaluation => &["eval", "status"],
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Kind::Job => "Jobs",
            Kind::Allocation => "Allocs",
            Kind::Node => "Nodes",
            Kind::Evaluation => "Evals",
        }
    }
}

pub fn run(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("status", USAGE)
        .bool("verbose")
        .bool("ui")
        .bool("json")
        .value("t");
    let parsed = flags.parse(args)?;
    let Some(ident) = parsed.args.last().cloned() else {
        return route(Kind::Job, args);
    };
    let client = parsed.client()?;
    let matches = crate::block_on(find_matches(&client, &ident))?;
    let kind = choose(&ident, &matches)?;
    route(kind, args)
}

/// Runs the status command of `kind` with the same arguments.
fn route(kind: Kind, args: &[String]) -> CommandResult {
    let mut words: Vec<String> = kind.command().iter().map(|w| w.to_string()).collect();
    words.extend(args.iter().cloned());
    match crate::find(&words) {
        Some((command, rest)) => (command.run)(rest),
        None => Err(CommandError::failed(format!(
            "Unable to resolve ID: no `{}` command",
            kind.command().join(" ")
        ))),
    }
}

/// The IDs of each kind that start with `ident`.
async fn find_matches(
    client: &Client,
    ident: &str,
) -> Result<Vec<(Kind, Vec<String>)>, CommandError> {
    let searching = |error| CommandError::call("querying search with id", error);
    let plain = QueryOptions {
        prefix: Some(ident.to_string()),
        ..QueryOptions::default()
    };
    let (jobs, _) = client.jobs().list(&plain).await.map_err(searching)?;
    let mut matches: Vec<(Kind, Vec<String>)> =
        vec![(Kind::Job, jobs.into_iter().map(|job| job.id).collect())];
    // UUID-keyed lists take whole bytes of hex; an identifier that cannot
    // be a UUID prefix names none of them.
    if let Some(prefix) = uuid_prefix(ident) {
        let uuid = QueryOptions {
            prefix: Some(prefix),
            ..QueryOptions::default()
        };
        // A list the caller may not read is no match, not a failure.
        if let Ok((allocs, _)) = client.allocations().list(&uuid).await {
            matches.push((Kind::Allocation, allocs.into_iter().map(|a| a.id).collect()));
        }
        if let Ok((nodes, _)) = client.nodes().list(&uuid).await {
            matches.push((Kind::Node, nodes.into_iter().map(|n| n.id).collect()));
        }
        if let Ok((evals, _)) = client.evaluations().list(&uuid).await {
            matches.push((Kind::Evaluation, evals.into_iter().map(|e| e.id).collect()));
        }
    }
    for (_, ids) in &mut matches {
        ids.retain(|id| id.starts_with(ident));
    }
    Ok(matches)
}

/// The prefix to send a UUID-keyed list, if `ident` can start a UUID.
fn uuid_prefix(ident: &str) -> Option<String> {
    let uuid_like = ident.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    match uuid_like {
        true => crate::prefix::uuid_prefix(ident).ok(),
        false => None,
    }
}

/// The kind `ident` names (Nomad's rule): an exact ID of one kind, else
/// the one kind with exactly one match.
fn choose(ident: &str, matches: &[(Kind, Vec<String>)]) -> Result<Kind, CommandError> {
    let exact: Vec<Kind> = matches
        .iter()
        .filter(|(_, ids)| ids.iter().any(|id| id == ident))
        .map(|(kind, _)| *kind)
        .collect();
    let found: Vec<&(Kind, Vec<String>)> =
        matches.iter().filter(|(_, ids)| !ids.is_empty()).collect();
    let ambiguous = || {
        let mut text = format!("Multiple matches found for id {ident:?}");
        for (kind, ids) in &found {
            text.push_str(&format!("\n\n{}:\n{}", kind.plural(), ids.join(", ")));
        }
        CommandError::failed(text)
    };
    match exact.as_slice() {
        [kind] => return Ok(*kind),
        [] => {}
        _ => return Err(ambiguous()),
    }
    match found.as_slice() {
        [] => Err(CommandError::failed(format!(
            "Unable to resolve ID: {ident:?}"
        ))),
        // A job prefix matching several jobs is the job command's to list.
        [(Kind::Job, _)] => Ok(Kind::Job),
        [(kind, ids)] if ids.len() == 1 => Ok(*kind),
        _ => Err(ambiguous()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn exact_ids_win_and_single_matches_route() {
        let matches = vec![
            (Kind::Job, ids(&["ab"])),
            (Kind::Allocation, ids(&["ab12"])),
        ];
        assert_eq!(choose("ab", &matches).unwrap(), Kind::Job);
        let one = vec![(Kind::Job, ids(&[])), (Kind::Node, ids(&["abcd"]))];
        assert_eq!(choose("ab", &one).unwrap(), Kind::Node);
        let jobs = vec![(Kind::Job, ids(&["web1", "web2"]))];
        assert_eq!(choose("web", &jobs).unwrap(), Kind::Job);
    }

    #[test]
    fn several_kinds_or_none_fail() {
        let two = vec![
            (Kind::Job, ids(&["abc"])),
            (Kind::Evaluation, ids(&["abcd"])),
        ];
        let error = choose("ab", &two).unwrap_err().to_string();
        assert!(
            error.starts_with("Multiple matches found for id \"ab\""),
            "{error}"
        );
        assert!(error.contains("Evals:\nabcd"), "{error}");
        let none = vec![(Kind::Job, ids(&[]))];
        assert_eq!(
            choose("zz", &none).unwrap_err().to_string(),
            "Unable to resolve ID: \"zz\""
        );
    }

    #[test]
    fn only_hex_identifiers_are_uuid_prefixes() {
        assert_eq!(uuid_prefix("abc").as_deref(), Some("ab"));
        assert_eq!(uuid_prefix("web"), None);
        assert_eq!(uuid_prefix("a"), None);
    }
}
