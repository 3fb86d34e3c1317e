//! Bounded retries with exponential backoff and full jitter, honouring a server's retry-after
//! hint. Shared by every adapter that calls a remote service, so they all back off the same way.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

/// How an adapter retries one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    /// The backoff ceiling before the first retry; it doubles with every retry.
    pub base_delay: Duration,
    /// The largest wait between two attempts, hint included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// What the caller's classifier says about one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Retrying cannot help.
    Permanent,
    /// Retry after the backoff, or after the server's hint when it gave one.
    Transient { retry_after: Option<Duration> },
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based): a random point in `[0, base · 2^(retry-1)]`
    /// (full jitter, so many clients do not retry in lockstep), or the server's hint, capped.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let delay = match retry_after {
            Some(hint) => hint,
            None => {
                let ceiling = self
                    .base_delay
                    .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
                    .min(self.max_delay);
                ceiling.mul_f64(rand::rng().random::<f64>())
            }
        };
        delay.min(self.max_delay)
    }

    /// Runs `attempt` until it succeeds, fails permanently, or runs out of attempts; returns
    /// the last error then.
    pub async fn run<T, E, Fut>(
        &self,
        mut attempt: impl FnMut() -> Fut,
        classify: impl Fn(&E) -> Verdict,
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let mut tries = 1;
        loop {
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(e) => match classify(&e) {
                    Verdict::Transient { retry_after } if tries < self.max_attempts => {
                        tokio::time::sleep(self.delay(tries, retry_after)).await;
                        tries += 1;
                    }
                    _ => return Err(e),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn delays_grow_stay_jittered_and_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for retry in 1..10 {
            let ceiling = Duration::from_millis(100 * (1 << (retry - 1))).min(policy.max_delay);
            assert!(policy.delay(retry, None) <= ceiling);
        }
        assert_eq!(
            policy.delay(1, Some(Duration::from_millis(700))),
            Duration::from_millis(700)
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(30))),
            Duration::from_secs(1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_up_to_the_bound() {
        let policy = RetryPolicy::default();
        let calls = AtomicU32::new(0);
        let result: Result<(), &str> = policy
            .run(
                || async {
                    calls.fetch_add(1, Ordering::Relaxed);
                    Err("busy")
                },
                |_| Verdict::Transient { retry_after: None },
            )
            .await;
        assert_eq!(result, Err("busy"));
        assert_eq!(calls.load(Ordering::Relaxed), policy.max_attempts);

        calls.store(0, Ordering::Relaxed);
        let result: Result<u32, &str> = policy
            .run(
                || async {
                    match calls.fetch_add(1, Ordering::Relaxed) {
                        0 => Err("busy"),
                        n => Ok(n),
                    }
                },
                |_| Verdict::Transient {
                    retry_after: Some(Duration::from_millis(5)),
                },
            )
            .await;
        assert_eq!(result, Ok(1));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_are_not_retried() {
        let calls = AtomicU32::new(0);
        let result: Result<(), &str> = RetryPolicy::default()
            .run(
                || async {
                    calls.fetch_add(1, Ordering::Relaxed);
                    Err("bad request")
                },
                |_| Verdict::Permanent,
            )
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }
}
