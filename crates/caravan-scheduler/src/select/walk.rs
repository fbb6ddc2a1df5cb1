//! One selection: the walk over the shuffled nodes with the limit, or the
//! system stack's single node; and committing the node chosen.

use std::collections::HashSet;

use caravan_api_types::eval::AllocMetric;
use caravan_api_types::job::TaskGroup;

use super::counts::group_position;
use super::fitting::family_of;
use super::resources::build_resources;
use super::{Candidate, Chosen, Stack, MAX_SKIP};
use crate::metrics::TopScores;

impl Stack<'_> {
    /// Picks a node for one allocation of `group`, continuing the shuffled
    /// walk where the last selection stopped. `penalty` holds nodes the
    /// allocation failed on before. Only when no node fits as it is, and
    /// the job may preempt, is the walk made again with eviction allowed
    /// (so a node that needs no eviction always wins); if that fails too,
    /// the first walk's metrics describe the failure.
    pub fn select(
        &mut self,
        group: &TaskGroup,
        penalty: &HashSet<String>,
    ) -> (Option<Chosen>, AllocMetric) {
        let (chosen, metrics) = self.walk(group, penalty, false);
        if chosen.is_some() || !self.preemption {
            return (chosen, metrics);
        }
        match self.walk(group, penalty, true) {
            (Some(chosen), evicting) => (Some(chosen), evicting),
            (None, _) => (None, metrics),
        }
    }

    fn walk(
        &mut self,
        group: &TaskGroup,
        penalty: &HashSet<String>,
        evict: bool,
    ) -> (Option<Chosen>, AllocMetric) {
        let mut metrics = self.base_metrics();
        let mut top = TopScores::default();
        let limit = self.limit(group);
        let job = self.job.clone();
        let plan = self.group_plan(&job, group, penalty, true, evict);
        let total = self.nodes.len();
        let mut passed: Vec<Candidate> = Vec::new();
        let mut skipped: Vec<Candidate> = Vec::new();
        for _ in 0..total {
            let index = self.position;
            self.position = (self.position + 1) % total;
            let Some(candidate) = self.evaluate(index, &plan, &mut metrics, &mut top) else {
                continue;
            };
            if candidate.score <= 0.0 && skipped.len() < MAX_SKIP {
                skipped.push(candidate);
                continue;
            }
            passed.push(candidate);
            if passed.len() >= limit {
                break;
            }
        }
        let room = limit.saturating_sub(passed.len());
        passed.extend(skipped.into_iter().take(room));
        self.finish(group, passed, metrics, top)
    }

    /// The system stack: only `node`, binpack score only (and the
    /// preemption score when it evicts: a system job may evict whenever
    /// the node does not fit as it is and its type may preempt).
    pub fn select_node(
        &mut self,
        group: &TaskGroup,
        node_id: &str,
    ) -> (Option<Chosen>, AllocMetric) {
        let mut metrics = self.base_metrics();
        let mut top = TopScores::default();
        let mut passed = Vec::new();
        if let Some(index) = self.index_of.get(node_id).copied() {
            let none = HashSet::new();
            let job = self.job.clone();
            let plan = self.group_plan(&job, group, &none, false, self.preemption);
            passed.extend(self.evaluate(index, &plan, &mut metrics, &mut top));
        }
        self.finish(group, passed, metrics, top)
    }

    fn finish(
        &mut self,
        group: &TaskGroup,
        passed: Vec<Candidate>,
        mut metrics: AllocMetric,
        top: TopScores,
    ) -> (Option<Chosen>, AllocMetric) {
        if !top.records().is_empty() {
            let metas = top
                .records()
                .iter()
                .map(|r| r.to_meta(&self.nodes[r.node].id))
                .collect();
            metrics.score_meta_data = Some(metas);
        }
        // Highest score; ties keep the first seen.
        let best = passed
            .into_iter()
            .reduce(|best, next| if next.score > best.score { next } else { best });
        let Some(best) = best else {
            return (None, metrics);
        };
        // The victims' room is freed first: the fit was checked that way.
        for victim in &best.victims {
            if self.stop(victim) {
                *self.preempted.entry(family_of(victim)).or_insert(0) += 1;
            }
        }
        let node = self.nodes[best.node].clone();
        let resources = build_resources(
            group,
            &node,
            &best.cores,
            best.ports,
            self.options.memory_oversubscription,
        );
        let node_state = Self::node_state(
            &mut self.node_states[best.node],
            self.state,
            &self.stopped,
            &self.job,
            &node,
        );
        node_state.usage.commit(&resources);
        let position = group_position(&self.job, &group.name);
        node_state.job_groups.add(position, 1);
        self.count_placement(&group.name, &node, 1);
        let chosen = Chosen {
            node,
            resources,
            score: best.score,
            preempted: best.victims,
        };
        (Some(chosen), metrics)
    }
}
