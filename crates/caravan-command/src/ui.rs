//! Output as Nomad's CLI writes it: columnized lists, `key = value` blocks,
//! short IDs, times and time differences, colors only on a terminal.

use std::io::IsTerminal;

use chrono::{DateTime, Local, TimeZone, Utc};

/// Length of an ID in lists unless `-verbose` (Nomad's `shortId`).
pub const SHORT_ID: usize = 8;

/// What a blank cell or value reads as (Nomad's columnize `Empty`), so a
/// script's `awk '{print $5}'` finds the same column on every row.
pub const EMPTY: &str = "<none>";

/// Rows as aligned columns, two spaces between them, the first row being
/// the header (Nomad's `formatList`). No rows at all is `<none>`; a blank
/// cell is `<none>`.
pub fn columns(rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return EMPTY.to_string();
    }
    let filled: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| match cell.trim().is_empty() {
                    true => EMPTY.to_string(),
                    false => cell.clone(),
                })
                .collect()
        })
        .collect();
    let rows = &filled;
    let count = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; count];
    for row in rows {
        for (index, cell) in row.iter().enumerate() {
            widths[index] = widths[index].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (index, cell) in row.iter().enumerate() {
            if index > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[index] - cell.chars().count();
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.pop();
    out
}

/// A header row and data rows, as [`columns`] takes them.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut all = vec![header.iter().map(|cell| cell.to_string()).collect()];
    all.extend(rows);
    columns(&all)
}

/// `key = value` lines with the `=` aligned (Nomad's `formatKV`); a blank
/// value is `<none>`.
pub fn kv(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(key, _)| key.chars().count())
        .max()
        .unwrap_or(0);
    pairs
        .iter()
        .map(|(key, value)| {
            let pad = width - key.chars().count();
            let value = match value.trim().is_empty() {
                true => EMPTY,
                false => value.as_str(),
            };
            format!("{key}{} = {value}", " ".repeat(pad))
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first `length` characters of `id` (all of it when shorter).
pub fn limit(id: &str, length: usize) -> &str {
    match id.char_indices().nth(length) {
        Some((end, _)) => &id[..end],
        None => id,
    }
}

/// An ID as lists show it: 8 characters, or all with `-verbose`.
pub fn short(id: &str, verbose: bool) -> &str {
    if verbose {
        id
    } else {
        limit(id, SHORT_ID)
    }
}

/// A Unix time in nanoseconds as Nomad prints times (RFC 3339, local).
pub fn format_unix_nanos(nanos: i64) -> String {
    if nanos == 0 {
        return "<none>".to_string();
    }
    format_time(&Utc.timestamp_nanos(nanos))
}

/// A time as Nomad prints it: `2006-01-02T15:04:05Z07:00` in local time.
pub fn format_time(time: &DateTime<Utc>) -> String {
    let local = time.with_timezone(&Local);
    // Go's `Z07:00`: `Z` for UTC, else the offset.
    match local.offset().local_minus_utc() {
        0 => local.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        _ => local.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
    }
}

/// How long ago `nanos` was, in the two largest units (`3m12s ago`), or
/// how far ahead (`25s from now`).
pub fn time_ago(nanos: i64) -> String {
    if nanos == 0 {
        return EMPTY.to_string();
    }
    let now = Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    let seconds = now.saturating_sub(nanos) / 1_000_000_000;
    match seconds < 0 {
        true => format!("{} from now", duration_text(seconds.unsigned_abs())),
        false => format!("{} ago", duration_text(seconds as u64)),
    }
}

/// Seconds as Nomad's rounded durations: the two largest units that are
/// not zero (`1h5m`, `2d3h`, `45s`, `1h7s`, `1m`).
pub fn duration_text(seconds: u64) -> String {
    let amounts = [
        (seconds / 86_400, "d"),
        (seconds % 86_400 / 3_600, "h"),
        (seconds % 3_600 / 60, "m"),
        (seconds % 60, "s"),
    ];
    let text: String = amounts
        .iter()
        .filter(|(amount, _)| *amount > 0)
        .take(2)
        .map(|(amount, unit)| format!("{amount}{unit}"))
        .collect();
    match text.is_empty() {
        true => "0s".to_string(),
        false => text,
    }
}

/// Writes a command's output. A reader that went away (`| head`) ends
/// the process with 141, the status a shell shows for a SIGPIPE death.
pub fn write_out(text: std::fmt::Arguments) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_fmt(text).and_then(|()| stdout.flush());
    match written {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
        Err(error) => {
            eprintln!("Error writing the output: {error}");
            std::process::exit(1)
        }
    }
}

/// Whether stdout is a terminal (live progress, colors).
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// A JSON value as a table cell: strings bare, null as empty.
pub fn cell(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_trim() {
        let rows = vec![
            vec!["ID".to_string(), "Status".to_string()],
            vec!["abc".to_string(), "running".to_string()],
        ];
        assert_eq!(columns(&rows), "ID   Status\nabc  running");
        let blank = vec![
            vec!["ID".to_string(), "Class".to_string(), "Status".to_string()],
            vec!["abc".to_string(), String::new(), "ready".to_string()],
        ];
        assert_eq!(columns(&blank), "ID   Class   Status\nabc  <none>  ready");
        assert_eq!(columns(&[]), "<none>");
    }

    #[test]
    fn kv_aligns_equals() {
        let text = kv(&[("ID", "x".into()), ("Status", "running".into())]);
        assert_eq!(text, "ID     = x\nStatus = running");
        assert_eq!(kv(&[("Class", String::new())]), "Class = <none>");
    }

    #[test]
    fn durations_take_two_units() {
        assert_eq!(duration_text(0), "0s");
        assert_eq!(duration_text(45), "45s");
        assert_eq!(duration_text(3 * 60 + 12), "3m12s");
        assert_eq!(duration_text(3_600 + 5 * 60 + 9), "1h5m");
        assert_eq!(duration_text(2 * 86_400 + 3_600 * 3), "2d3h");
        assert_eq!(duration_text(3_600), "1h");
        assert_eq!(duration_text(60), "1m");
        assert_eq!(duration_text(3_600 + 7), "1h7s");
    }

    #[test]
    fn short_ids() {
        assert_eq!(short("0123456789", false), "01234567");
        assert_eq!(short("0123456789", true), "0123456789");
        assert_eq!(limit("ab", 8), "ab");
    }
}
