//! Where new allocation and evaluation IDs come from. Injected, so a test
//! (or a simulation) gets the same plan every run.

/// Makes IDs for the allocations and evaluations a plan creates.
pub trait IdGenerator {
    fn next_id(&mut self) -> String;
}

/// Random UUID v4s: production.
#[derive(Debug, Default, Clone, Copy)]
pub struct UuidIds;

impl IdGenerator for UuidIds {
    fn next_id(&mut self) -> String {
        uuid::Uuid::new_v4().to_string()
    }
}

/// `00000000-0000-4000-8000-<counter>`: deterministic UUID-shaped IDs for
/// tests and simulations.
#[derive(Debug, Default, Clone)]
pub struct SequentialIds {
    next: u64,
}

impl SequentialIds {
    pub fn starting_at(next: u64) -> Self {
        Self { next }
    }
}

impl IdGenerator for SequentialIds {
    fn next_id(&mut self) -> String {
        self.next += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.next)
    }
}
