//! The exec driver's cgroups: one per task, `<controller>/caravan/<name>`
//! under cgroup v1 (memory and cpu controllers) or `caravan/<name>` under
//! a v2 unified hierarchy. The cgroup limits the task's memory and CPU,
//! lists every process of the task (to signal and kill them all), counts
//! its OOM kills, and goes when the task is destroyed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::TaskResources;

/// Where the v2 unified hierarchy is when the host runs one.
const UNIFIED_ROOT: &str = "/sys/fs/cgroup";
/// The directory under each hierarchy holding the tasks' cgroups.
const PARENT: &str = "caravan";
const MIB: u64 = 1024 * 1024;

/// `v2` when the host runs the unified hierarchy at `/sys/fs/cgroup`, `v1`
/// when it mounts legacy controllers, `None` without any cgroup mount.
pub fn cgroup_version() -> Option<&'static str> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    let mounts = parse_mounts(&mounts);
    if mounts.iter().any(|mount| mount.is_unified_root()) {
        return Some("v2");
    }
    mounts
        .iter()
        .any(|mount| mount.fs_type == "cgroup")
        .then_some("v1")
}

/// One line of `/proc/mounts` that matters here.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    point: PathBuf,
    fs_type: String,
    options: Vec<String>,
}

impl Mount {
    fn is_unified_root(&self) -> bool {
        self.fs_type == "cgroup2" && self.point == Path::new(UNIFIED_ROOT)
    }
}

fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_source, point, fs_type, options) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            Some(Mount {
                point: PathBuf::from(point),
                fs_type: fs_type.to_string(),
                options: options.split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

/// Which hierarchy the task cgroups go in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// Mount points of the memory and cpu controllers (the same when they
    /// are mounted together).
    V1 {
        memory: PathBuf,
        cpu: PathBuf,
    },
    V2 {
        root: PathBuf,
    },
}

impl Hierarchy {
    /// The hierarchy this host offers the driver, or why there is none a
    /// task can be limited with.
    pub fn detect() -> Result<Self, String> {
        let mounts = std::fs::read_to_string("/proc/mounts")
            .map_err(|error| format!("cannot read /proc/mounts: {error}"))?;
        Self::from_mounts(&parse_mounts(&mounts), |root| {
            std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default()
        })
    }

    fn from_mounts(
        mounts: &[Mount],
        controllers_of: impl Fn(&Path) -> String,
    ) -> Result<Self, String> {
        if let Some(unified) = mounts.iter().find(|mount| mount.is_unified_root()) {
            let controllers = controllers_of(&unified.point);
            let has = |name: &str| controllers.split_whitespace().any(|c| c == name);
            if has("memory") && has("cpu") {
                return Ok(Self::V2 {
                    root: unified.point.clone(),
                });
            }
            return Err(format!(
                "the cgroup v2 hierarchy at {UNIFIED_ROOT} lacks the memory and cpu controllers (it has {:?})",
                controllers.trim()
            ));
        }
        let controller = |name: &str| {
            mounts
                .iter()
                .find(|mount| mount.fs_type == "cgroup" && mount.options.iter().any(|o| o == name))
                .map(|mount| mount.point.clone())
        };
        match (controller("memory"), controller("cpu")) {
            (Some(memory), Some(cpu)) => Ok(Self::V1 { memory, cpu }),
            (None, _) => Err("no cgroup memory controller is mounted".into()),
            (_, None) => Err("no cgroup cpu controller is mounted".into()),
        }
    }

    /// Where the task cgroup `name` (see [`cgroup_name`]) is, whether or
    /// not it exists.
    pub fn cgroup(&self, name: &str) -> TaskCgroup {
        match self {
            Self::V1 { memory, cpu } => {
                let mut dirs = vec![memory.join(PARENT).join(name)];
                if cpu != memory {
                    dirs.push(cpu.join(PARENT).join(name));
                }
                TaskCgroup { version: 1, dirs }
            }
            Self::V2 { root } => TaskCgroup {
                version: 2,
                dirs: vec![root.join(PARENT).join(name)],
            },
        }
    }

    /// Creates the cgroup `name` with the task's limits: the memory limit
    /// is `memory_max_mb` when larger than `memory_mb` (which is then the
    /// soft limit), the CPU weight follows the task's MHz as Nomad's
    /// shares do.
    pub fn create(&self, name: &str, resources: &TaskResources) -> Result<TaskCgroup, String> {
        let hard = resources.memory_mb.max(resources.memory_max_mb) * MIB;
        let soft = resources.memory_mb * MIB;
        // Nomad's minimum; the kernel refuses less than 2.
        let shares = resources.cpu.max(2);
        if let Self::V2 { root } = self {
            // Controllers must be enabled down to the parent of the
            // task's cgroup for its limit files to exist.
            enable_controllers(root)?;
            make_dir(&root.join(PARENT))?;
            enable_controllers(&root.join(PARENT))?;
        }
        let cgroup = self.cgroup(name);
        for dir in &cgroup.dirs {
            make_dir(dir)?;
        }
        let written = (|| match self {
            Self::V1 { .. } => {
                let memory = &cgroup.dirs[0];
                let cpu = cgroup.dirs.last().unwrap_or(memory);
                if hard > 0 {
                    write(&memory.join("memory.limit_in_bytes"), hard)?;
                    write(&memory.join("memory.soft_limit_in_bytes"), soft)?;
                    // With swap accounting the limit would otherwise only
                    // push the task into swap; without it the file is absent.
                    let swap = memory.join("memory.memsw.limit_in_bytes");
                    if swap.exists() {
                        write(&swap, hard)?;
                    }
                }
                write(&cpu.join("cpu.shares"), shares)
            }
            Self::V2 { .. } => {
                let dir = &cgroup.dirs[0];
                if hard > 0 {
                    write(&dir.join("memory.max"), hard)?;
                    if soft < hard {
                        write(&dir.join("memory.low"), soft)?;
                    }
                    let swap = dir.join("memory.swap.max");
                    if swap.exists() {
                        write(&swap, 0)?;
                    }
                }
                write(&dir.join("cpu.weight"), shares_to_weight(shares))
            }
        })();
        if let Err(error) = written {
            let _ = cgroup.remove();
            return Err(error);
        }
        Ok(cgroup)
    }
}

/// cpu.shares (2..=262144) to cpu.weight (1..=10000), as runc converts.
fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

fn enable_controllers(dir: &Path) -> Result<(), String> {
    let path = dir.join("cgroup.subtree_control");
    std::fs::write(&path, "+memory +cpu").map_err(|error| {
        format!(
            "cannot enable memory and cpu in {}: {error}",
            path.display()
        )
    })
}

fn make_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir)
        .map_err(|error| format!("cannot create cgroup {}: {error}", dir.display()))
}

