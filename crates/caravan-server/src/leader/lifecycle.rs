//! The leadership lifecycle: the duties a leader carries out (heartbeat
//! timers, the drainer, autopilot; later the eval broker, blocked evals,
//! the plan applier, the deployment watcher and GC) start together once
//! this server's leadership is established for a term, and stop together
//! when that term's leadership ends.
//!
//! A duty is registered once ([`Leadership::register`] with a
//! [`LeaderDuty`], or [`Leadership::register_fn`] with an async closure).
//! Each term it is started with a [`LeaderToken`] carrying the term; when
//! the term ends the token is cancelled, the duty's future is dropped at
//! its next `.await` (so a duty never acts for a term that is over), and
//! [`Leadership::stop`] returns only once every duty has stopped.

use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A duty's licence to act for one term of leadership.
#[derive(Debug, Clone)]
pub struct LeaderToken {
    term: u64,
    cancelled: watch::Receiver<bool>,
}

impl LeaderToken {
    /// A token for `term` and the handle that cancels it.
    pub fn new(term: u64) -> (TermCancel, LeaderToken) {
        let (sender, receiver) = watch::channel(false);
        (
            TermCancel(sender),
            LeaderToken {
                term,
                cancelled: receiver,
            },
        )
    }

    /// The term this token was issued for.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// Whether the term has ended.
    pub fn is_cancelled(&self) -> bool {
        *self.cancelled.borrow()
    }

    /// Resolves once the term has ended (at once if it already has).
    pub async fn cancelled(&self) {
        let mut receiver = self.cancelled.clone();
        // An error means the cancel handle is gone: the term is over too.
        receiver.wait_for(|cancelled| *cancelled).await.ok();
    }
}

/// Ends a [`LeaderToken`]'s term; dropping it ends the term as well.
#[derive(Debug)]
pub struct TermCancel(watch::Sender<bool>);

impl TermCancel {
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }
}

impl Drop for TermCancel {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Something the leader does for as long as it leads. `C` is what the duty
/// works with (the server, or a narrower view of it).
pub trait LeaderDuty<C>: Send + Sync + 'static {
    /// A name for logs.
    fn name(&self) -> &'static str;
    /// Does the duty for `token`'s term; may return early, and is dropped
    /// at its next `.await` once the token is cancelled.
    fn run(&self, context: C, token: LeaderToken) -> BoxFuture<'static, ()>;
}

/// A duty given as an async function.
struct FnDuty<F> {
    name: &'static str,
    run: F,
}

impl<C, F, Fut> LeaderDuty<C> for FnDuty<F>
where
    F: Fn(C, LeaderToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn run(&self, context: C, token: LeaderToken) -> BoxFuture<'static, ()> {
        Box::pin((self.run)(context, token))
    }
}

/// The duties of one term, while they run.
struct Term {
    term: u64,
    cancel: TermCancel,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

/// Every registered duty, and the term they run for (if any).
pub struct Leadership<C> {
    duties: Mutex<Vec<Arc<dyn LeaderDuty<C>>>>,
    running: Mutex<Option<Term>>,
}

impl<C> Default for Leadership<C> {
    fn default() -> Self {
        Self {
            duties: Mutex::new(Vec::new()),
            running: Mutex::new(None),
        }
    }
}

impl<C: Clone + Send + 'static> Leadership<C> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a duty; it runs from the next established term on.
    pub fn register(&self, duty: impl LeaderDuty<C>) {
        caravan_api_types::sync::lock(&self.duties).push(Arc::new(duty));
    }

    /// Adds a duty given as an async function of the context and token.
    pub fn register_fn<F, Fut>(&self, name: &'static str, run: F)
    where
        F: Fn(C, LeaderToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.register(FnDuty { name, run });
    }

    /// The names of the registered duties.
    pub fn duty_names(&self) -> Vec<&'static str> {
        caravan_api_types::sync::lock(&self.duties)
            .iter()
            .map(|duty| duty.name())
            .collect()
    }

    /// The term the duties run for, or `None` while they are stopped.
    pub fn term(&self) -> Option<u64> {
        caravan_api_types::sync::lock(&self.running)
            .as_ref()
            .map(|term| term.term)
    }

