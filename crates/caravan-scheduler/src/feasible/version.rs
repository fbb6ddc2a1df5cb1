//! Version constraints: HashiCorp go-version's lenient versions and
//! constraint lists (`>= 1.2, < 2.0`, `~> 1.4`), and the strict SemVer
//! flavour `semver` uses (no `~>`, three segments).

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    segments: Vec<u64>,
    /// How many segments were written (`1.2` → 2), for `~>`.
    written: usize,
    pre: String,
}

impl Version {
    /// go-version's lenient parse: an optional `v`, 1+ numeric segments,
    /// then `-pre` and `+meta`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let (text, _meta) = text.split_once('+').unwrap_or((text, ""));
        let (core, pre) = text.split_once('-').unwrap_or((text, ""));
        if core.is_empty() {
            return None;
        }
        let segments: Vec<u64> = core
            .split('.')
            .map(|segment| segment.parse().ok())
            .collect::<Option<_>>()?;
        let written = segments.len();
        let mut segments = segments;
        while segments.len() < 3 {
            segments.push(0);
        }
        Some(Self {
            segments,
            written,
            pre: pre.to_string(),
        })
    }

    fn core_cmp(&self, other: &Self) -> Ordering {
        let len = self.segments.len().max(other.segments.len());
        for i in 0..len {
            let a = self.segments.get(i).copied().unwrap_or(0);
            let b = other.segments.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => continue,
                unequal => return unequal,
            }
        }
        Ordering::Equal
    }
}

fn pre_cmp(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        // A pre-release sorts below its release.
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        (false, false) => {}
    }
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.core_cmp(other)
            .then_with(|| pre_cmp(&self.pre, &other.pre))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Pessimistic,
}

/// Which syntax a constraint list is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// go-version (`version` operand).
    GoVersion,
    /// Strict SemVer 2.0 (`semver` operand).
    Semver,
}

/// A parsed constraint list: every entry must hold (comma means AND).
#[derive(Debug, Clone)]
pub struct Constraints(Vec<(Op, Version)>);

impl Constraints {
    pub fn parse(text: &str, flavor: Flavor) -> Option<Self> {
        let mut entries = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            let (op, rest) = [
                (">=", Op::Ge),
                ("<=", Op::Le),
                ("!=", Op::Ne),
                ("~>", Op::Pessimistic),
                (">", Op::Gt),
                ("<", Op::Lt),
                ("=", Op::Eq),
            ]
            .iter()
            .find_map(|(prefix, op)| part.strip_prefix(prefix).map(|rest| (*op, rest)))
            .unwrap_or((Op::Eq, part));
            if flavor == Flavor::Semver && op == Op::Pessimistic {
                return None;
            }
            let version = Version::parse(rest)?;
            if flavor == Flavor::Semver && version.written != 3 {
                return None;
            }
            entries.push((op, version));
        }
        if entries.is_empty() {
            return None;
        }
        Some(Self(entries))
    }

    pub fn matches(&self, version: &Version) -> bool {
        self.0.iter().all(|(op, wanted)| {
            // go-version: a pre-release only satisfies constraints that name
            // a pre-release of the same core version.
            if !version.pre.is_empty()
                && (wanted.pre.is_empty() || version.core_cmp(wanted) != Ordering::Equal)
            {
                return false;
            }
            match op {
                Op::Eq => version == wanted || version.cmp(wanted) == Ordering::Equal,
                Op::Ne => version.cmp(wanted) != Ordering::Equal,
                Op::Gt => version > wanted,
                Op::Lt => version < wanted,
                Op::Ge => version >= wanted,
                Op::Le => version <= wanted,
                Op::Pessimistic => {
                    let prefix = wanted.written.saturating_sub(1).max(1);
                    version >= wanted && version.segments[..prefix] == wanted.segments[..prefix]
                }
            }
        })
    }
}

/// `version`/`semver` operand: does `left` satisfy the constraint list?
pub fn satisfies(left: &str, constraints: &str, flavor: Flavor) -> bool {
    match (
        Version::parse(left),
        Constraints::parse(constraints, flavor),
    ) {
        (Some(version), Some(constraints)) => constraints.matches(&version),
        _ => false,
    }
}
