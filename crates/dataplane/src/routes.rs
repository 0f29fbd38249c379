//! The live route table: an immutable [`RouteTable`] snapshot behind an
//! `ArcSwap`, so every request reads it without a lock and a rebuild (done
//! off the hot path by whoever follows the store) replaces it whole.

use std::sync::Arc;

use arc_swap::ArcSwap;
use pp_model::RouteTable;

#[derive(Debug)]
pub struct RouteTableHandle {
    current: ArcSwap<RouteTable>,
}

impl RouteTableHandle {
    #[must_use]
    pub fn new(table: RouteTable) -> Self {
        Self {
            current: ArcSwap::from_pointee(table),
        }
    }

    /// The snapshot to serve one request with.
    #[must_use]
    pub fn load(&self) -> Arc<RouteTable> {
        self.current.load_full()
    }

    /// Publishes a new snapshot; requests already running keep the old one.
    /// Returns the old one, so the caller chooses when its last reference
    /// (at 100,000 routes, some milliseconds of freeing) goes.
    pub fn replace(&self, table: RouteTable) -> Arc<RouteTable> {
        self.current.swap(Arc::new(table))
    }
}
