//! The pipeline's view of time: evaluations carry UnixNano times.

use caravan_api_types::eval::Evaluation;

/// Now, in UnixNano.
pub(crate) fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Whether an evaluation waits for a time still to come.
pub(crate) fn delayed(eval: &Evaluation, now: i64) -> bool {
    eval.wait_until
        .and_then(|until| until.timestamp_nanos_opt())
        .is_some_and(|until| until > now)
}
