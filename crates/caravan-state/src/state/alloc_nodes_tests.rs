use std::sync::Arc;

use caravan_api_types::alloc::Allocation;
use caravan_api_types::eval::TRIGGER_JOB_REGISTER;
use caravan_api_types::job::{Job, Task, TaskGroup};

use crate::job_commands::{JobRegister, PlanResult};
use crate::snapshot::SECTION_ALLOC_NODE_INDEXES;
use crate::ALLOCS_BY_NODE;
use crate::{new_eval, Command, SectionSink, State, StateRestore, StateStore, Table, WatchKey};

fn job() -> Job {
    Job {
        id: "web".into(),
        name: "web".into(),
        task_groups: vec![TaskGroup {
            name: "web".into(),
            count: 3,
            tasks: vec![Task {
                name: "app".into(),
                driver: "raw_exec".into(),
                ..Task::default()
            }],
            ..TaskGroup::default()
        }],
        ..Job::default()
    }
}

fn alloc(id: &str, node: &str) -> Allocation {
    Allocation {
        id: id.into(),
        namespace: "default".into(),
        eval_id: "e1".into(),
        name: format!("web.web[{id}]"),
        node_id: node.into(),
        job_id: "web".into(),
        task_group: "web".into(),
        desired_status: "run".into(),
        client_status: "complete".into(),
        ..Allocation::default()
    }
}

fn place(store: &StateStore, index: u64, allocs: Vec<Allocation>) {
    store.apply(
        index,
        &Command::PlanApply(Box::new(PlanResult {
            job: None,
            allocs,
            stops: vec![],
            evals: vec![],
            now: 1,
        })),
    );
}

fn remove(store: &StateStore, index: u64, allocs: &[&str]) {
    store.apply(
        index,
        &Command::EvalsDelete {
            evals: vec![],
            allocs: allocs.iter().map(|id| id.to_string()).collect(),
        },
    );
}

/// A store with job `web` (index 5) and allocations a1, a2 on n1 and b1
/// on n2 (index 6).
fn store() -> StateStore {
    let store = StateStore::new();
    let spec = job();
    store.apply(
        5,
        &Command::JobRegister(Box::new(JobRegister {
            eval: Some(new_eval(&spec, TRIGGER_JOB_REGISTER, "e1".into(), 1)),
            job: Arc::new(spec),
            enforce_index: None,
            namespace_checked: false,
        })),
    );
    place(
        &store,
        6,
        vec![alloc("a1", "n1"), alloc("a2", "n1"), alloc("b1", "n2")],
    );
    store
}

#[test]
fn a_removal_moves_the_nodes_index_forward_and_fires_its_watch() {
    let store = store();
    assert_eq!(store.snapshot().node_allocs_index("n1"), 6);
    // Another node's write leaves n1 where it was.
    place(&store, 7, vec![alloc("b2", "n2")]);
    let state = store.snapshot();
    assert_eq!(
        (state.node_allocs_index("n1"), state.node_allocs_index("n2")),
        (6, 7)
    );

    let watch = store.watch_keys(&[WatchKey::Index(Table::Allocs, ALLOCS_BY_NODE, "n1".into())]);
    remove(&store, 8, &["a1"]);
    assert!(watch.has_fired(), "a removal wakes the node's queries");
    let state = store.snapshot();
    assert_eq!(state.allocs_by_node("n1").count(), 1);
    // The remaining allocation's ModifyIndex is still 6: the node's index
    // is the removal's.
    assert_eq!(state.alloc("a2").map(|alloc| alloc.modify_index), Some(6));
    assert_eq!(state.node_allocs_index("n1"), 8);
    assert_eq!(state.node_allocs_index("n2"), 7);

    // The last one gone, the node answers the table's index, which never
    // goes back.
    remove(&store, 9, &["a2"]);
    let state = store.snapshot();
    assert!(!state.alloc_node_indexes.contains_key("n1"));
    assert_eq!(state.node_allocs_index("n1"), 9);
    place(&store, 10, vec![alloc("b3", "n2")]);
    assert_eq!(store.snapshot().node_allocs_index("n1"), 10);
    // A node that never had any answers the table's index too.
    assert_eq!(store.snapshot().node_allocs_index("n9"), 10);
}

/// Sections kept in memory, as the snapshot file would hold them.
#[derive(Default)]
struct Sections(Vec<(String, Vec<Vec<u8>>)>);

impl SectionSink for Sections {
    fn section(&mut self, name: &str, _rows: u64) -> std::io::Result<()> {
        self.0.push((name.to_string(), Vec::new()));
        Ok(())
    }
    fn row(&mut self, encoded: &[u8]) -> std::io::Result<()> {
        if let Some((_, rows)) = self.0.last_mut() {
            rows.push(encoded.to_vec());
        }
        Ok(())
    }
}

fn restore(sections: &Sections, skip: Option<&str>) -> State {
    let mut restore = StateRestore::new();
    for (name, rows) in sections
        .0
        .iter()
        .filter(|(name, _)| Some(name.as_str()) != skip)
    {
        let mut rows = rows.iter();
        restore
            .section(name, rows.len() as u64, |buffer| {
                buffer.clear();
                buffer.extend_from_slice(rows.next().map_or(&[][..], Vec::as_slice));
                Ok(())
            })
            .unwrap();
    }
    restore.finish()
}

#[test]
fn the_indexes_survive_a_snapshot_and_an_older_one_never_answers_lower() {
    let store = store();
    remove(&store, 8, &["a1"]);
    place(&store, 9, vec![alloc("b2", "n2")]);
    let state = store.snapshot();
    let mut sections = Sections::default();
    state.write_sections(&mut sections).unwrap();

    let back = restore(&sections, None);
    assert_eq!(back, *state);
    assert_eq!(back.node_allocs_index("n1"), 8);

    // A snapshot written before the entries were kept: every node answers
    // the table's index, at least what it answered before.
    let old = restore(&sections, Some(SECTION_ALLOC_NODE_INDEXES));
    for node in ["n1", "n2", "n3"] {
        assert!(old.node_allocs_index(node) >= state.node_allocs_index(node));
    }
    assert_eq!(old.node_allocs_index("n1"), 9);

    // The JSON form (version 1 and 2 snapshots) keeps them as well.
    let bytes = serde_json::to_vec(&*state).unwrap();
    let restored = StateStore::new();
    restored.restore(&bytes).unwrap();
    assert_eq!(restored.snapshot().node_allocs_index("n1"), 8);
}
