//! Pre-encoded `GET /v1/nodes` entries, one per node and list shape.
//!
//! A node's entry depends only on the node and the `?resources`/`?os`
//! shape, and every change to a node gives it a new `ModifyIndex` (the FSM
//! stamps each write), so an entry encoded at one `ModifyIndex` is right
//! for as long as the node keeps it. After one node changes, the list of
//! 10,000 is 9,999 cached entries copied and one fresh encode instead of
//! walking and encoding every node's maps again.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use caravan_api_types::node::{Node, NodeListStubView};
use caravan_api_types::sync::lock;

/// One node's encoded entry and the indexes it was encoded at.
struct Stub {
    create_index: u64,
    modify_index: u64,
    bytes: Bytes,
}

impl Stub {
    /// A purged and re-registered node has new indexes too, so both are
    /// checked: the entry is the node's only if neither moved.
    fn is_for(&self, node: &Node) -> bool {
        self.create_index == node.create_index && self.modify_index == node.modify_index
    }
}

/// Entries by node ID, one map per list shape (`resources`, `os`).
#[derive(Default)]
pub struct NodeStubCache {
    shapes: Mutex<[HashMap<String, Stub>; 4]>,
}

impl NodeStubCache {
    /// Encodes `nodes` as the JSON array `/v1/nodes` answers, byte for byte
    /// what encoding the `NodeListStubView`s as one `Vec` gives, reusing
    /// each node's entry while its indexes are unchanged.
    ///
    /// `live` is the number of nodes in the state and `current(id)` the
    /// node stored under `id`: when the cache holds more entries than there
    /// are nodes, entries of removed or changed nodes are dropped, so the
    /// cache never outgrows the node table (times the shapes asked for).
    pub fn encode<'a>(
        &self,
        nodes: &[&Node],
        resources: bool,
        os: bool,
        live: usize,
        current: impl Fn(&str) -> Option<&'a Node>,
    ) -> Result<Bytes, serde_json::Error> {
        let shape = usize::from(resources) * 2 + usize::from(os);
        // The lock is held only to look up and to store, never while
        // encoding: a first list of 10,000 nodes takes tens of milliseconds
        // to encode, and other requests must not wait on it.
        let cached: Vec<Option<Bytes>> = {
            let shapes = lock(&self.shapes);
            nodes
                .iter()
                .map(|node| {
                    shapes[shape]
                        .get(&node.id)
                        .filter(|stub| stub.is_for(node))
                        .map(|stub| stub.bytes.clone())
                })
                .collect()
        };
        let mut parts = Vec::with_capacity(nodes.len());
        let mut fresh = Vec::new();
        for (node, cached) in nodes.iter().zip(cached) {
            let bytes = match cached {
                Some(bytes) => bytes,
                None => {
                    let view = NodeListStubView::of(node, resources, os);
                    let bytes = Bytes::from(serde_json::to_vec(&view)?);
                    fresh.push((*node, bytes.clone()));
                    bytes
                }
            };
            parts.push(bytes);
        }
        let mut shapes = lock(&self.shapes);
        let cache = &mut shapes[shape];
        for (node, bytes) in fresh {
            let stub = Stub {
                create_index: node.create_index,
                modify_index: node.modify_index,
                bytes,
            };
            cache.insert(node.id.clone(), stub);
        }
        if cache.len() > live {
            cache.retain(|id, stub| current(id).is_some_and(|node| stub.is_for(node)));
        }
        drop(shapes);
        let length = parts.iter().map(Bytes::len).sum::<usize>() + parts.len() + 2;
        let mut body = Vec::with_capacity(length);
        body.push(b'[');
        for (position, part) in parts.iter().enumerate() {
            if position > 0 {
                body.push(b',');
            }
            body.extend_from_slice(part);
        }
        body.push(b']');
        Ok(Bytes::from(body))
    }

    /// Entries held for one shape (for tests and figures).
    pub fn len(&self, resources: bool, os: bool) -> usize {
        lock(&self.shapes)[usize::from(resources) * 2 + usize::from(os)].len()
    }

    pub fn is_empty(&self) -> bool {
        lock(&self.shapes).iter().all(HashMap::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn node(id: &str, index: u64) -> Node {
        Node {
            id: id.to_string(),
            name: format!("node-{id}"),
            datacenter: "dc1".to_string(),
            http_addr: "127.0.0.9:4646".to_string(),
            status: "ready".to_string(),
            scheduling_eligibility: "eligible".to_string(),
            attributes: BTreeMap::from([
                ("os.name".to_string(), "debian".to_string()),
                ("nomad.version".to_string(), "1.10.0".to_string()),
            ]),
            create_index: index,
            modify_index: index,
            ..Node::default()
        }
    }

    /// What the list was before the cache: one encode of every view.
    fn whole(nodes: &[&Node], resources: bool, os: bool) -> Vec<u8> {
        let views: Vec<_> = nodes
            .iter()
            .map(|node| NodeListStubView::of(node, resources, os))
            .collect();
        serde_json::to_vec(&views).unwrap()
    }

    fn encode(cache: &NodeStubCache, nodes: &[Node], resources: bool, os: bool) -> Vec<u8> {
        let listed: Vec<&Node> = nodes.iter().collect();
        let current = |id: &str| nodes.iter().find(|node| node.id == id);
        let body = cache
            .encode(&listed, resources, os, nodes.len(), current)
            .unwrap();
        assert_eq!(
            body.as_ref(),
            whole(&listed, resources, os),
            "{resources} {os}"
        );
        body.to_vec()
    }

    #[test]
    fn every_shape_matches_one_encode_of_the_whole_list() {
        let cache = NodeStubCache::default();
        let nodes = vec![node("a", 1), node("b", 2), node("c", 3)];
        for resources in [false, true] {
            for os in [false, true] {
                encode(&cache, &nodes, resources, os);
                // Second time from the cache, still the same bytes.
                encode(&cache, &nodes, resources, os);
                assert_eq!(cache.len(resources, os), 3);
            }
        }
        assert_eq!(encode(&cache, &[], false, false), b"[]");
    }

    #[test]
    fn a_changed_node_is_encoded_again_and_a_removed_one_is_dropped() {
        let cache = NodeStubCache::default();
        let mut nodes = vec![node("a", 1), node("b", 2), node("c", 3)];
        let before = encode(&cache, &nodes, false, false);

        nodes[1].status = "down".to_string();
        nodes[1].modify_index = 4;
        let after = String::from_utf8(encode(&cache, &nodes, false, false)).unwrap();
        assert_ne!(before, after.as_bytes());
        assert!(after.contains(r#""ID":"b","#) && after.contains(r#""Status":"down""#));

        nodes.remove(2);
        let after = String::from_utf8(encode(&cache, &nodes, false, false)).unwrap();
        assert!(!after.contains(r#""ID":"c""#), "{after}");
        assert_eq!(
            cache.len(false, false),
            2,
            "the removed node's entry is gone"
        );

        // Purged and registered again at a later index: not the old entry.
        let mut again = node("a", 9);
        again.name = "renamed".to_string();
        nodes[0] = again;
        let after = String::from_utf8(encode(&cache, &nodes, false, false)).unwrap();
        assert!(after.contains("renamed"), "{after}");
    }

    #[test]
    fn a_page_lists_only_its_nodes_and_the_cache_stays_bounded() {
        let cache = NodeStubCache::default();
        let nodes = vec![node("a", 1), node("b", 2), node("c", 3)];
        let page: Vec<&Node> = nodes[1..2].iter().collect();
        let current = |id: &str| nodes.iter().find(|node| node.id == id);
        let body = cache.encode(&page, false, false, 3, current).unwrap();
        assert_eq!(body.as_ref(), whole(&page, false, false));
        encode(&cache, &nodes, false, false);
        // All but one removed: the next answer, whatever it lists, prunes.
        let left = vec![nodes[0].clone()];
        encode(&cache, &left, false, false);
        assert_eq!(cache.len(false, false), 1);
    }
}
