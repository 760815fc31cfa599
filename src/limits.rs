//! Per-registry concurrency limits on pulls and pushes. Each (registry, direction) has a semaphore; a
//! request waits for a permit in FIFO order (tokio's semaphore is fair) for at most the queue timeout,
//! then is refused with 429, logged and counted with the registry, the direction and the limit. A changed
//! limit resizes the semaphore: a raised one admits waiters at once; a lowered one takes back the free
//! permits now and retires the rest as the requests holding them finish, so requests in flight count
//! against the new limit too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::errors::OciError;
use crate::telemetry::Metrics;

/// Which limit a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Pull,
    Push,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Pull => "pull",
            Direction::Push => "push",
        }
    }

    /// What the limit counts: "pulls" or "pushes".
    fn plural(self) -> &'static str {
        match self {
            Direction::Pull => "pulls",
            Direction::Push => "pushes",
        }
    }
}

struct Gate {
    limit: u32,
    semaphore: Arc<Semaphore>,
    /// Permits a lowered limit still has to take back: the next holders to finish retire theirs.
    owed: Arc<AtomicUsize>,
}

impl Gate {
    fn new(limit: u32) -> Self {
        Gate {
            limit,
            semaphore: Arc::new(Semaphore::new(limit as usize)),
            owed: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Resizes the gate to `limit` without waiting for the requests in flight.
    fn resize(&mut self, limit: u32) {
        let (old, new) = (self.limit as usize, limit as usize);
        if new > old {
            let raise = new - old;
            let cancelled = take_up_to(&self.owed, raise);
            self.semaphore.add_permits(raise - cancelled);
        } else {
            let cut = old - new;
            let taken = self.semaphore.forget_permits(cut);
            self.owed.fetch_add(cut - taken, Ordering::AcqRel);
        }
        self.limit = limit;
    }
}

/// Subtracts up to `n` from `counter`; returns how much it subtracted.
fn take_up_to(counter: &AtomicUsize, n: usize) -> usize {
    let before = counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |owed| Some(owed - owed.min(n)))
        .unwrap_or_else(|owed| owed);
    before.min(n)
}

/// The gates of every registry, made on first use.
pub struct Limits {
    gates: Mutex<HashMap<(String, Direction), Gate>>,
    queue_timeout: Duration,
    metrics: Arc<Metrics>,
}

/// A held permit; counted in the in-flight gauge until dropped, and retired then if its gate was lowered.
pub struct Permit {
    permit: Option<OwnedSemaphorePermit>,
    owed: Arc<AtomicUsize>,
    in_flight: IntGauge,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.in_flight.dec();
        if take_up_to(&self.owed, 1) == 1
            && let Some(permit) = self.permit.take()
        {
            permit.forget();
        }
    }
}

/// Decrements a gauge when dropped (the queued gauge of a waiting request, even if it is cancelled).
struct Waiting(IntGauge);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Limits {
    pub fn new(queue_timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Limits {
            gates: Mutex::new(HashMap::new()),
            queue_timeout,
            metrics,
        }
    }

    /// Waits for a permit of `registry`'s `direction` gate, whose size is now `limit`.
    pub async fn acquire(&self, registry: &str, direction: Direction, limit: u32) -> Result<Permit, OciError> {
        let (semaphore, owed) = self.gate(registry, direction, limit)?;
        let labels = [registry, direction.as_str()];
        let queued = self.metrics.queued.with_label_values(&labels);
        queued.inc();
        let waiting = Waiting(queued);
        let acquired = tokio::time::timeout(self.queue_timeout, semaphore.acquire_owned()).await;
        drop(waiting);
        match acquired {
            Ok(Ok(permit)) => {
                let in_flight = self.metrics.in_flight.with_label_values(&labels);
                in_flight.inc();
                Ok(Permit {
                    permit: Some(permit),
                    owed,
                    in_flight,
                })
            }
            Ok(Err(_closed)) => Err(OciError::Unavailable("the server is shutting down".into())),
            Err(_elapsed) => {
                self.metrics.throttled.with_label_values(&labels).inc();
                let waited = self.queue_timeout.as_millis();
                tracing::warn!(
                    registry,
                    direction = direction.as_str(),
                    limit,
                    waited_ms = waited as u64,
                    "{} limit reached: request refused with 429",
                    direction.as_str()
                );
                Err(OciError::TooManyRequests {
                    retry_after_secs: self.queue_timeout.as_secs().clamp(1, 60),
                    reason: format!(
                        "registry {registry} allows {limit} concurrent {} and all were busy for {waited} ms",
                        direction.plural()
                    ),
                })
            }
        }
    }

