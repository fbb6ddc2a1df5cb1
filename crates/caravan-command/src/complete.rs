//! Shell completion as Nomad's: bash's `complete -C caravan caravan` runs
//! the binary with `COMP_LINE` set, and it prints the candidate words one a
//! line. `caravan -autocomplete-install` adds that line to the user's
//! `~/.bashrc` (and `~/.zshrc`, through bash completion in zsh).

use std::path::{Path, PathBuf};

use crate::error::{CommandError, CommandResult};

/// The binary's own commands, which are not in [`crate::COMMANDS`]; and
/// Nomad's top-level aliases (`caravan run` is `caravan job run`).
const OWN_COMMANDS: &[&str] = &[
    "agent",
    "tls ca create",
    "tls cert create",
    "version",
    "node-sim",
    "operator gossip keyring generate",
    "operator keygen",
    "run",
    "stop",
    "init",
    "inspect",
    "validate",
    "exec",
    "logs",
    "fs",
];

/// The words a shell may complete `line` (the command line up to the
/// cursor) with: the next command word, or a flag of the command typed.
pub fn candidates(line: &str) -> Vec<String> {
    let mut words: Vec<&str> = line.split_whitespace().collect();
    // The word under the cursor: empty after a space.
    let partial = match line.ends_with(char::is_whitespace) || words.len() <= 1 {
        true => "",
        false => words.pop().unwrap_or_default(),
    };
    // The first word is the binary itself.
    let typed: Vec<&str> = words.into_iter().skip(1).collect();
    let mut found: Vec<String> = if partial.starts_with('-') {
        flags_of(&typed)
            .into_iter()
            .filter(|flag| flag.starts_with(partial))
            .collect()
    } else {
        command_paths()
            .filter_map(|path| {
                let path: Vec<&str> = path.split(' ').collect();
                let next = path.get(typed.len())?;
                let same = path.iter().zip(&typed).all(|(word, typed)| word == typed);
                (same && path.len() > typed.len() && next.starts_with(partial))
                    .then(|| next.to_string())
            })
            .collect()
    };
    found.sort();
    found.dedup();
    found
}

fn command_paths() -> impl Iterator<Item = &'static str> {
    crate::COMMANDS
        .iter()
        .map(|command| command.words)
        .chain(OWN_COMMANDS.iter().copied())
}

/// The flags of the command `typed` names, read from its usage text (a
/// command parses `-help` before anything else and answers with it).
fn flags_of(typed: &[&str]) -> Vec<String> {
    let args: Vec<String> = typed.iter().map(|word| word.to_string()).collect();
    let Some((command, rest)) = crate::find(&args) else {
        return Vec::new();
    };
    // Only when the flags come right after the command's words.
    if rest.iter().any(|arg| !arg.starts_with('-')) {
        return Vec::new();
    }
    let Err(CommandError::Usage { usage, .. }) = (command.run)(&["-help".to_string()]) else {
        return Vec::new();
    };
    usage
        .lines()
        .map(str::trim_start)
        .filter(|line| line.starts_with('-'))
        .flat_map(|line| line.split([',', ' ']))
        .filter_map(|item| {
            let name = item.trim().strip_prefix('-')?;
            let name = name.split(['=', '[']).next()?;
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            valid.then(|| format!("-{name}"))
        })
        .collect()
}

/// What marks a line this command added, so uninstalling removes those and
/// nothing the user wrote.
const MARKER: &str = "# added by caravan -autocomplete-install";

/// The line bash needs: `complete -C <this binary> caravan`. bash parses
/// the `-C` command again when it runs it, so a path that would need
/// quoting (twice) is refused rather than written half-quoted.
fn complete_line(binary: &Path) -> Result<String, CommandError> {
    let path = binary.display().to_string();
    let plain = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._+-".contains(c));
    if !plain {
        return Err(CommandError::failed(format!(
            "Error: the path of this binary ({path:?}) holds characters a completion line cannot carry safely; install caravan under a plain path, or add `complete -C <path> caravan` to your shell's startup file yourself"
        )));
    }
    Ok(format!("complete -C {path} caravan {MARKER}"))
}

/// zsh runs bash completions once this is loaded.
const ZSH_BASHCOMPINIT: &str = "autoload -U +X bashcompinit && bashcompinit";

/// A line without this command's marker.
fn unmarked(line: &str) -> &str {
    line.trim().trim_end_matches(MARKER).trim_end()
}

/// Whether `line` is a completion line for `caravan`, by any binary.
fn is_caravan_complete(line: &str) -> bool {
    let line = unmarked(line);
    line.starts_with("complete -C ") && line.ends_with(" caravan")
}

/// Adds (or with `uninstall`, removes) the completion line in `~/.bashrc`,
/// and in `~/.zshrc` when the user has one. Installing twice is harmless.
pub fn install(uninstall: bool) -> CommandResult {
    let home = std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| CommandError::failed("Error: HOME is not set"))?;
    let bashrc = home.join(".bashrc");
    let zshrc = home.join(".zshrc");
    if uninstall {
        for file in [bashrc, zshrc] {
            if file.exists() {
                crate::outln!("{}", remove_lines(&file)?);
            }
        }
        return Ok(());
    }
    let binary = std::env::current_exe().map_err(|error| {
        CommandError::failed(format!("Error finding the caravan binary: {error}"))
    })?;
    let line = complete_line(&binary)?;
    let mut files = vec![(bashrc, vec![line.clone()])];
    if zshrc.exists() {
        files.push((zshrc, vec![format!("{ZSH_BASHCOMPINIT} {MARKER}"), line]));
    }
    for (file, lines) in files {
        crate::outln!("{}", add_lines(&file, &lines)?);
    }
    Ok(())
}

