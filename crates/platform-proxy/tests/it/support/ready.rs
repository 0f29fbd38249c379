//! Route creation is acknowledged when stored; the data plane picks it up
//! from the store's change feed a moment later. Tests that use a route right
//! away wait for it here.

use std::time::Duration;

use super::{eventually, TestProxy};

/// Waits until `host` + `path` resolves in the proxy's live route table.
pub async fn routed(proxy: &TestProxy, host: &str, path: &str) {
    let routes = std::sync::Arc::clone(proxy.running().proxy.routes());
    eventually(Duration::from_secs(5), || {
        let found = routes.load().resolve(host, path).is_some();
        async move { found }
    })
    .await;
}
