//! Failed logins, throttled: a budget of failures per source address and per identity, refilled over
//! time. A source past its budget is refused (429) before any password is checked. An identity past its
//! budget is refused only to sources that have not logged in as it lately, so guessing one identity's
//! password from many addresses cannot lock out the machines that already use it.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept per map at most; past it, full budgets are forgotten first, then everything.
const MAX_ENTRIES: usize = 65_536;

/// How long a successful login lets its source pass the identity's exhausted budget.
const KNOWN_SOURCE_FOR: Duration = Duration::from_secs(24 * 3600);

tokio::task_local! {
    /// The address the request being served came from, set around login endpoints.
    static SOURCE: IpAddr;
}

/// Runs `f` as a request from `source`: the identity checks inside it see where it came from.
pub async fn from_source<F: Future>(source: IpAddr, f: F) -> F::Output {
    SOURCE.scope(source, f).await
}

fn current_source() -> Option<IpAddr> {
    SOURCE.try_with(|s| *s).ok()
}

/// The failure budgets of one server.
pub struct LoginThrottle {
    per_source: Budgets<IpAddr>,
    per_identity: Budgets<String>,
    known: Mutex<HashMap<(String, IpAddr), Instant>>,
}

impl LoginThrottle {
    /// `per_source` and `per_identity` failures a minute (also the burst); 0 turns that budget off.
    pub fn new(per_source: u32, per_identity: u32) -> Self {
        LoginThrottle {
            per_source: Budgets::new(per_source),
            per_identity: Budgets::new(per_identity),
            known: Mutex::default(),
        }
    }

    /// Seconds `source` must wait before its next attempt, if it spent its budget.
    pub fn source_wait(&self, source: IpAddr) -> Option<u64> {
        self.per_source.wait(&source)
    }

    pub fn source_failed(&self, source: IpAddr) {
        self.per_source.charge(source);
    }

    /// Seconds the current source must wait before trying `identity` again: only when the identity spent
    /// its budget and this source has not logged in as it lately.
    pub fn identity_wait(&self, identity: &str) -> Option<u64> {
        let wait = self.per_identity.wait(&identity.to_owned())?;
        let known = current_source().is_some_and(|source| {
            lock(&self.known)
                .get(&(identity.to_owned(), source))
                .is_some_and(|at| at.elapsed() < KNOWN_SOURCE_FOR)
        });
        (!known).then_some(wait)
    }

    pub fn identity_failed(&self, identity: &str) {
        self.per_identity.charge(identity.to_owned());
    }

    /// Remembers that the current source logged in as `identity`.
    pub fn identity_succeeded(&self, identity: &str) {
        let Some(source) = current_source() else { return };
        let mut known = lock(&self.known);
        if known.len() >= MAX_ENTRIES {
            known.retain(|_, at| at.elapsed() < KNOWN_SOURCE_FOR);
            if known.len() >= MAX_ENTRIES {
                known.clear();
            }
        }
        known.insert((identity.to_owned(), source), Instant::now());
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Token buckets by key: `burst` failures, refilled at `burst` a minute.
struct Budgets<K> {
    burst: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    left: f64,
    at: Instant,
}

impl Bucket {
    fn refilled(self, burst: f64, now: Instant) -> f64 {
        let per_sec = burst / 60.0;
        (self.left + now.duration_since(self.at).as_secs_f64() * per_sec).min(burst)
    }
}

impl<K: Hash + Eq> Budgets<K> {
    fn new(per_minute: u32) -> Self {
        Budgets {
            burst: f64::from(per_minute),
            buckets: Mutex::default(),
        }
    }

    fn wait(&self, key: &K) -> Option<u64> {
        if self.burst == 0.0 {
            return None;
        }
        let bucket = *lock(&self.buckets).get(key)?;
        let left = bucket.refilled(self.burst, Instant::now());
        (left < 1.0).then(|| ((1.0 - left) * 60.0 / self.burst).ceil().max(1.0) as u64)
    }

    fn charge(&self, key: K) {
        if self.burst == 0.0 {
            return;
        }
        let now = Instant::now();
        let mut buckets = lock(&self.buckets);
        if buckets.len() >= MAX_ENTRIES && !buckets.contains_key(&key) {
            let burst = self.burst;
            buckets.retain(|_, b| b.refilled(burst, now) < burst);
            if buckets.len() >= MAX_ENTRIES {
                buckets.clear();
            }
        }
        let left = buckets.get(&key).map_or(self.burst, |b| b.refilled(self.burst, now));
        buckets.insert(
            key,
            Bucket {
                left: (left - 1.0).max(0.0),
                at: now,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const THERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn a_source_is_refused_once_its_failures_spend_the_budget() {
        let throttle = LoginThrottle::new(3, 0);
        for _ in 0..3 {
            assert_eq!(throttle.source_wait(HERE), None);
            throttle.source_failed(HERE);
        }
        let wait = throttle.source_wait(HERE).expect("budget spent");
        assert!((1..=20).contains(&wait), "{wait}");
        assert_eq!(throttle.source_wait(THERE), None, "another source is not affected");
    }

    #[test]
    fn a_zero_budget_is_off() {
        let throttle = LoginThrottle::new(0, 0);
        for _ in 0..100 {
            throttle.source_failed(HERE);
            throttle.identity_failed("ci");
        }
        assert_eq!(throttle.source_wait(HERE), None);
        assert_eq!(throttle.identity_wait("ci"), None);
    }

    #[tokio::test]
    async fn an_identity_s_spent_budget_spares_the_sources_that_logged_in_as_it() {
        let throttle = LoginThrottle::new(0, 2);
        from_source(HERE, async { throttle.identity_succeeded("ci") }).await;
        for _ in 0..2 {
            throttle.identity_failed("ci");
        }
        from_source(HERE, async { assert_eq!(throttle.identity_wait("ci"), None) }).await;
        from_source(THERE, async { assert!(throttle.identity_wait("ci").is_some()) }).await;
        assert!(throttle.identity_wait("ci").is_some(), "no known source");
        assert_eq!(throttle.identity_wait("other"), None);
    }

    #[test]
    fn the_maps_stay_bounded() {
        let throttle = LoginThrottle::new(5, 0);
        for i in 0..(MAX_ENTRIES as u32 + 10) {
            throttle.source_failed(IpAddr::V4(i.into()));
        }
        assert!(lock(&throttle.per_source.buckets).len() <= MAX_ENTRIES);
    }
}
