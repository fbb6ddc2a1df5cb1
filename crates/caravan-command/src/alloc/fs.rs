//! `caravan alloc fs`: list, stat, print, tail or follow the files of an
//! allocation's directory.

use caravan_sdk::client_endpoints::{AllocFileInfo, Origin};
use chrono::{DateTime, Utc};

use super::logs::{copy_tail, tail_size};
use super::{ibytes, resolve, ShortId};
use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::ui;

const USAGE: &str = "Usage: caravan alloc fs [options] <allocation> <path>

  Inspect the allocation directory: a directory is listed, a file printed.

FS Specific Options:

  -H
    Machine friendly output: sizes in bytes.

  -verbose
    Show full-length IDs.

  -job
    Take the first argument as a job ID (or a prefix of one) rather than
    an allocation ID, and use one of the job's allocations, preferring a
    running one.

  -group <group-name>
    With -job, use an allocation of this task group.

  -stat
    Show the file's stat instead of its contents.

  -f
    Follow the file as it grows (until interrupted).

  -tail
    Show the file's end. Without -n or -c, the last 10 lines.

  -n <lines>, -c <bytes>
    With -tail, this many lines or bytes.
";

pub fn fs(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("alloc fs", USAGE)
        .bool("verbose")
        .bool("H")
        .bool("job")
        .value("group")
        .bool("stat")
        .bool("f")
        .bool("tail")
        .value("n")
        .value("c");
    let parsed = flags.parse(args)?;
    match parsed.args.len() {
        0 if parsed.bool("job") => return Err(flags.usage_error("A job ID is required")),
        0 => return Err(flags.usage_error("An allocation ID is required")),
        1 | 2 => {}
        _ => {
            return Err(
                flags.usage_error("This command takes one or two arguments: <allocation> [<path>]")
            )
        }
    }
    let path = parsed.arg(1).unwrap_or("/").to_string();
    let machine = parsed.bool("H");
    let tail = tail_size(&parsed, &flags)?;
    let client = parsed.client()?;
    crate::block_on(async {
        let ident = match parsed.bool("job") {
            true => {
                super::logs::job_alloc_id(&client, &parsed.args[0], parsed.get("group")).await?
            }
            false => parsed.args[0].clone(),
        };
        let alloc = resolve(&client, &ident, ShortId::AllocId, parsed.bool("verbose")).await?;
        let endpoints = client.client();
        let file = endpoints
            .stat_file(&alloc.id, &path)
            .await
            .map_err(|error| CommandError::failed(error.to_string()))?;
        if parsed.bool("stat") {
            let row = vec![
                file.file_mode.clone(),
                size_text(file.size, machine),
                modified(&file),
                file.content_type.clone(),
                display_name(&file),
            ];
            let header = ["Mode", "Size", "Modified Time", "Content Type", "Name"];
            crate::outln!("{}", ui::table(&header, vec![row]));
            return Ok(());
        }
        if file.is_dir {
            let files = endpoints
                .list_files(&alloc.id, &path)
                .await
                .map_err(|error| CommandError::call("listing alloc dir", error))?;
            let rows = files
                .iter()
                .map(|file| {
                    vec![
                        file.file_mode.clone(),
                        size_text(file.size, machine),
                        modified(file),
                        display_name(file),
                    ]
                })
                .collect();
            crate::outln!(
                "{}",
                ui::table(&["Mode", "Size", "Modified Time", "Name"], rows)
            );
            return Ok(());
        }
        let size = u64::try_from(file.size).unwrap_or(0);
        let offset = tail.offset.min(size);
        let (tailing, follow) = (parsed.bool("tail"), parsed.bool("f"));
        if follow {
            let (origin, offset, lines) = match tailing {
                true => (Origin::End, offset, tail.lines),
                false => (Origin::Start, 0, None),
            };
            let mut stream = endpoints
                .stream_file(&alloc.id, &path, origin, offset)
                .await
                .map_err(|error| CommandError::failed(format!("Error reading file: {error}")))?;
            return copy_tail(lines, offset, &mut stream)
                .await
                .map_err(|error| CommandError::failed(format!("error tailing file: {error}")));
        }
        // The file's bytes as they are: a binary file is not text.
        let doing = if tailing { "tailing" } else { "reading" };
        let failed = |error: caravan_sdk::Error| {
            CommandError::failed(format!("Error {doing} file: {error}"))
        };
        let mut stream = match tailing {
            false => endpoints.cat_stream(&alloc.id, &path).await,
            true => {
                endpoints
                    .read_at_stream(&alloc.id, &path, size - offset, None)
                    .await
            }
        }
        .map_err(failed)?;
        let lines = if tailing { tail.lines } else { None };
        copy_tail(lines, offset, &mut stream).await.map_err(failed)
    })
}

fn size_text(size: i64, machine: bool) -> String {
    match machine {
        true => size.to_string(),
        false => ibytes(u64::try_from(size).unwrap_or(0)),
    }
}

/// A directory's name ends in `/`.
fn display_name(file: &AllocFileInfo) -> String {
    match file.is_dir {
        true => format!("{}/", file.name),
        false => file.name.clone(),
    }
}

/// The modification time in Nomad's format (local time).
fn modified(file: &AllocFileInfo) -> String {
    DateTime::parse_from_rfc3339(&file.mod_time)
        .map(|time| ui::format_time(&time.with_timezone(&Utc)))
        .unwrap_or_else(|_| file.mod_time.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_as_nomad_lists_them() {
        let dir = AllocFileInfo {
            name: "alloc".into(),
            is_dir: true,
            size: 4096,
            ..AllocFileInfo::default()
        };
        assert_eq!(display_name(&dir), "alloc/");
        assert_eq!(size_text(dir.size, false), "4.0 KiB");
        assert_eq!(size_text(dir.size, true), "4096");
        let odd = AllocFileInfo {
            mod_time: "yesterday".into(),
            ..AllocFileInfo::default()
        };
        assert_eq!(modified(&odd), "yesterday");
    }
}
