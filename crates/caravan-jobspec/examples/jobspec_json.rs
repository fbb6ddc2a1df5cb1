//! Prints the api JSON of each jobspec named on the command line, like
//! `nomad job run -output`: `cargo run -p caravan-jobspec --example
//! jobspec_json -- job.nomad.hcl`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for path in std::env::args().skip(1) {
        let options = caravan_jobspec::ParseOptions {
            file_name: path.clone(),
            ..Default::default()
        };
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| caravan_jobspec::parse(&text, &options).map_err(|e| e.to_string()));
        match parsed {
            Ok(job) => println!("{}", serde_json::json!({ "Job": job })),
            Err(error) => {
                eprintln!("Failed to parse job: {error}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}
