//! What `/proc/<pid>/stat` says about a process: its state, process group,
//! session and start time. The start time (field 22, clock ticks since
//! boot) tells a process from a later one that reused its pid.

use std::path::Path;

/// The fields of `/proc/<pid>/stat` the drivers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    /// `R`, `S`, `D`, `Z` (exited, not yet reaped), ...
    pub state: char,
    pub pgrp: i32,
    pub session: i32,
    pub start_time: u64,
}

impl ProcStat {
    /// Exited: a zombie waiting for its parent, or already being freed.
    pub fn exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses one `stat` line. The command name (field 2) is in parentheses
/// and may itself hold spaces and parentheses, so fields are counted from
/// the last `)`.
pub fn parse_stat(line: &str) -> Option<ProcStat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let pid = line[..open].trim().parse().ok()?;
    let rest: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state), so field N is rest[N - 3].
    Some(ProcStat {
        pid,
        state: rest.first()?.chars().next()?,
        pgrp: rest.get(2)?.parse().ok()?,
        session: rest.get(3)?.parse().ok()?,
        start_time: rest.get(19)?.parse().ok()?,
    })
}

/// The process `pid` as `/proc` shows it now, if it exists.
pub fn stat(pid: i32) -> Option<ProcStat> {
    stat_at(&Path::new("/proc").join(pid.to_string()))
}

fn stat_at(dir: &Path) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(dir.join("stat")).ok()?)
}

/// Whether `pid` is still the process that started at `start_time` and
/// has not exited.
pub fn is_running(pid: i32, start_time: u64) -> bool {
    stat(pid).is_some_and(|stat| stat.start_time == start_time && !stat.exited())
}

/// The processes of session `session` that have not exited. The caller
/// must know the number still names that session: its leader runs (with
/// the start time it recorded), or no process has that pid (Linux keeps a
/// pid reserved while any process still has it as its session).
pub fn running_session_members(session: i32) -> Vec<i32> {
    running_where(|stat| stat.session == session)
}

/// The processes of group `pgrp` in session `session` that have not
/// exited. The session check keeps a later, unrelated group that reused
/// the number out.
pub fn running_group_members(pgrp: i32, session: i32) -> Vec<i32> {
    running_where(|stat| stat.pgrp == pgrp && stat.session == session)
}

fn running_where(select: impl Fn(&ProcStat) -> bool) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            entry.file_name().to_str()?.parse::<i32>().ok()?;
            stat_at(&entry.path())
        })
        .filter(|stat| select(stat) && !stat.exited())
        .map(|stat| stat.pid)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_after_a_command_name_with_spaces_and_parentheses() {
        let line = "4242 (my (odd) name) S 1 4242 4000 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.pid, 4242);
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.pgrp, 4242);
        assert_eq!(stat.session, 4000);
        assert_eq!(stat.start_time, 987654);
        assert!(!stat.exited());
    }

    #[test]
    fn the_current_process_is_running_and_a_wrong_start_time_is_not() {
        let pid = std::process::id() as i32;
        let own = stat(pid).unwrap();
        assert!(is_running(pid, own.start_time));
        assert!(!is_running(pid, own.start_time + 1));
    }
}
