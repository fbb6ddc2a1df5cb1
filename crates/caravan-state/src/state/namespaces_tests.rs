//! The namespace rules the state machine keeps, whatever the HTTP layer
//! checked before the write.

use std::sync::Arc;

use caravan_api_types::job::Job;
use caravan_api_types::namespace::Namespace;

use crate::command::{Command, CommandResult};
use crate::job_commands::JobRegister;
use crate::StateStore;

fn namespace(name: &str) -> Namespace {
    Namespace {
        name: name.into(),
        ..Namespace::default()
    }
}

fn register(store: &StateStore, index: u64, namespace: &str) -> CommandResult {
    let job = Job {
        id: "app".into(),
        namespace: namespace.into(),
        job_type: "service".into(),
        ..Job::default()
    };
    store.apply(
        index,
        &Command::JobRegister(Box::new(JobRegister {
            job: Arc::new(job),
            eval: None,
            enforce_index: None,
            namespace_checked: true,
        })),
    )
}

#[test]
fn default_exists_from_the_start_and_is_never_deleted() {
    let store = StateStore::new();
    let state = store.snapshot();
    let default = state.namespace("default").unwrap();
    assert_eq!(default.description, "Default shared namespace");
    assert_eq!(state.namespaces().len(), 1);
    let refused = store.apply(
        1,
        &Command::NamespaceDelete {
            names: vec!["default".into()],
            region: "global".into(),
        },
    );
    assert_eq!(
        refused,
        CommandResult::Refused("can not delete default namespace".into())
    );
    // Rewritten, it keeps the cluster's create index.
    let mut described = namespace("default");
    described.description = "ours".into();
    store.apply(
        2,
        &Command::NamespaceUpsert {
            namespaces: vec![described],
        },
    );
    let stored = store.snapshot().namespace("default").unwrap();
    assert_eq!((stored.create_index, stored.modify_index), (1, 2));
    assert_eq!(stored.description, "ours");
}

#[test]
fn a_job_needs_its_namespace_and_keeps_it_from_deletion() {
    let store = StateStore::new();
    assert_eq!(
        register(&store, 1, "team"),
        CommandResult::Refused("job \"app\" is in nonexistent namespace \"team\"".into())
    );
    store.apply(
        2,
        &Command::NamespaceUpsert {
            namespaces: vec![namespace("team")],
        },
    );
    assert_eq!(register(&store, 3, "team"), CommandResult::Done);
    // A delete decided before the job arrived is refused when it applies.
    let refused = store.apply(
        4,
        &Command::NamespaceDelete {
            names: vec!["team".into()],
            region: "eu".into(),
        },
    );
    let CommandResult::Refused(text) = refused else {
        panic!("{refused:?}");
    };
    assert!(
        text.contains("namespace \"team\" has non-terminal jobs in regions: [eu]"),
        "{text}"
    );
    assert!(store.snapshot().namespace_exists("team"));
}

#[test]
fn an_invalid_namespace_is_refused_whole() {
    let store = StateStore::new();
    let result = store.apply(
        1,
        &Command::NamespaceUpsert {
            namespaces: vec![namespace("fine"), namespace("not fine")],
        },
    );
    assert!(matches!(result, CommandResult::Refused(_)), "{result:?}");
    assert!(!store.snapshot().namespace_exists("fine"));
}

#[test]
fn an_entry_from_before_namespaces_applies_as_it_did() {
    // Written before namespaces existed: not checked, so every server
    // replaying it reaches the same state.
    let store = StateStore::new();
    let job = Job {
        id: "old".into(),
        namespace: "legacy".into(),
        job_type: "batch".into(),
        ..Job::default()
    };
    let result = store.apply(
        1,
        &Command::JobRegister(Box::new(JobRegister {
            job: Arc::new(job),
            eval: None,
            enforce_index: None,
            namespace_checked: false,
        })),
    );
    assert_eq!(result, CommandResult::Done);
    assert!(store.snapshot().job("legacy", "old").is_some());
}

#[test]
fn the_snapshot_meta_section_names_no_table_an_older_release_lacks() {
    struct Sections(Vec<(String, Vec<Vec<u8>>)>);
    impl crate::SectionSink for Sections {
        fn section(&mut self, name: &str, _rows: u64) -> std::io::Result<()> {
            self.0.push((name.to_string(), Vec::new()));
            Ok(())
        }
        fn row(&mut self, bytes: &[u8]) -> std::io::Result<()> {
            if let Some((_, rows)) = self.0.last_mut() {
                rows.push(bytes.to_vec());
            }
            Ok(())
        }
    }
    let store = StateStore::new();
    store.apply(
        3,
        &Command::NamespaceUpsert {
            namespaces: vec![namespace("team")],
        },
    );
    let state = store.snapshot();
    let mut sections = Sections(Vec::new());
    state.write_sections(&mut sections).unwrap();
    let (name, rows) = &sections.0[0];
    assert_eq!(name, crate::snapshot::SECTION_META);
    let meta: serde_json::Value = crate::codec::decode(&rows[0]).unwrap();
    assert!(!meta.to_string().contains("Namespaces"), "{meta}");
    assert!(sections
        .0
        .iter()
        .any(|(name, rows)| name == "namespaces" && rows.len() == 1));
}
