//! The per-instance request-unit budget: how this process keeps its Cosmos DB traffic below the
//! provisioned throughput instead of finding the limit by 429 storms.
//!
//! * A token bucket fills at `rate` RU/s and holds at most a small burst. Each request first
//!   reserves its expected charge (the running mean of its kind), then is charged what the
//!   response's `x-ms-request-charge` says, so the bucket tracks the service's own accounting.
//! * Additive increase, multiplicative decrease: every 429 cuts `rate` by a factor (at most once
//!   per throttled window) and pauses all requests for the service's `x-ms-retry-after-ms`;
//!   successful time raises `rate` slowly back toward the configured ceiling.
//! * A semaphore bounds the requests in flight, whatever the host's function concurrency.
//!
//! The SDK's own 429 retries are switched off (see `client`), so every 429 reaches this budget.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::stats::CosmosStats;

/// Tunables of the budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetSettings {
    /// The ceiling of this instance's rate, in RU/s (its share of the provisioned throughput).
    pub ru_per_second: f64,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// The rate after a 429 is `rate × decrease` (multiplicative decrease).
    pub decrease: f64,
    /// Per second without a 429 the rate grows by `ceiling × increase` (additive increase).
    pub increase: f64,
    /// The rate never drops below `ceiling × floor`.
    pub floor: f64,
    /// The bucket holds at most this many seconds of the current rate.
    pub burst_seconds: f64,
}

impl BudgetSettings {
    pub fn new(ru_per_second: f64, concurrency: usize) -> Self {
        Self {
            ru_per_second,
            concurrency,
            decrease: 0.95,
            increase: 0.02,
            floor: 0.05,
            burst_seconds: 0.25,
        }
    }
}

/// The kinds of request whose expected charge is tracked separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Read = 0,
    Write = 1,
    Query = 2,
}

struct State {
    rate: f64,
    tokens: f64,
    refilled_at: Instant,
    raised_at: Instant,
    paused_until: Instant,
    last_decrease: Instant,
    /// Running mean charge per [`OpKind`].
    expected: [f64; 3],
}

/// The budget shared by every request of one store.
pub struct RuBudget {
    settings: BudgetSettings,
    state: Mutex<State>,
    in_flight: Semaphore,
    stats: std::sync::Arc<CosmosStats>,
}

/// A reservation for one request; settle it with [`RuBudget::settle`].
pub struct Reservation<'a> {
    kind: OpKind,
    reserved: f64,
    _permit: SemaphorePermit<'a>,
}

impl RuBudget {
    pub fn new(settings: BudgetSettings, stats: std::sync::Arc<CosmosStats>) -> Self {
        let now = Instant::now();
        let ceiling = settings.ru_per_second.max(1.0);
        Self {
            settings: BudgetSettings {
                ru_per_second: ceiling,
                ..settings
            },
            state: Mutex::new(State {
                rate: ceiling,
                tokens: 0.0,
                refilled_at: now,
                raised_at: now,
                paused_until: now,
                last_decrease: now - Duration::from_secs(3600),
                expected: [1.0, 10.0, 3.0],
            }),
            in_flight: Semaphore::new(settings.concurrency.max(1)),
            stats,
        }
    }

    /// The current rate in RU/s.
    pub fn rate(&self) -> f64 {
        self.state.lock().unwrap().rate
    }