fn read(file: &Path) -> Result<String, CommandError> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(error) => Err(CommandError::failed(format!(
            "Error reading {}: {error}",
            file.display()
        ))),
    }
}

/// Replaces `file`'s contents whole or not at all: a new file beside the
/// real one (a link is followed to it), with its permissions, synced, then
/// renamed over it. A full disk or a kill leaves the old file as it was.
fn write(file: &Path, text: &str) -> Result<(), CommandError> {
    use std::io::Write;
    let failed = |error: std::io::Error| {
        CommandError::failed(format!("Error writing {}: {error}", file.display()))
    };
    let target = match std::fs::canonicalize(file) {
        Ok(target) => target,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(file).is_ok() {
                return Err(CommandError::failed(format!(
                    "Error: {} is a link to a file that does not exist; not replacing it",
                    file.display()
                )));
            }
            file.to_path_buf()
        }
        Err(error) => return Err(failed(error)),
    };
    let existing = std::fs::metadata(&target).ok();
    // A new file would be owned by whoever runs this (`sudo` with the
    // user's HOME): someone else's startup file is left alone.
    if let Some(meta) = &existing {
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != nix::unistd::geteuid().as_raw() {
            return Err(CommandError::failed(format!(
                "Error: {} belongs to another user (uid {}); not changing it",
                file.display(),
                meta.uid()
            )));
        }
    }
    let permissions = existing.map(|meta| meta.permissions());
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".caravan-{}", std::process::id()));
    let temporary = target.with_file_name(name);
    let written = (|| {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)?;
        if let Some(permissions) = permissions {
            out.set_permissions(permissions)?;
        }
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
        std::fs::rename(&temporary, &target)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(failed)
}

fn add_lines(file: &Path, lines: &[String]) -> Result<String, CommandError> {
    let mut text = read(file)?;
    if text.lines().any(is_caravan_complete) {
        return Ok(format!(
            "Autocomplete for caravan is already installed in {}",
            file.display()
        ));
    }
    let newline = match text.contains("\r\n") {
        true => "\r\n",
        false => "\n",
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push_str(newline);
    }
    for line in lines {
        // A line the user already has (bashcompinit) is not added twice.
        if !text
            .lines()
            .any(|existing| unmarked(existing) == unmarked(line))
        {
            text.push_str(line);
            text.push_str(newline);
        }
    }
    write(file, &text)?;
    Ok(format!(
        "Autocomplete for caravan installed in {}; start a new shell to use it",
        file.display()
    ))
}

/// Removes the lines this command added (and any `complete -C ...
/// caravan`), keeping every other line and its line ending as it was.
fn remove_lines(file: &Path) -> Result<String, CommandError> {
    let text = read(file)?;
    let ours = |line: &str| is_caravan_complete(line) || line.trim_end().ends_with(MARKER);
    if !text.lines().any(ours) {
        return Ok(format!(
            "Autocomplete for caravan is not installed in {}",
            file.display()
        ));
    }
    let kept: String = text
        .split_inclusive('\n')
        .filter(|line| !ours(line))
        .collect();
    write(file, &kept)?;
    Ok(format!(
        "Autocomplete for caravan removed from {}",
        file.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_words() {
        assert!(candidates("caravan jo").contains(&"job".to_string()));
        assert_eq!(candidates("caravan job st"), ["status", "stop"]);
        let top = candidates("caravan ");
        for word in [
            "acl", "agent", "job", "operator", "server", "tls", "version",
        ] {
            assert!(top.contains(&word.to_string()), "{word}: {top:?}");
        }
        assert_eq!(candidates("caravan operator raft li"), ["list-peers"]);
        assert!(candidates("caravan job status x ").is_empty());
        assert!(candidates("caravan nothing").is_empty());
    }

    #[test]
    fn flags_come_from_usage() {
        let flags = candidates("caravan server members -");
        for flag in ["-detailed", "-json", "-verbose", "-t", "-address", "-token"] {
            assert!(flags.contains(&flag.to_string()), "{flag}: {flags:?}");
        }
        assert_eq!(candidates("caravan server members -det"), ["-detailed"]);
    }

    #[test]
    fn install_and_uninstall_edit_rc_files_once() {
        let dir = std::env::temp_dir().join(format!("caravan-complete-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(".bashrc");
        std::fs::write(&file, "export A=1").unwrap();
        assert!(complete_line(Path::new("/opt/my bin/caravan")).is_err());
        assert!(complete_line(Path::new("/opt/$(rm -rf ~)/caravan")).is_err());
        let line = complete_line(Path::new("/opt/bin/caravan")).unwrap();
        assert_eq!(
            line,
            format!("complete -C /opt/bin/caravan caravan {MARKER}")
        );
        add_lines(&file, std::slice::from_ref(&line)).unwrap();
        add_lines(&file, std::slice::from_ref(&line)).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text, format!("export A=1\n{line}\n"));
        remove_lines(&file).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "export A=1\n");
        // The user's own bashcompinit (zsh) stays; only ours goes.
        let zshrc = dir.join(".zshrc");
        std::fs::write(&zshrc, format!("{ZSH_BASHCOMPINIT}\r\nexport B=2\r\n")).unwrap();
        let lines = [format!("{ZSH_BASHCOMPINIT} {MARKER}"), line.clone()];
        add_lines(&zshrc, &lines).unwrap();
        let text = std::fs::read_to_string(&zshrc).unwrap();
        assert_eq!(
            text,
            format!("{ZSH_BASHCOMPINIT}\r\nexport B=2\r\n{line}\r\n")
        );
        remove_lines(&zshrc).unwrap();
        let text = std::fs::read_to_string(&zshrc).unwrap();
        assert_eq!(text, format!("{ZSH_BASHCOMPINIT}\r\nexport B=2\r\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
