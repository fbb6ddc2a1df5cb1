//! Counting allocations per node property value: `spread` scoring and
//! `distinct_property` (Nomad's `propertySet`).

use std::collections::{BTreeMap, HashMap};

use caravan_api_types::job::Spread;
use caravan_api_types::node::Node;

use crate::feasible::constraint::resolve_target;

/// Allocations per value of one property.
#[derive(Debug, Clone, Default)]
pub struct PropertyCounts {
    pub property: String,
    pub counts: HashMap<String, u64>,
}

impl PropertyCounts {
    pub fn new(property: &str) -> Self {
        Self {
            property: property.to_string(),
            counts: HashMap::new(),
        }
    }

    pub fn value_of(&self, node: &Node) -> Option<String> {
        resolve_target(&self.property, node).map(|v| v.into_owned())
    }

    pub fn add(&mut self, node: &Node, delta: i64) {
        if let Some(value) = self.value_of(node) {
            let count = self.counts.entry(value).or_insert(0);
            *count = count.saturating_add_signed(delta);
        }
    }

    pub fn get(&self, value: &str) -> u64 {
        self.counts.get(value).copied().unwrap_or(0)
    }
}

/// One `spread` block with its desired counts and what is placed so far.
#[derive(Debug, Clone)]
pub struct SpreadScore {
    weight_share: f64,
    desired: BTreeMap<String, f64>,
    pub used: PropertyCounts,
}

impl SpreadScore {
    /// Job-level and group-level spreads together; `count` the group's.
    pub fn for_group(spreads: &[&Spread], count: i64) -> Vec<Self> {
        let sum: f64 = spreads.iter().map(|s| f64::from(s.weight)).sum();
        spreads
            .iter()
            .map(|spread| {
                let mut desired = BTreeMap::new();
                let mut sum_desired = 0.0;
                for target in spread.spread_target.iter().flatten() {
                    let want = f64::from(target.percent) / 100.0 * count as f64;
                    sum_desired += want;
                    desired.insert(target.value.clone(), want);
                }
                if !desired.is_empty() && sum_desired < count as f64 {
                    desired
                        .entry("*".to_string())
                        .or_insert(count as f64 - sum_desired);
                }
                Self {
                    weight_share: if sum > 0.0 {
                        f64::from(spread.weight) / sum
                    } else {
                        0.0
                    },
                    desired,
                    used: PropertyCounts::new(&spread.attribute),
                }
            })
            .collect()
    }

    /// This spread's boost for placing one more allocation on `node`.
    pub fn boost(&self, node: &Node, lowest: &mut f64) -> f64 {
        let Some(value) = self.used.value_of(node) else {
            return -1.0;
        };
        if self.desired.is_empty() {
            return self.even_boost(&value);
        }
        let used = self.used.get(&value) as f64 + 1.0;
        let Some(desired) = self
            .desired
            .get(&value)
            .or_else(|| self.desired.get("*"))
            .copied()
        else {
            return -1.0;
        };
        if desired == 0.0 {
            return *lowest;
        }
        let boost = (desired - used) / desired * self.weight_share;
        *lowest = lowest.min(boost);
        boost
    }

    /// Nomad's `evenSpreadScoreBoost`.
    fn even_boost(&self, value: &str) -> f64 {
        let counts = self.used.counts.values().filter(|c| **c > 0);
        let (mut min, mut max) = (0u64, 0u64);
        let mut any = false;
        for count in counts {
            any = true;
            if min == 0 || *count < min {
                min = *count;
            }
            if *count > max {
                max = *count;
            }
        }
        if !any {
            return 0.0;
        }
        let current = self.used.get(value);
        if current != min {
            if min == 0 {
                -1.0
            } else {
                (min as f64 - current as f64) / min as f64
            }
        } else if min == max {
            -1.0
        } else if min == 0 {
            1.0
        } else {
            (max - min) as f64 / min as f64
        }
    }
}

/// The sum of every spread's boost on `node`.
pub fn spread_boost(spreads: &[SpreadScore], node: &Node) -> f64 {
    let mut lowest = -1.0;
    spreads.iter().map(|s| s.boost(node, &mut lowest)).sum()
}
