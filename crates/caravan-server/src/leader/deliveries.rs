//! Nomad's nack and delivery limit for the table-backed broker: an
//! evaluation whose processing fails (the state did not catch up, the
//! Raft write failed, the scheduler erred or panicked) is handed out
//! again after a delay, 1 s then 20 s, and after its third failure it is
//! written `failed` ("evaluation reached delivery limit (3)") with a
//! `failed-follow-up` evaluation due 1 to 6 minutes later, so a job is
//! never stuck behind an evaluation that cannot succeed, nor retried in a
//! tight loop (scheduling.md §1.2, steps 7 and 9).
//!
//! The counts live on the leader for its term, as Nomad's broker keeps
//! them in memory: a new leader starts every evaluation afresh.

use std::collections::HashMap;
use std::time::Duration;

use caravan_api_types::eval::{Evaluation, EVAL_STATUS_FAILED, TRIGGER_FAILED_FOLLOW_UP};
use caravan_state::{new_eval, Command, State};
use rand::Rng;

/// Deliveries before an evaluation fails (Nomad's `EvalDeliveryLimit`).
pub const DELIVERY_LIMIT: u32 = 3;
const FIRST_REDELIVERY: Duration = Duration::from_secs(1);
const LATER_REDELIVERY: Duration = Duration::from_secs(20);
const FOLLOW_UP_BASELINE: Duration = Duration::from_secs(60);
const FOLLOW_UP_RANGE: Duration = Duration::from_secs(300);

/// Failed deliveries per evaluation, and when each may be handed out again.
#[derive(Default)]
pub(crate) struct Deliveries {
    failures: HashMap<String, u32>,
    held_until: HashMap<String, i64>,
}

impl Deliveries {
    /// Whether `eval_id` waits out a redelivery delay at `now`.
    pub(crate) fn held(&self, eval_id: &str, now: i64) -> bool {
        self.held_until
            .get(eval_id)
            .is_some_and(|until| *until > now)
    }

    /// How long until the next held evaluation may be handed out.
    pub(crate) fn next_release(&self, now: i64) -> Option<Duration> {
        self.held_until
            .values()
            .filter(|until| **until > now)
            .min()
            .map(|until| Duration::from_nanos((until - now) as u64))
    }

    /// The evaluation was processed: it is forgotten.
    pub(crate) fn succeeded(&mut self, eval_id: &str) {
        self.failures.remove(eval_id);
        self.held_until.remove(eval_id);
    }

    /// The evaluation's processing failed at `now`: it is held for a
    /// redelivery, or, at the limit, the write that fails it (with its
    /// follow-up, unless the job is gone) is returned.
    pub(crate) fn failed(&mut self, eval: &Evaluation, state: &State, now: i64) -> Option<Command> {
        let failures = self.failures.entry(eval.id.clone()).or_default();
        *failures += 1;
        if *failures < DELIVERY_LIMIT {
            let delay = if *failures == 1 {
                FIRST_REDELIVERY
            } else {
                LATER_REDELIVERY * (*failures - 1)
            };
            self.held_until
                .insert(eval.id.clone(), now.saturating_add(nanos(delay)));
            return None;
        }
        self.succeeded(&eval.id);
        let stored = state
            .eval(&eval.id)
            .map_or_else(|| eval.clone(), |e| (**e).clone());
        let follow_up = state.job(&eval.namespace, &eval.job_id).map(|job| {
            let jitter = rand::rng().random_range(Duration::ZERO..FOLLOW_UP_RANGE);
            let mut follow_up = new_eval(
                job,
                TRIGGER_FAILED_FOLLOW_UP,
                uuid::Uuid::new_v4().to_string(),
                now,
            );
            follow_up.previous_eval = eval.id.clone();
            follow_up.wait_until = chrono::DateTime::from_timestamp_nanos(
                now.saturating_add(nanos(FOLLOW_UP_BASELINE + jitter)),
            )
            .into();
            follow_up
        });
        let failed = Evaluation {
            status: EVAL_STATUS_FAILED.into(),
            status_description: format!("evaluation reached delivery limit ({DELIVERY_LIMIT})"),
            next_eval: follow_up.as_ref().map(|f| f.id.clone()).unwrap_or_default(),
            modify_time: now.max(stored.modify_time + 1),
            ..stored
        };
        Some(Command::EvalsUpsert {
            evals: std::iter::once(failed).chain(follow_up).collect(),
        })
    }
}

fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use caravan_api_types::job::Job;
    use caravan_state::job_commands::JobRegister;
    use caravan_state::StateStore;

    use super::*;

    #[test]
    fn a_failing_evaluation_is_held_then_failed_with_a_follow_up() {
        let store = StateStore::new();
        let job = Job {
            id: "web".into(),
            name: "web".into(),
            ..Job::default()
        };
        let eval = new_eval(&job, "job-register", "e1".into(), 1);
        store.apply(
            2,
            &Command::JobRegister(Box::new(JobRegister {
                job: std::sync::Arc::new(job),
                eval: Some(eval.clone()),
                enforce_index: None,
                namespace_checked: false,
            })),
        );
        let state = store.snapshot();
        let mut deliveries = Deliveries::default();
        let second = 1_000_000_000;
        assert!(deliveries.failed(&eval, &state, 0).is_none());
        assert!(deliveries.held("e1", second / 2));
        assert!(!deliveries.held("e1", second));
        assert_eq!(deliveries.next_release(0), Some(Duration::from_secs(1)));
        assert!(deliveries.failed(&eval, &state, second).is_none());
        assert!(deliveries.held("e1", 20 * second));
        assert!(!deliveries.held("e1", 21 * second));
        let Some(Command::EvalsUpsert { evals }) = deliveries.failed(&eval, &state, 21 * second)
        else {
            panic!("the third failure fails the evaluation");
        };
        assert_eq!(evals[0].id, "e1");
        assert_eq!(evals[0].status, "failed");
        assert_eq!(
            evals[0].status_description,
            "evaluation reached delivery limit (3)"
        );
        let follow_up = &evals[1];
        assert_eq!(evals[0].next_eval, follow_up.id);
        assert_eq!(follow_up.triggered_by, "failed-follow-up");
        assert_eq!(follow_up.previous_eval, "e1");
        assert_eq!(follow_up.status, "pending");
        let due = follow_up.wait_until.unwrap().timestamp() - 21;
        assert!((60..360).contains(&due), "{due}");
        // Forgotten once failed.
        assert!(!deliveries.held("e1", 21 * second));
    }
}