fn write(path: &Path, value: u64) -> Result<(), String> {
    std::fs::write(path, value.to_string())
        .map_err(|error| format!("cannot write {value} to {}: {error}", path.display()))
}

/// How much of the task ID a cgroup name shows; the rest is in the hash.
const NAME_PREFIX: usize = 150;

/// The cgroup name of the task `task_id` (`<alloc_id>/<task>`):
/// `task-<alloc_id>.<task>-<hash>`, with anything but letters, digits,
/// `-`, `_` and `.` replaced, so a task name can never name another
/// directory. The readable part is cut to [`NAME_PREFIX`] characters and
/// sanitized, so two tasks could share it (`a b` and `a_b`, or two long
/// names alike at the start), and one task's start would kill the other's
/// cgroup: the hash of the whole ID tells them apart. The prefix always
/// holds the whole allocation ID (36 characters), so tasks of different
/// allocations never collide, whatever the hash does.
pub fn cgroup_name(task_id: &str) -> String {
    let name: String = task_id
        .replace('/', ".")
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '_',
        })
        .take(NAME_PREFIX)
        .collect();
    // `.` and `..` (and hidden names) are not cgroups of ours.
    format!("task-{name}-{:016x}", fnv1a(task_id.as_bytes()))
}

/// 64-bit FNV-1a: stable across builds and runs (a client restarted on a
/// newer binary finds the cgroups of the tasks it started), which std's
/// hashers do not promise.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One task's cgroup: a directory per v1 hierarchy (the memory one
/// first), or the one v2 directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCgroup {
    pub version: u8,
    pub dirs: Vec<PathBuf>,
}

