//! A retry scheduler: jobs that fail are retried with exponential backoff timers, up to a
//! number of attempts.
//!
//! The component ([`RetryScheduler`]) is production code, generic over the flavor: `main` runs
//! it on a real [`Base`]; the tests at the bottom (run by `cargo test`) run it unchanged on a
//! [`MockBase`](rouse_std::testing::MockBase), whose manual clock makes every retry time exact.
//!
//! ```sh
//! cargo run --example retry_scheduler
//! ```

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rouse_core::{Event, Instant, Key};
use rouse_std::{Base, BaseRef, Flavor};

/// How long to wait before each retry: `first`, doubling per failure, at most `max`; a job
/// gets `attempts` tries in all.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub attempts: u32,
}

impl Backoff {
    /// The wait after the `failures`-th failure (1-based).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max)
    }
}

/// One try of a job, as the scheduler reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub job: String,
    /// 1 for the first try.
    pub n: u32,
    /// When it ran, on the base's clock.
    pub at: Instant,
    pub result: Result<(), String>,
    /// Whether a retry was scheduled after it.
    pub retry: bool,
}

/// Runs jobs on a base's timers: each job runs at once (at the next loop iteration) and, after
/// a failure, again after the [`Backoff`] delay, until it succeeds or runs out of attempts.
/// Every attempt is recorded ([`attempts`](RetryScheduler::attempts)).
#[derive(Clone, Debug, Default)]
pub struct RetryScheduler {
    log: Arc<Mutex<Vec<Attempt>>>,
}

impl RetryScheduler {
    pub fn new() -> RetryScheduler {
        RetryScheduler::default()
    }

    /// Schedules `job` (called with the attempt number, 1-based) under `backoff`. One timer
    /// event per job, re-armed after each failure and freed at the end.
    pub fn submit<F: Flavor>(
        &self,
        events: BaseRef<'_, F>,
        name: &str,
        backoff: Backoff,
        mut job: impl FnMut(u32) -> Result<(), String> + Send + 'static,
    ) -> io::Result<Key> {
        let log = self.log.clone();
        let name = name.to_string();
        let mut n = 0;
        let key = events.event(Event::timer(), move |cx, fired| {
            n += 1;
            let result = job(n);
            let retry = result.is_err() && n < backoff.attempts;
            log.lock().unwrap().push(Attempt {
                job: name.clone(),
                n,
                at: cx.now(),
                result,
                retry,
            });
            if retry {
                cx.add(fired.key, Some(backoff.delay(n))).unwrap();
            } else {
                cx.free(fired.key).unwrap();
            }
        })?;
        events.add(key, Some(Duration::ZERO))?;
        Ok(key)
    }

    /// Every attempt so far, in the order they ran.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.log.lock().unwrap().clone()
    }
}

/// A job that fails its first `failures` tries.
pub fn flaky(failures: u32) -> impl FnMut(u32) -> Result<(), String> + Send + 'static {
    move |n| {
        if n <= failures {
            Err(format!("try {n} failed"))
        } else {
            Ok(())
        }
    }
}

/// Production wiring: the same calls a test makes, on whatever base it is given.
pub fn run_jobs<F: Flavor>(base: &Base<F>, scheduler: &RetryScheduler) -> io::Result<()> {
    let backoff = Backoff {
        first: Duration::from_millis(10),
        max: Duration::from_millis(40),
        attempts: 5,
    };
    scheduler.submit(base.base_ref(), "fetch", backoff, flaky(2))?;
    scheduler.submit(base.base_ref(), "upload", backoff, flaky(0))?;
    scheduler.submit(base.base_ref(), "doomed", backoff, flaky(u32::MAX))?;
    base.run()?; // until every job succeeded or gave up
    Ok(())
}

