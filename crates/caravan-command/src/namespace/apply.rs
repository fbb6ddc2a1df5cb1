//! `namespace apply`: a namespace created or replaced from a specification
//! file (`-` for stdin), or, when the argument is not a file, the namespace
//! of that name created or updated with `-description` and `-quota`.

use caravan_api_types::namespace::Namespace;
use caravan_sdk::{Client, QueryOptions, WriteOptions};

use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::prompt::read_input;
use crate::server::client;

use super::spec;

const USAGE: &str = "Usage: caravan namespace apply [options] <input>

  Apply is used to create or update a namespace. The specification file
  will be read from stdin by specifying \"-\", otherwise a path to the file is
  expected.

  Instead of a file, you may instead pass the namespace name to create
  or update as the only argument.

  If ACLs are enabled, this command requires a management ACL token.

Apply Options:

  -quota
    The quota to attach to the namespace.

  -description
    An optional description for the namespace.

  -json
    Parse the input as a JSON namespace specification.
";

pub fn apply(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("namespace apply", USAGE)
        .value("description")
        .value("quota")
        .bool("json");
    let parsed = flags.parse_with(args, 1, 1, "This command takes one argument: <input>")?;
    let input = parsed.arg(0).unwrap_or_default();
    let client = client(&parsed)?;
    let description = parsed.get("description");
    let quota = parsed.get("quota");

    let namespace = if is_spec_file(input) {
        if description.is_some() || quota.is_some() {
            // Nomad's warning goes to stderr and the command carries on.
            eprintln!("Flags are ignored when a file is specified!");
        }
        read_spec(input, parsed.bool("json"))?
    } else {
        if input.is_empty() {
            return Err(CommandError::failed("Namespace name required"));
        }
        let mut namespace = crate::block_on(existing_or_new(&client, input))?;
        if let Some(description) = description {
            namespace.description = description.to_string();
        }
        if let Some(quota) = quota {
            namespace.quota = quota.to_string();
        }
        namespace
    };
    crate::block_on(
        client
            .namespaces()
            .register(&namespace, &WriteOptions::default()),
    )
    .map_err(|error| CommandError::call("applying namespace", error))?;
    crate::outln!("Successfully applied namespace {:?}!", namespace.name);
    Ok(())
}

/// Whether `input` names a specification (stdin, or a file that is not
/// a directory) rather than a namespace.
fn is_spec_file(input: &str) -> bool {
    input == "-" || std::fs::metadata(input).is_ok_and(|metadata| !metadata.is_dir())
}

/// The specification in the file (or stdin) `input`, with Nomad's texts
/// for each failure (its "quota" in them is its own wording).
fn read_spec(input: &str, api_json: bool) -> Result<Namespace, CommandError> {
    let text = read_input(input).map_err(|error| match input {
        "-" => CommandError::failed(format!("Failed to read stdin: {error}")),
        _ => CommandError::failed(format!("Failed to read file: {error}")),
    })?;
    match api_json {
        true => spec::from_api_json(&text)
            .map_err(|error| CommandError::failed(format!("Failed to parse quota: {error}"))),
        false => spec::from_hcl_text(&text).map_err(|error| {
            CommandError::failed(format!("Error parsing quota specification: {error}"))
        }),
    }
}

/// The namespace `name` as it is now, to change only what the flags set;
/// a new one when there is none.
async fn existing_or_new(client: &Client, name: &str) -> Result<Namespace, CommandError> {
    match client
        .namespaces()
        .info(name, &QueryOptions::default())
        .await
    {
        Ok((namespace, _)) => Ok(namespace),
        Err(error) if error.status() == Some(404) => Ok(Namespace {
            name: name.to_string(),
            ..Namespace::default()
        }),
        Err(error) => Err(CommandError::call("looking up namespace", error)),
    }
}
