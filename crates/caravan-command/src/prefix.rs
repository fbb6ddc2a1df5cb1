//! ID prefixes, resolved as Nomad's CLI resolves them: at least two
//! characters, an odd trailing hex digit dropped before the list call (the
//! API takes whole bytes), an exact match preferred, several matches listed
//! and the command failed.

use crate::error::CommandError;

/// The prefix to send for a UUID-keyed list (Nomad's `sanitizeUUIDPrefix`).
pub fn uuid_prefix(ident: &str) -> Result<String, CommandError> {
    if ident.chars().count() < 2 {
        return Err(CommandError::failed(
            "Identifier must contain at least two characters.",
        ));
    }
    let hex_digits = ident.chars().filter(|c| *c != '-').count();
    let mut prefix = ident.to_string();
    if hex_digits % 2 == 1 {
        prefix.pop();
    }
    Ok(prefix)
}

/// One object among those a prefix list returned.
///
/// `noun` is singular (`allocation`), `plural` its plural; `id_of` reads an
/// object's ID; `list` formats the matches when there are several.
pub fn pick<T>(
    items: Vec<T>,
    ident: &str,
    noun: &str,
    plural: &str,
    id_of: impl Fn(&T) -> &str,
    list: impl FnOnce(&[T]) -> String,
) -> Result<T, CommandError> {
    let multiple = format!("Prefix matched multiple {plural}");
    pick_or(items, ident, &multiple, id_of, list, || {
        CommandError::failed(format!("No {noun}(s) with prefix or id {ident:?} found"))
    })
}

/// [`pick`], with `multiple` the heading of the list of several matches
/// and `not_found` the failure when nothing matched.
///
/// An exact ID is preferred to the IDs it is a prefix of, but when several
/// objects have exactly that ID (jobs of different namespaces, listed with
/// `-namespace='*'`) none is picked: they are listed and the command fails,
/// as Nomad's `JobIDByPrefix` does, rather than act on whichever one the
/// server listed first.
pub fn pick_or<T>(
    mut items: Vec<T>,
    ident: &str,
    multiple: &str,
    id_of: impl Fn(&T) -> &str,
    list: impl FnOnce(&[T]) -> String,
    not_found: impl FnOnce() -> CommandError,
) -> Result<T, CommandError> {
    // The list call may have been sent a shorter prefix than typed.
    items.retain(|item| id_of(item).starts_with(ident));
    let exact = items.iter().filter(|item| id_of(item) == ident).count();
    if exact > 1 {
        items.retain(|item| id_of(item) == ident);
    } else if let Some(index) = items.iter().position(|item| id_of(item) == ident) {
        return Ok(items.swap_remove(index));
    }
    match items.len() {
        0 => Err(not_found()),
        1 => Ok(items.remove(0)),
        _ => Err(CommandError::failed(format!(
            "{multiple}\n\n{}",
            list(&items)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_prefixes_lose_a_digit() {
        assert_eq!(uuid_prefix("abc").unwrap(), "ab");
        assert_eq!(uuid_prefix("abcd").unwrap(), "abcd");
        assert_eq!(uuid_prefix("abcdefgh-1").unwrap(), "abcdefgh-");
        assert!(uuid_prefix("a").is_err());
    }

    #[test]
    fn exact_single_none_and_many() {
        let ids = |list: &[&str]| list.iter().map(|id| id.to_string()).collect::<Vec<_>>();
        #[allow(clippy::ptr_arg)] // `pick` hands each item as `&T`, here `&String`
        fn id_of(id: &String) -> &str {
            id.as_str()
        }
        let show = |items: &[String]| items.join("\n");
        let pick_from =
            |list: &[&str], ident: &str| pick(ids(list), ident, "job", "jobs", id_of, show);
        assert_eq!(pick_from(&["web", "web2"], "web").unwrap(), "web");
        assert_eq!(pick_from(&["abcd", "ab99"], "abc").unwrap(), "abcd");
        let none = pick_from(&[], "zz").unwrap_err().to_string();
        assert_eq!(none, "No job(s) with prefix or id \"zz\" found");
        let many = pick_from(&["web1", "web2"], "web").unwrap_err().to_string();
        assert_eq!(many, "Prefix matched multiple jobs\n\nweb1\nweb2");
    }

    #[test]
    fn one_exact_id_in_several_namespaces_is_not_picked() {
        // (namespace, ID) pairs, as a `-namespace='*'` job list holds them.
        let jobs = vec![("default", "web"), ("prod", "web"), ("prod", "web2")];
        let listed = pick(
            jobs.clone(),
            "web",
            "job",
            "jobs",
            |job| job.1,
            |jobs| {
                let rows: Vec<String> = jobs.iter().map(|(ns, id)| format!("{id} {ns}")).collect();
                rows.join("\n")
            },
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            listed,
            "Prefix matched multiple jobs\n\nweb default\nweb prod"
        );
        let one = pick(jobs, "web2", "job", "jobs", |job| job.1, |_| String::new());
        assert_eq!(one.unwrap(), ("prod", "web2"));
    }
}