fn main() -> io::Result<()> {
    let base = Base::new()?;
    let scheduler = RetryScheduler::new();
    let start = base.now();
    run_jobs(&base, &scheduler)?;
    for a in scheduler.attempts() {
        let ms = a.at.saturating_duration_since(start).as_millis();
        let what = match (&a.result, a.retry) {
            (Ok(()), _) => "ok".to_string(),
            (Err(e), true) => format!("{e}, retrying"),
            (Err(e), false) => format!("{e}, giving up"),
        };
        println!("{:>4} ms  {:<7} try {}: {what}", ms, a.job, a.n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rouse_core::Exit;
    use rouse_std::testing::MockBase;

    const BACKOFF: Backoff = Backoff {
        first: Duration::from_millis(100),
        max: Duration::from_millis(1000),
        attempts: 6,
    };

    fn ms(at: Instant) -> u64 {
        at.as_nanos() / 1_000_000
    }

    /// (job, try, ms) of every attempt.
    fn timeline(s: &RetryScheduler) -> Vec<(String, u32, u64)> {
        s.attempts()
            .into_iter()
            .map(|a| (a.job, a.n, ms(a.at)))
            .collect()
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let d: Vec<_> = (1..=6).map(|n| BACKOFF.delay(n).as_millis()).collect();
        assert_eq!(d, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(BACKOFF.delay(40), BACKOFF.max);
    }

    #[test]
    fn a_failing_job_is_retried_at_the_backoff_times() {
        let base = MockBase::new_mock();
        let s = RetryScheduler::new();
        s.submit(base.base_ref(), "a", BACKOFF, flaky(3)).unwrap();

        // Nothing runs before the loop does; the first try runs at once.
        assert!(s.attempts().is_empty());
        base.run_until_idle().unwrap();
        assert_eq!(timeline(&s), [("a".into(), 1, 0)]);

        // 99 ms: no retry yet; 100 ms: the second try.
        base.advance(Duration::from_millis(99)).unwrap();
        assert_eq!(s.attempts().len(), 1);
        base.advance(Duration::from_millis(1)).unwrap();
        assert_eq!(s.attempts().last().unwrap().n, 2);

        // Then 200 ms later, then 400 ms later, which succeeds; the event is freed.
        assert_eq!(base.advance(Duration::from_secs(10)).unwrap(), Exit::Empty);
        assert_eq!(
            timeline(&s),
            [
                ("a".into(), 1, 0),
                ("a".into(), 2, 100),
                ("a".into(), 3, 300),
                ("a".into(), 4, 700)
            ]
        );
        let last = s.attempts().pop().unwrap();
        assert_eq!((last.result, last.retry), (Ok(()), false));
        assert_eq!(base.counts().events, 0);
    }

    #[test]
    fn a_job_gives_up_after_its_attempts() {
        let base = MockBase::new_mock();
        let s = RetryScheduler::new();
        s.submit(base.base_ref(), "doomed", BACKOFF, flaky(u32::MAX))
            .unwrap();
        // `run` itself ends on the mocks: every timeout is slept through in no real time.
        assert_eq!(base.run().unwrap(), Exit::Empty);
        let t: Vec<_> = timeline(&s).into_iter().map(|(_, _, at)| at).collect();
        assert_eq!(t, [0, 100, 300, 700, 1500, 2500]); // the last wait capped at 1 s
        let retries: Vec<_> = s.attempts().iter().map(|a| a.retry).collect();
        assert_eq!(retries, [true, true, true, true, true, false]);
        assert_eq!(base.elapsed(), Duration::from_millis(2500));
    }

    #[test]
    fn interleaved_jobs_retry_in_deadline_order() {
        let base = MockBase::new_mock();
        let s = RetryScheduler::new();
        let slow = Backoff {
            first: Duration::from_millis(150),
            ..BACKOFF
        };
        s.submit(base.base_ref(), "fast", BACKOFF, flaky(3))
            .unwrap();
        base.advance(Duration::from_millis(50)).unwrap();
        s.submit(base.base_ref(), "slow", slow, flaky(2)).unwrap();
        base.advance(Duration::from_secs(5)).unwrap();
        assert_eq!(
            timeline(&s),
            [
                ("fast".into(), 1, 0),
                ("slow".into(), 1, 50),
                ("fast".into(), 2, 100),
                ("slow".into(), 2, 200),
                ("fast".into(), 3, 300),
                ("slow".into(), 3, 500),
                ("fast".into(), 4, 700),
            ]
        );
        assert_eq!(base.elapsed(), Duration::from_millis(5050));
    }

    #[test]
    fn the_production_wiring_runs_on_the_mocks() {
        let base = MockBase::new_mock();
        let s = RetryScheduler::new();
        run_jobs(&base, &s).unwrap();
        let mut fetch: Vec<_> = timeline(&s)
            .into_iter()
            .filter(|(job, _, _)| job == "fetch")
            .map(|(_, n, at)| (n, at))
            .collect();
        fetch.sort();
        assert_eq!(fetch, [(1, 0), (2, 10), (3, 30)]);
        let doomed = s.attempts().into_iter().filter(|a| a.job == "doomed");
        let t: Vec<_> = doomed.map(|a| ms(a.at)).collect();
        assert_eq!(t, [0, 10, 30, 70, 110]); // 10, 20, 40, then capped at 40
        assert_eq!(base.elapsed(), Duration::from_millis(110));
    }
}
