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

/// One node's scores as the stack computes them: named values without
/// allocating (turned into a [`NodeScoreMeta`] only if it makes the top).
#[derive(Debug, Clone, Copy)]
pub struct ScoreRecord {
    pub node: usize,
    pub scores: [(&'static str, f64); 6],
    pub len: usize,
    pub norm: f64,
}

impl ScoreRecord {
    pub fn new(node: usize) -> Self {
        Self {
            node,
            scores: [("", 0.0); 6],
            len: 0,
            norm: 0.0,
        }
    }

    pub fn push(&mut self, name: &'static str, value: f64) {
        if self.len < self.scores.len() {
            self.scores[self.len] = (name, value);
            self.len += 1;
        }
    }

    pub fn to_meta(&self, node_id: &str) -> NodeScoreMeta {
        NodeScoreMeta {
            node_id: node_id.to_string(),
            scores: self.scores[..self.len]
                .iter()
                .map(|(name, value)| (name.to_string(), *value))
                .collect(),
            norm_score: self.norm,
        }
    }
}

/// Keeps the best [`TOP_SCORES`] nodes by normalized score (ties: first
/// seen first).
#[derive(Debug, Default, Clone)]
pub struct TopScores(Vec<ScoreRecord>);

impl TopScores {
    pub fn offer(&mut self, record: ScoreRecord) {
        if self.0.len() == TOP_SCORES
            && self.0.last().is_some_and(|worst| worst.norm >= record.norm)
        {
            return;
        }
        let at = self
            .0
            .iter()
            .position(|have| have.norm < record.norm)
            .unwrap_or(self.0.len());
        self.0.insert(at, record);
        self.0.truncate(TOP_SCORES);
    }

    pub fn records(&self) -> &[ScoreRecord] {
        &self.0
    }
}