impl TaskCgroup {
    /// Moves the calling process (and so everything it will start) into
    /// the cgroup.
    pub fn join_self(&self) -> std::io::Result<()> {
        for dir in &self.dirs {
            // `0` names the writer, whatever its pid namespace calls it.
            std::fs::write(dir.join("cgroup.procs"), "0")?;
        }
        Ok(())
    }

    /// The processes in the cgroup (host pids); none once it is gone.
    pub fn pids(&self) -> Vec<i32> {
        let Some(dir) = self.dirs.first() else {
            return Vec::new();
        };
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect()
    }

    /// SIGKILLs every process in the cgroup; returns how many there were.
    /// Callers repeat it until none is left: a process may fork meanwhile.
    pub fn kill_all(&self) -> usize {
        let pids = self.pids();
        for pid in &pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        pids.len()
    }

    /// Whether the kernel's OOM killer killed a process of the task.
    pub fn oom_killed(&self) -> bool {
        let Some(dir) = self.dirs.first() else {
            return false;
        };
        let file = match self.version {
            1 => "memory.oom_control",
            _ => "memory.events",
        };
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        counter(&text, "oom_kill") > 0
    }

    /// Removes the cgroup's directories; a cgroup still holding processes
    /// cannot be removed (`EBUSY`).
    pub fn remove(&self) -> std::io::Result<()> {
        for dir in &self.dirs {
            match std::fs::remove_dir(dir) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether any of its directories still exists.
    pub fn exists(&self) -> bool {
        self.dirs.iter().any(|dir| dir.exists())
    }
}

/// The value of `key` in a flat-keyed file (`key value` lines).
fn counter(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(' ')?;
            (name == key).then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0";

    #[test]
    fn v1_controllers_are_found_by_their_mount_options() {
        let hierarchy = Hierarchy::from_mounts(&parse_mounts(HYBRID), |_| String::new());
        assert_eq!(
            hierarchy,
            Ok(Hierarchy::V1 {
                memory: "/sys/fs/cgroup/memory".into(),
                cpu: "/sys/fs/cgroup/cpu".into()
            })
        );
        let no_memory = "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu,cpuacct 0 0";
        let error = Hierarchy::from_mounts(&parse_mounts(no_memory), |_| String::new());
        assert!(error.unwrap_err().contains("memory"));
    }

    #[test]
    fn v2_needs_memory_and_cpu_delegated() {
        let unified = parse_mounts("cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0");
        let found = Hierarchy::from_mounts(&unified, |_| "cpuset cpu io memory pids".into());
        assert_eq!(
            found,
            Ok(Hierarchy::V2 {
                root: "/sys/fs/cgroup".into()
            })
        );
        let error = Hierarchy::from_mounts(&unified, |_| "pids".into()).unwrap_err();
        assert!(error.contains("lacks the memory and cpu"), "{error}");
    }

    #[test]
    fn names_cannot_leave_the_parent() {
        assert!(cgroup_name("abc/web").starts_with("task-abc.web-"));
        assert!(cgroup_name("../../x").starts_with("task-......x-"));
        assert!(!cgroup_name("a/b c\n").contains(['/', ' ', '\n']));
        // Stable: a restarted client finds the cgroup by its name.
        assert_eq!(cgroup_name("abc/web"), cgroup_name("abc/web"));
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    /// Two long task names of one allocation alike in their first
    /// characters, or names alike once sanitized, get cgroups of their own.
    #[test]
    fn names_are_unique_per_task() {
        let alloc = "0b6e1a36-3b9e-4a7c-9a43-3f3c0a3c1d2e";
        let long = "x".repeat(300);
        let (a, b) = (
            cgroup_name(&format!("{alloc}/{long}-a")),
            cgroup_name(&format!("{alloc}/{long}-b")),
        );
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("task-{alloc}.xxx")), "{a}");
        // Well within the 255 bytes a directory name may have.
        assert!(a.len() <= 5 + NAME_PREFIX + 17, "{a}");
        assert_ne!(
            cgroup_name(&format!("{alloc}/a b")),
            cgroup_name(&format!("{alloc}/a_b"))
        );
    }

    #[test]
    fn weights_and_counters() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1024), 39);
        let events = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n";
        assert_eq!(counter(events, "oom_kill"), 2);
        assert_eq!(
            counter("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", "oom_kill"),
            0
        );
    }
}