    fn gate(
        &self,
        registry: &str,
        direction: Direction,
        limit: u32,
    ) -> Result<(Arc<Semaphore>, Arc<AtomicUsize>), OciError> {
        let mut gates = self
            .gates
            .lock()
            .map_err(|_| OciError::Internal(anyhow::anyhow!("limits poisoned")))?;
        let gate = gates
            .entry((registry.to_owned(), direction))
            .or_insert_with(|| Gate::new(limit));
        if gate.limit != limit {
            gate.resize(limit);
        }
        Ok((gate.semaphore.clone(), gate.owed.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(timeout_ms: u64) -> Limits {
        Limits::new(Duration::from_millis(timeout_ms), Arc::new(Metrics::new().unwrap()))
    }

    #[tokio::test]
    async fn a_full_gate_queues_then_refuses_with_retry_after() {
        let limits = limits(50);
        let first = limits.acquire("a", Direction::Pull, 1).await.unwrap();
        let refused = limits.acquire("a", Direction::Pull, 1).await.err().unwrap();
        assert!(matches!(
            refused,
            OciError::TooManyRequests {
                retry_after_secs: 1,
                ..
            }
        ));
        assert!(
            limits.acquire("a", Direction::Push, 1).await.is_ok(),
            "pushes have their own gate"
        );
        assert!(
            limits.acquire("b", Direction::Pull, 1).await.is_ok(),
            "registries never share a gate"
        );
        drop(first);
        assert!(limits.acquire("a", Direction::Pull, 1).await.is_ok());
        assert_eq!(limits.metrics.throttled.with_label_values(&["a", "pull"]).get(), 1);
        assert_eq!(limits.metrics.in_flight.with_label_values(&["a", "pull"]).get(), 0);
        assert_eq!(limits.metrics.queued.with_label_values(&["a", "pull"]).get(), 0);
    }

    #[tokio::test]
    async fn waiters_are_served_in_arrival_order() {
        let limits = Arc::new(limits(5_000));
        let held = limits.acquire("r", Direction::Push, 1).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (limits, order) = (limits.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = limits.acquire("r", Direction::Push, 1).await.unwrap();
                order.lock().unwrap().push(i);
            }));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_raised_limit_admits_more_at_once() {
        let limits = limits(20);
        let _one = limits.acquire("r", Direction::Pull, 1).await.unwrap();
        assert!(limits.acquire("r", Direction::Pull, 1).await.is_err());
        let _two = limits.acquire("r", Direction::Pull, 2).await.unwrap();
        let _three = limits.acquire("r", Direction::Pull, 3).await.unwrap();
        assert!(limits.acquire("r", Direction::Pull, 3).await.is_err());
    }

    #[tokio::test]
    async fn a_lowered_limit_counts_the_requests_in_flight() {
        let limits = limits(20);
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(limits.acquire("r", Direction::Pull, 3).await.unwrap());
        }
        assert!(
            limits.acquire("r", Direction::Pull, 1).await.is_err(),
            "3 in flight, limit 1"
        );
        held.pop();
        assert!(
            limits.acquire("r", Direction::Pull, 1).await.is_err(),
            "2 in flight, limit 1"
        );
        held.pop();
        assert!(
            limits.acquire("r", Direction::Pull, 1).await.is_err(),
            "1 in flight, limit 1"
        );
        held.pop();
        let only = limits.acquire("r", Direction::Pull, 1).await.unwrap();
        assert!(
            limits.acquire("r", Direction::Pull, 1).await.is_err(),
            "the gate now holds one"
        );
        drop(only);

        // Raising again before the debt is paid cancels it instead of adding permits on top.
        let a = limits.acquire("r", Direction::Pull, 1).await.unwrap();
        let lowered = limits.acquire("r", Direction::Pull, 0).await;
        assert!(lowered.is_err());
        let b = limits.acquire("r", Direction::Pull, 2).await.unwrap();
        assert!(
            limits.acquire("r", Direction::Pull, 2).await.is_err(),
            "two in flight, limit 2"
        );
        drop((a, b));
        let _c = limits.acquire("r", Direction::Pull, 2).await.unwrap();
        let _d = limits.acquire("r", Direction::Pull, 2).await.unwrap();
        assert!(limits.acquire("r", Direction::Pull, 2).await.is_err());
    }
}
