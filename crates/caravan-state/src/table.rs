//! A generic table: rows in a persistent map plus declared secondary
//! indexes, maintained on every insert and remove and rebuilt when a
//! snapshot is read. Only the rows are serialised (exactly as a plain map of
//! them), so the indexes never reach a snapshot.
//!
//! Declaring a table is implementing [`Schema`]: its [`Table`] name, key
//! and value types, and its indexes as functions from a row to the index
//! values it files under (e.g. allocations by node: `|alloc| vec![alloc.node_id.clone()]`).
//! Every write records what it touched in a [`Touched`] set (the table, the
//! row, the old and new values of each index), which is what the store
//! fires watches for once the batch is published.

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;

use imbl::{OrdMap, OrdSet};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::state::Table;
use crate::watch::WatchKey;

/// One declared secondary index.
pub struct Index<V> {
    /// The name watch keys and lookups use.
    pub name: &'static str,
    /// The index values a row files under (none, one or several).
    pub values: fn(&V) -> Vec<String>,
}

/// What declares a table.
pub trait Schema: 'static {
    type Key: Ord + Clone + fmt::Display + Serialize + DeserializeOwned;
    type Value: Clone + PartialEq + Serialize + DeserializeOwned;
    /// The table's name, for its Raft index and its watches.
    const TABLE: Table;
    /// The secondary indexes, in a fixed order.
    fn indexes() -> &'static [Index<Self::Value>];
}

/// The keys a batch of writes touched.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Touched {
    keys: BTreeSet<WatchKey>,
}

impl Touched {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a change to `table` as a whole (every write does this).
    pub fn table(&mut self, table: Table) {
        self.keys.insert(WatchKey::Table(table));
    }

    pub fn insert(&mut self, key: WatchKey) {
        self.keys.insert(key);
    }

    pub fn extend(&mut self, other: Touched) {
        self.keys.extend(other.keys);
    }