    /// Waits for a concurrency slot and for the tokens the request is expected to cost.
    pub async fn reserve(&self, kind: OpKind) -> Reservation<'_> {
        let permit = self
            .in_flight
            .acquire()
            .await
            .expect("the budget's semaphore is never closed");
        loop {
            let wait = {
                let mut s = self.state.lock().unwrap();
                let now = Instant::now();
                self.refill(&mut s, now);
                let need = s.expected[kind as usize];
                if now < s.paused_until {
                    s.paused_until - now
                } else if s.tokens >= need.min(self.capacity(&s)) {
                    s.tokens -= need;
                    return Reservation {
                        kind,
                        reserved: need,
                        _permit: permit,
                    };
                } else {
                    Duration::from_secs_f64((need - s.tokens) / s.rate)
                }
            };
            tokio::time::sleep(wait.max(Duration::from_micros(100))).await;
        }
    }

    /// Charges the request's real cost. `throttled` carries the service's retry-after when the
    /// answer was a 429.
    pub fn settle(
        &self,
        reservation: Reservation<'_>,
        charge: f64,
        throttled: Option<Option<Duration>>,
    ) {
        let mut s = self.state.lock().unwrap();
        let now = Instant::now();
        self.refill(&mut s, now);
        s.tokens += reservation.reserved - charge;
        let kind = reservation.kind as usize;
        if charge > 0.0 {
            s.expected[kind] = 0.8 * s.expected[kind] + 0.2 * charge;
        }
        self.stats.add_request_units(charge);
        match throttled {
            Some(retry_after) => {
                self.stats.add(&self.stats.throttled, 1);
                let pause = retry_after.unwrap_or(Duration::from_millis(100));
                s.paused_until = s.paused_until.max(now + pause);
                s.tokens = s.tokens.min(0.0);
                // One decrease per throttled window: the 429s of requests already in flight
                // report the same overload.
                if now.duration_since(s.last_decrease) >= pause.max(Duration::from_millis(200)) {
                    s.rate = (s.rate * self.settings.decrease)
                        .max(self.settings.ru_per_second * self.settings.floor);
                    s.last_decrease = now;
                }
                s.raised_at = now;
            }
            None => {
                let elapsed = now.duration_since(s.raised_at).as_secs_f64();
                s.rate = (s.rate + self.settings.ru_per_second * self.settings.increase * elapsed)
                    .min(self.settings.ru_per_second);
                s.raised_at = now;
            }
        }
    }

    fn capacity(&self, s: &State) -> f64 {
        (s.rate * self.settings.burst_seconds).max(s.expected[OpKind::Write as usize])
    }

    fn refill(&self, s: &mut State, now: Instant) {
        let elapsed = now.duration_since(s.refilled_at).as_secs_f64();
        s.refilled_at = now;
        s.tokens = (s.tokens + elapsed * s.rate).min(self.capacity(s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn budget(rate: f64) -> RuBudget {
        RuBudget::new(
            BudgetSettings::new(rate, 4),
            Arc::new(CosmosStats::default()),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn spending_is_held_to_the_rate() {
        let b = budget(100.0);
        let start = Instant::now();
        for _ in 0..50 {
            let r = b.reserve(OpKind::Write).await;
            b.settle(r, 10.0, None);
        }
        // 500 RU at 100 RU/s: about five seconds, never much less.
        let took = start.elapsed().as_secs_f64();
        assert!((4.8..5.5).contains(&took), "took {took}s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_and_cuts_the_rate_once_per_window() {
        let b = budget(100.0);
        let r1 = b.reserve(OpKind::Read).await;
        let r2 = b.reserve(OpKind::Read).await;
        b.settle(r1, 0.0, Some(Some(Duration::from_millis(700))));
        b.settle(r2, 0.0, Some(Some(Duration::from_millis(650))));
        let cut = 100.0 * b.settings.decrease;
        assert!((b.rate() - cut).abs() < 1e-9, "one decrease: {}", b.rate());
        assert_eq!(
            b.stats.throttled.load(std::sync::atomic::Ordering::Relaxed),
            2
        );
        let before = Instant::now();
        let r = b.reserve(OpKind::Read).await;
        assert!(before.elapsed() >= Duration::from_millis(700));
        // Additive increase: slowly back toward the ceiling.
        tokio::time::advance(Duration::from_secs(1)).await;
        b.settle(r, 1.0, None);
        // Additive: `ceiling × increase` per second, for the 0.7 s pause and the 1 s after it.
        let raised = cut + 100.0 * b.settings.increase * 1.7;
        assert!(raised < 100.0);
        assert!(
            (b.rate() - raised).abs() < 0.05,
            "rate {} not {raised}",
            b.rate()
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        let r = b.reserve(OpKind::Read).await;
        b.settle(r, 1.0, None);
        assert_eq!(b.rate(), 100.0);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_bounded() {
        let b = budget(1e9);
        let held: Vec<_> = futures_join(&b, 4).await;
        let more = tokio::time::timeout(Duration::from_secs(1), b.reserve(OpKind::Read)).await;
        assert!(more.is_err(), "a fifth request must wait for a slot");
        drop(held);
        assert!(
            tokio::time::timeout(Duration::from_secs(1), b.reserve(OpKind::Read))
                .await
                .is_ok()
        );
    }

    async fn futures_join(b: &RuBudget, n: usize) -> Vec<Reservation<'_>> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(b.reserve(OpKind::Read).await);
        }
        out
    }
}
