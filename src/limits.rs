//! Per-registry concurrency limits on pulls and pushes. Each (registry, direction) has a semaphore; a
//! request waits for a permit in FIFO order (tokio's semaphore is fair) for at most the queue timeout,
//! then is refused with 429. A changed limit takes effect for the next request: a new semaphore of the
//! new size replaces the old one, whose holders finish on it.

use std::collections::HashMap;
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
}

struct Gate {
    limit: u32,
    semaphore: Arc<Semaphore>,
}

/// The gates of every registry, made on first use.
pub struct Limits {
    gates: Mutex<HashMap<(String, Direction), Gate>>,
    queue_timeout: Duration,
    metrics: Arc<Metrics>,
}

/// A held permit; counted in the in-flight gauge until dropped.
pub struct Permit {
    _permit: OwnedSemaphorePermit,
    in_flight: IntGauge,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.in_flight.dec();
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
        let semaphore = self.semaphore(registry, direction, limit)?;
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
                    _permit: permit,
                    in_flight,
                })
            }
            Ok(Err(_closed)) => Err(OciError::Unavailable("the server is shutting down".into())),
            Err(_elapsed) => {
                self.metrics.throttled.with_label_values(&labels).inc();
                Err(OciError::TooManyRequests {
                    retry_after_secs: self.queue_timeout.as_secs().clamp(1, 60),
                })
            }
        }
    }

    fn semaphore(&self, registry: &str, direction: Direction, limit: u32) -> Result<Arc<Semaphore>, OciError> {
        let mut gates = self
            .gates
            .lock()
            .map_err(|_| OciError::Internal(anyhow::anyhow!("limits poisoned")))?;
        let gate = gates.entry((registry.to_owned(), direction)).or_insert_with(|| Gate {
            limit,
            semaphore: Arc::new(Semaphore::new(limit as usize)),
        });
        if gate.limit != limit {
            *gate = Gate {
                limit,
                semaphore: Arc::new(Semaphore::new(limit as usize)),
            };
        }
        Ok(gate.semaphore.clone())
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
        assert!(matches!(refused, OciError::TooManyRequests { retry_after_secs: 1 }));
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
    async fn a_changed_limit_applies_to_the_next_request() {
        let limits = limits(20);
        let _one = limits.acquire("r", Direction::Pull, 1).await.unwrap();
        assert!(limits.acquire("r", Direction::Pull, 1).await.is_err());
        let _two = limits.acquire("r", Direction::Pull, 2).await.unwrap();
        let _three = limits.acquire("r", Direction::Pull, 2).await.unwrap();
        assert!(limits.acquire("r", Direction::Pull, 2).await.is_err());
    }
}
