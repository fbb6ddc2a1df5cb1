//! `caravan job deployments [options] JOB`: the job's deployments, as
//! `nomad job deployments` lists them (none until deployments exist).

use serde_json::Value;

use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::output::json_or_template;
use crate::ui;

const USAGE: &str = "Usage: caravan job deployments [options] <job>

  List the job's deployments, newest first.

Deployments Options:

  -latest
    Display only the latest deployment.

  -all
    Include the deployments of jobs that were purged and registered again
    under the same ID.

  -json
    Output the deployments in their JSON format.

  -t
    Format and display the deployments using a Go template.

  -verbose
    Display full IDs.
";

pub fn deployments(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("job deployments", USAGE)
        .bool("latest")
        .bool("all")
        .bool("json")
        .value("t")
        .bool("verbose");
    let parsed = flags.parse_with(args, 1, 1, "This command takes one argument: <job>")?;
    let verbose = parsed.bool("verbose");
    let client = parsed.client()?;
    crate::block_on(async {
        let stub = super::resolve(&client, parsed.args[0].trim()).await?;
        let query = super::in_namespace(&stub.namespace);
        if parsed.bool("latest") {
            // The server's own choice of the latest (by create index); the
            // list's order is not guaranteed.
            let path = format!("/v1/job/{}/deployment", caravan_sdk::jobs::escape(&stub.id));
            let (latest, _): (Value, _) = client
                .get(&path, &[], &query)
                .await
                .map_err(|error| CommandError::call("retrieving deployment", error))?;
            if json_or_template(&parsed, &latest)? {
                return Ok(());
            }
            match latest.is_null() {
                true => crate::outln!("No deployment found"),
                false => crate::outln!("{}", table(&[latest], verbose)),
            }
            return Ok(());
        }
        let all = [("all", parsed.bool("all").to_string())];
        let path = format!(
            "/v1/job/{}/deployments",
            caravan_sdk::jobs::escape(&stub.id)
        );
        let (deployments, _): (Vec<Value>, _) = client
            .get(&path, &all, &query)
            .await
            .map_err(|error| CommandError::call("retrieving deployments", error))?;
        if json_or_template(&parsed, &deployments)? {
            return Ok(());
        }
        if deployments.is_empty() {
            crate::outln!("No deployments found");
            return Ok(());
        }
        crate::outln!("{}", table(&deployments, verbose));
        Ok(())
    })
}

/// Nomad's deployment list columns.
fn table(deployments: &[Value], verbose: bool) -> String {
    let rows = deployments
        .iter()
        .map(|deployment| {
            vec![
                ui::short(deployment["ID"].as_str().unwrap_or_default(), verbose).to_string(),
                ui::cell(&deployment["JobID"]),
                ui::cell(&deployment["JobVersion"]),
                ui::cell(&deployment["Status"]),
                ui::cell(&deployment["StatusDescription"]),
            ]
        })
        .collect();
    ui::table(
        &["ID", "Job ID", "Job Version", "Status", "Description"],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployments_list_as_nomad_lists_them() {
        let deployment = json!({"ID": "0123456789abcdef", "JobID": "web", "JobVersion": 2,
            "Status": "running", "StatusDescription": "Deployment is running"});
        assert_eq!(
            table(&[deployment], false),
            "ID        Job ID  Job Version  Status   Description\n01234567  web     2            running  Deployment is running"
        );
    }
}
