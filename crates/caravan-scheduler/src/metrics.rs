//! Filling an `AllocMetric` the way Nomad's `EvalContext` metrics do.

use std::collections::BTreeMap;

use caravan_api_types::eval::{AllocMetric, NodeScoreMeta};
use caravan_api_types::node::Node;

/// How many nodes' scores `ScoreMetaData` keeps (Nomad: 5).
pub const TOP_SCORES: usize = 5;

fn bump(map: &mut Option<BTreeMap<String, i64>>, key: &str) {
    *map.get_or_insert_with(BTreeMap::new)
        .entry(key.to_string())
        .or_insert(0) += 1;
}

/// A feasibility rejection.
pub fn filter_node(metrics: &mut AllocMetric, node: &Node, reason: &str) {
    metrics.nodes_filtered += 1;
    if !node.node_class.is_empty() {
        bump(&mut metrics.class_filtered, &node.node_class);
    }
    if !reason.is_empty() {
        bump(&mut metrics.constraint_filtered, reason);
    }
}

/// A resource rejection.
pub fn exhaust_node(metrics: &mut AllocMetric, node: &Node, dimension: &str) {
    metrics.nodes_exhausted += 1;
    if !node.node_class.is_empty() {
        bump(&mut metrics.class_exhausted, &node.node_class);
    }
    bump(&mut metrics.dimension_exhausted, dimension);
}

/// Keeps the best [`TOP_SCORES`] nodes by normalized score.
#[derive(Debug, Default, Clone)]
pub struct TopScores(Vec<NodeScoreMeta>);

impl TopScores {
    pub fn offer(&mut self, meta: NodeScoreMeta) {
        if self.0.len() == TOP_SCORES
            && self
                .0
                .last()
                .is_some_and(|worst| worst.norm_score >= meta.norm_score)
        {
            return;
        }
        let at = self
            .0
            .iter()
            .position(|have| have.norm_score < meta.norm_score)
            .unwrap_or(self.0.len());
        self.0.insert(at, meta);
        self.0.truncate(TOP_SCORES);
    }

    pub fn into_vec(self) -> Vec<NodeScoreMeta> {
        self.0
    }
}
