//! `agent-info`: the local agent's stats, as Nomad prints them.

use serde_json::Value;

use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::server::client;

const USAGE: &str = "Usage: caravan agent-info [options]

  Display status information about the local agent.

  If ACLs are enabled, this command requires a token with the 'agent:read'
  capability.

Agent Info Options:

  -json
    Output the agent info in JSON format.

  -t
    Format and display the agent info using a Go template.
";

pub fn run(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("agent-info", USAGE).bool("json").value("t");
    let parsed = flags.parse_with(args, 0, 0, "This command takes no arguments")?;
    let client = client(&parsed)?;
    let info = crate::block_on(client.agent().this())
        .map_err(|error| CommandError::call("querying agent info", error))?;
    if crate::output::json_or_template(&parsed, &info)? {
        return Ok(());
    }
    crate::out!("{}", format_stats(&info["stats"]));
    Ok(())
}

/// Each stats section's name, then its `  key = value` lines, both sorted.
fn format_stats(stats: &Value) -> String {
    let mut out = String::new();
    let Some(sections) = stats.as_object() else {
        return out;
    };
    let mut names: Vec<&String> = sections.keys().collect();
    names.sort();
    for name in names {
        out.push_str(name);
        out.push('\n');
        let Some(section) = sections[name].as_object() else {
            continue;
        };
        let mut keys: Vec<&String> = section.keys().collect();
        keys.sort();
        for key in keys {
            out.push_str(&format!("  {key} = {}\n", crate::ui::cell(&section[key])));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn sections_and_keys_are_sorted() {
        let stats =
            json!({"serf": {"members": "1"}, "nomad": {"server": "true", "leader": "true"}});
        assert_eq!(
            super::format_stats(&stats),
            "nomad\n  leader = true\n  server = true\nserf\n  members = 1\n"
        );
    }
}
