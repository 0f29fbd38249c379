//! Per-route concurrency limit (`limits.max_connections`): a permit is held
//! for as long as a request's response body streams or its tunnel is open,
//! so long-lived WebSockets and SSE streams count. Existing connections are
//! never cut for a new limit; only new ones are refused (429).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::error::ProxyError;

#[derive(Debug, Default)]
pub struct RouteCounters {
    by_route: Mutex<HashMap<Uuid, Arc<AtomicU32>>>,
}

/// Releases its slot when dropped.
#[derive(Debug)]
pub struct Permit {
    counter: Option<Arc<AtomicU32>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(c) = self.counter.take() {
            c.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl RouteCounters {
    /// Takes a slot of `route`, or refuses when `limit` are in use. Routes
    /// without a limit get a permit that counts nothing.
    ///
    /// # Errors
    /// [`ProxyError::RouteBusy`] when the route is full.
    pub fn acquire(&self, route: Uuid, limit: Option<u32>) -> Result<Permit, ProxyError> {
        let Some(limit) = limit else {
            return Ok(Permit { counter: None });
        };
        let counter = {
            let mut map = crate::lock(&self.by_route);
            Arc::clone(map.entry(route).or_default())
        };
        let mut cur = counter.load(Ordering::Acquire);
        loop {
            if cur >= limit {
                return Err(ProxyError::RouteBusy { limit });
            }
            match counter.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    return Ok(Permit {
                        counter: Some(counter),
                    })
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Connections currently held on `route`.
    #[must_use]
    pub fn in_use(&self, route: Uuid) -> u32 {
        crate::lock(&self.by_route)
            .get(&route)
            .map_or(0, |c| c.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_enforced_and_released_on_drop() {
        let c = RouteCounters::default();
        let id = Uuid::new_v4();
        let a = c.acquire(id, Some(2)).expect("1st");
        let b = c.acquire(id, Some(2)).expect("2nd");
        assert!(matches!(
            c.acquire(id, Some(2)),
            Err(ProxyError::RouteBusy { limit: 2 })
        ));
        drop(a);
        assert_eq!(c.in_use(id), 1);
        let _c = c.acquire(id, Some(2)).expect("slot freed");
        drop(b);
        assert!(c.acquire(id, None).is_ok());
    }
}