    pub fn contains(&self, key: &WatchKey) -> bool {
        self.keys.contains(key)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The tables touched.
    pub fn tables(&self) -> impl Iterator<Item = Table> + '_ {
        self.keys.iter().filter_map(|key| match key {
            WatchKey::Table(table) => Some(*table),
            _ => None,
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &WatchKey> {
        self.keys.iter()
    }
}

/// Rows of `S` by key, with `S`'s indexes.
pub struct IndexedTable<S: Schema> {
    rows: OrdMap<S::Key, S::Value>,
    /// One map per declared index, in [`Schema::indexes`] order: index value
    /// → keys of the rows filed under it. Never serialised.
    indexes: Vec<OrdMap<String, OrdSet<S::Key>>>,
    schema: PhantomData<S>,
}

impl<S: Schema> Clone for IndexedTable<S> {
    fn clone(&self) -> Self {
        Self {
            rows: self.rows.clone(),
            indexes: self.indexes.clone(),
            schema: PhantomData,
        }
    }
}

impl<S: Schema> Default for IndexedTable<S> {
    fn default() -> Self {
        Self {
            rows: OrdMap::new(),
            indexes: S::indexes().iter().map(|_| OrdMap::new()).collect(),
            schema: PhantomData,
        }
    }
}

impl<S: Schema> PartialEq for IndexedTable<S> {
    fn eq(&self, other: &Self) -> bool {
        self.rows == other.rows && self.indexes == other.indexes
    }
}

impl<S: Schema> fmt::Debug for IndexedTable<S>
where
    S::Key: fmt::Debug,
    S::Value: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexedTable")
            .field("table", &S::TABLE)
            .field("rows", &self.rows)
            .field("indexes", &self.indexes)
            .finish()
    }
}

impl<S: Schema> IndexedTable<S> {
    /// A table holding `rows`, its indexes built from them.
    pub fn from_rows(rows: OrdMap<S::Key, S::Value>) -> Self {
        let mut table = Self {
            rows,
            ..Self::default()
        };
        let rows = table.rows.clone();
        for (key, value) in &rows {
            table.file(key, value, None);
        }
        table
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&S::Value>
    where
        Q: Ord + ?Sized,
        S::Key: Borrow<Q>,
    {
        self.rows.get(key)
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        Q: Ord + ?Sized,
        S::Key: Borrow<Q>,
    {
        self.rows.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Every row, in key order.
    pub fn values(&self) -> impl Iterator<Item = &S::Value> {
        self.rows.values()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&S::Key, &S::Value)> {
        self.rows.iter()
    }

    /// Rows from `from` on, in key order.
    pub fn range_from(&self, from: S::Key) -> impl Iterator<Item = (&S::Key, &S::Value)> {
        self.rows.range(from..)
    }

    /// The rows filed under `value` in the index named `index` (none for an
    /// unknown index), in key order.
    pub fn by_index<'a>(
        &'a self,
        index: &str,
        value: &str,
    ) -> impl Iterator<Item = &'a S::Value> + 'a {
        let keys = S::indexes()
            .iter()
            .position(|declared| declared.name == index)
            .and_then(|position| self.indexes[position].get(value));
        keys.into_iter()
            .flat_map(|keys| keys.iter())
            .filter_map(|key| self.rows.get(key))
    }

    /// The watch key of row `key`.
    pub fn row_key(key: &S::Key) -> WatchKey {
        WatchKey::Row(S::TABLE, key.to_string())
    }

    /// The watch key of index value `value` of index `index`.
    pub fn index_key(index: &'static str, value: &str) -> WatchKey {
        WatchKey::Index(S::TABLE, index, value.to_string())
    }

    /// Stores `value` under `key`, returning the row it replaced, and
    /// records the table, the row and every index value it left or joined.
    pub fn insert(
        &mut self,
        key: S::Key,
        value: S::Value,
        touched: &mut Touched,
    ) -> Option<S::Value> {
        let previous = self.rows.insert(key.clone(), value.clone());
        if let Some(previous) = &previous {
            self.unfile(&key, previous, Some(touched));
        }
        self.file(&key, &value, Some(touched));
        touched.table(S::TABLE);
        touched.insert(Self::row_key(&key));
        previous
    }

    /// Removes the row under `key` (recording it, as [`Self::insert`] does,
    /// if there was one).
    pub fn remove(&mut self, key: &S::Key, touched: &mut Touched) -> Option<S::Value> {
        let previous = self.rows.remove(key)?;
        self.unfile(key, &previous, Some(touched));
        touched.table(S::TABLE);
        touched.insert(Self::row_key(key));
        Some(previous)
    }

    fn file(&mut self, key: &S::Key, value: &S::Value, mut touched: Option<&mut Touched>) {
        for (position, index) in S::indexes().iter().enumerate() {
            for indexed in (index.values)(value) {
                if let Some(touched) = touched.as_deref_mut() {
                    touched.insert(Self::index_key(index.name, &indexed));
                }
                self.indexes[position]
                    .entry(indexed)
                    .or_default()
                    .insert(key.clone());
            }
        }
    }

    fn unfile(&mut self, key: &S::Key, value: &S::Value, mut touched: Option<&mut Touched>) {
        for (position, index) in S::indexes().iter().enumerate() {
            for indexed in (index.values)(value) {
                if let Some(touched) = touched.as_deref_mut() {
                    touched.insert(Self::index_key(index.name, &indexed));
                }
                let map = &mut self.indexes[position];
                if let Some(keys) = map.get_mut(&indexed) {
                    keys.remove(key);
                    if keys.is_empty() {
                        map.remove(&indexed);
                    }
                }
            }
        }
    }
}

/// Serialised as the plain map of rows, as the tables were before they had
/// indexes, so snapshots of either kind read back.
impl<S: Schema> Serialize for IndexedTable<S> {
    fn serialize<Se: Serializer>(&self, serializer: Se) -> Result<Se::Ok, Se::Error> {
        self.rows.serialize(serializer)
    }
}

impl<'de, S: Schema> Deserialize<'de> for IndexedTable<S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let rows = OrdMap::<S::Key, S::Value>::deserialize(deserializer)?;
        Ok(Self::from_rows(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Alloc {
        node: String,
        tags: Vec<String>,
    }

    struct Allocs;

    impl Schema for Allocs {
        type Key = String;
        type Value = Alloc;
        const TABLE: Table = Table::Allocs;
        fn indexes() -> &'static [Index<Alloc>] {
            &[
                Index {
                    name: "node",
                    values: |alloc| vec![alloc.node.clone()],
                },
                Index {
                    name: "tag",
                    values: |alloc| alloc.tags.clone(),
                },
            ]
        }
    }

    fn alloc(node: &str, tags: &[&str]) -> Alloc {
        Alloc {
            node: node.into(),
            tags: tags.iter().map(|tag| tag.to_string()).collect(),
        }
    }

    fn ids<'a>(values: impl Iterator<Item = &'a Alloc>) -> Vec<String> {
        values.map(|alloc| alloc.node.clone()).collect()
    }

    #[test]
    fn indexes_follow_inserts_and_removes_and_survive_a_round_trip() {
        let mut table = IndexedTable::<Allocs>::default();
        let mut touched = Touched::new();
        table.insert("a1".into(), alloc("n1", &["x", "y"]), &mut touched);
        table.insert("a2".into(), alloc("n1", &["y"]), &mut touched);
        table.insert("a3".into(), alloc("n2", &[]), &mut touched);
        assert_eq!(table.by_index("node", "n1").count(), 2);
        assert_eq!(ids(table.by_index("tag", "y")), ["n1", "n1"]);
        assert_eq!(table.by_index("nope", "n1").count(), 0);

        // Moving a1 to n2 records both nodes, the row and the table.
        let mut touched = Touched::new();
        table.insert("a1".into(), alloc("n2", &["x"]), &mut touched);
        for key in [
            WatchKey::Table(Table::Allocs),
            WatchKey::Row(Table::Allocs, "a1".into()),
            WatchKey::Index(Table::Allocs, "node", "n1".into()),
            WatchKey::Index(Table::Allocs, "node", "n2".into()),
            WatchKey::Index(Table::Allocs, "tag", "y".into()),
        ] {
            assert!(touched.contains(&key), "{key:?} not recorded");
        }
        assert!(!touched.contains(&WatchKey::Row(Table::Allocs, "a2".into())));
        assert_eq!(table.by_index("node", "n1").count(), 1);
        assert_eq!(table.by_index("node", "n2").count(), 2);

        let mut touched = Touched::new();
        assert!(table.remove(&"a2".into(), &mut touched).is_some());
        assert!(touched.contains(&WatchKey::Index(Table::Allocs, "node", "n1".into())));
        assert_eq!(table.by_index("node", "n1").count(), 0);
        // An empty index value leaves no entry behind.
        assert!(table.indexes[0].get("n1").is_none());
        let mut touched = Touched::new();
        assert!(table.remove(&"a2".into(), &mut touched).is_none());
        assert!(touched.is_empty());

        let json = serde_json::to_string(&table).unwrap();
        assert!(!json.contains("indexes"), "{json}");
        let back: IndexedTable<Allocs> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, table);
        assert_eq!(back.by_index("node", "n2").count(), 2);
    }
}