    /// Starts every duty for `term`. Duties still running for an earlier
    /// term are cancelled first (without waiting: call [`Self::stop`]
    /// before to wait for them).
    pub fn start(&self, context: C, term: u64) {
        let (cancel, token) = LeaderToken::new(term);
        let duties: Vec<Arc<dyn LeaderDuty<C>>> =
            caravan_api_types::sync::lock(&self.duties).clone();
        let tasks = duties
            .into_iter()
            .map(|duty| {
                let name = duty.name();
                let work = duty.run(context.clone(), token.clone());
                let token = token.clone();
                let task = tokio::spawn(async move {
                    tracing::debug!(duty = name, term, "leader duty started");
                    // Biased: a simulation must replay branch choices from its seed.
                    tokio::select! {
                        biased;
                        _ = token.cancelled() => {}
                        _ = work => {}
                    }
                    tracing::debug!(duty = name, term, "leader duty stopped");
                });
                (name, task)
            })
            .collect();
        let previous = caravan_api_types::sync::lock(&self.running).replace(Term {
            term,
            cancel,
            tasks,
        });
        if let Some(previous) = previous {
            previous.cancel.cancel();
        }
    }

    /// Cancels the running term's duties and waits until every one has
    /// stopped; returns the term that ended.
    pub async fn stop(&self) -> Option<u64> {
        let running = caravan_api_types::sync::lock(&self.running).take()?;
        running.cancel.cancel();
        for (name, task) in running.tasks {
            if let Err(error) = task.await {
                if error.is_panic() {
                    tracing::error!(duty = name, term = running.term, "leader duty panicked");
                }
            }
        }
        Some(running.term)
    }

    /// Cancels and aborts the running duties without waiting (shutdown).
    pub fn abort(&self) {
        if let Some(running) = caravan_api_types::sync::lock(&self.running).take() {
            running.cancel.cancel();
            for (_, task) in running.tasks {
                task.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// What the test duties saw: (term, "start" or "stop").
    type Log = Arc<Mutex<Vec<(u64, &'static str)>>>;

    struct Recorder;

    /// Records the duty's end when its future is dropped.
    struct Stopped(Log, u64);

    impl Drop for Stopped {
        fn drop(&mut self) {
            self.0.lock().unwrap().push((self.1, "stop"));
        }
    }

    impl LeaderDuty<Log> for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }

        fn run(&self, log: Log, token: LeaderToken) -> BoxFuture<'static, ()> {
            Box::pin(async move {
                log.lock().unwrap().push((token.term(), "start"));
                let _stopped = Stopped(Arc::clone(&log), token.term());
                token.cancelled().await;
            })
        }
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn duties_start_with_a_term_and_stop_when_it_ends() {
        let leadership = Leadership::<Log>::new();
        leadership.register(Recorder);
        let log: Log = Arc::default();
        assert_eq!(leadership.term(), None);

        leadership.start(Arc::clone(&log), 3);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(leadership.term(), Some(3));
        assert_eq!(*log.lock().unwrap(), vec![(3, "start")]);

        assert_eq!(leadership.stop().await, Some(3));
        assert_eq!(leadership.term(), None);
        // `stop` returned only after the duty had finished.
        assert_eq!(leadership.stop().await, None);
        assert_eq!(*log.lock().unwrap(), vec![(3, "start"), (3, "stop")]);

        leadership.start(Arc::clone(&log), 5);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(log.lock().unwrap().last(), Some(&(5, "start")));
        leadership.stop().await;
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_duty_of_term_t_is_cancelled_when_term_t_ends() {
        let leadership = Leadership::<()>::new();
        let tokens: Arc<Mutex<Vec<LeaderToken>>> = Arc::default();
        let ticks: Arc<Mutex<Vec<u64>>> = Arc::default();
        let (seen, counted) = (Arc::clone(&tokens), Arc::clone(&ticks));
        // A duty that ignores its token: stopping must still end it.
        leadership.register_fn("ticker", move |(), token: LeaderToken| {
            seen.lock().unwrap().push(token.clone());
            let ticks = Arc::clone(&counted);
            async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    ticks.lock().unwrap().push(token.term());
                }
            }
        });
        assert_eq!(leadership.duty_names(), vec!["ticker"]);

        leadership.start((), 7);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let first = tokens.lock().unwrap()[0].clone();
        assert_eq!(first.term(), 7);
        assert!(!first.is_cancelled());
        assert_eq!(*ticks.lock().unwrap(), vec![7, 7]);

        leadership.stop().await;
        assert!(first.is_cancelled());
        first.cancelled().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(*ticks.lock().unwrap(), vec![7, 7], "a stopped duty ran on");

        // A new term starts with a fresh token; starting over a running
        // term cancels the old one.
        leadership.start((), 8);
        leadership.start((), 9);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let tokens = tokens.lock().unwrap().clone();
        assert_eq!(tokens.len(), 3);
        assert!(tokens[1].is_cancelled() && tokens[1].term() == 8);
        assert!(!tokens[2].is_cancelled() && tokens[2].term() == 9);
        assert_eq!(*ticks.lock().unwrap(), vec![7, 7, 9]);
        leadership.abort();
        assert_eq!(leadership.term(), None);
    }
}
