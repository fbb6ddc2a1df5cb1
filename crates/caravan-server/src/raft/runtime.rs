//! The async runtime openraft runs on: Tokio, with the randomness openraft
//! draws (election timeouts, tick jitter) taken from a generator that can
//! be seeded, so a simulation replays exactly from its seed.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use caravan_api_types::sync::lock;
use openraft::OptionalSend;
use openraft_rt_tokio::TokioRuntime;
use rand010::rngs::SmallRng;
use rand010::{RngExt, SeedableRng};

/// Where per-call generators come from: seeded from the OS unless a
/// simulation seeded it.
static SEEDS: Mutex<Option<SmallRng>> = Mutex::new(None);

/// Makes every later draw reproducible from `seed`.
pub fn seed_randomness(seed: u64) {
    let mut seeds = lock(&SEEDS);
    *seeds = Some(SmallRng::seed_from_u64(seed));
}

fn next_seed() -> u64 {
    let mut seeds = lock(&SEEDS);
    seeds.get_or_insert_with(rand010::make_rng).random()
}

/// Tokio with seedable randomness.
#[derive(Debug)]
pub struct CaravanRuntime {
    inner: TokioRuntime,
}

impl openraft::AsyncRuntime for CaravanRuntime {
    type JoinError = <TokioRuntime as openraft::AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> =
        <TokioRuntime as openraft::AsyncRuntime>::JoinHandle<T>;
    type Sleep = <TokioRuntime as openraft::AsyncRuntime>::Sleep;
    type Instant = <TokioRuntime as openraft::AsyncRuntime>::Instant;
    type TimeoutError = <TokioRuntime as openraft::AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> =
        <TokioRuntime as openraft::AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = SmallRng;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        TokioRuntime::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        SmallRng::seed_from_u64(next_seed())
    }

    type Mpsc = <TokioRuntime as openraft::AsyncRuntime>::Mpsc;
    type Watch = <TokioRuntime as openraft::AsyncRuntime>::Watch;
    type Oneshot = <TokioRuntime as openraft::AsyncRuntime>::Oneshot;
    type Mutex<T: OptionalSend + 'static> = <TokioRuntime as openraft::AsyncRuntime>::Mutex<T>;

    fn new(threads: usize) -> Self {
        Self {
            inner: TokioRuntime::new(threads),
        }
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.inner.block_on(future)
    }
}
