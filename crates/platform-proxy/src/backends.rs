//! The store behind the data plane's narrow traits: launch-code redemption
//! and logout ([`SessionBackend`]), and the audit sink. Wiring only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pp_dataplane::access::BackendFuture;
use pp_dataplane::SessionBackend;
use pp_identity::AuditSink;
use pp_model::records::{AuditEntry, Revocation, RevocationTarget, SessionRecord};
use pp_store::Store;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// [`SessionBackend`] on the store.
pub(crate) struct StoreSessions {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) session_max: Duration,
}

impl SessionBackend for StoreSessions {
    fn redeem(&self, code_hash: String, route: Uuid) -> BackendFuture<'_, Option<SessionRecord>> {
        Box::pin(async move {
            self.store
                .redeem_launch_code(&code_hash, route, OffsetDateTime::now_utc())
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn revoke_session(&self, session: Uuid, reason: &'static str) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            let now = OffsetDateTime::now_utc();
            let r = Revocation {
                target: RevocationTarget::Session(session),
                revoked_at: now,
                expires_at: now
                    + time::Duration::try_from(self.session_max).unwrap_or(time::Duration::DAY)
                    + time::Duration::HOUR,
                reason: reason.to_owned(),
            };
            self.store
                .revoke(&r)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

/// Queue size of the audit writer: bursts of denials or WebSocket churn
/// queue here instead of waiting for the store.
const AUDIT_QUEUE: usize = 8192;
/// Most entries written in one transaction.
const AUDIT_BATCH: usize = 256;

/// The data plane's audit sink: entries go to a bounded queue and a writer
/// task stores them in batches. A full queue drops the entry, logs and
/// counts it, rather than slowing requests down.
pub(crate) struct StoreAudit {
    tx: mpsc::Sender<AuditEntry>,
    dropped: AtomicU64,
}

impl StoreAudit {
    /// Starts the writer. It runs until `stop` fires, then stores what is
    /// still queued and ends.
    pub(crate) fn spawn(
        store: Arc<dyn Store>,
        stop: CancellationToken,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let (sink, mut rx) = Self::with_queue(AUDIT_QUEUE);
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(AUDIT_BATCH);
            loop {
                tokio::select! {
                    n = rx.recv_many(&mut batch, AUDIT_BATCH) => {
                        if n == 0 {
                            return;
                        }
                    }
                    () = stop.cancelled() => {
                        while let Ok(e) = rx.try_recv() {
                            batch.push(e);
                        }
                        write(&*store, &mut batch).await;
                        return;
                    }
                }
                write(&*store, &mut batch).await;
            }
        });
        (Arc::new(sink), task)
    }

    /// The sink and the queue's receiving end, with room for `queue`
    /// entries.
    fn with_queue(queue: usize) -> (Self, mpsc::Receiver<AuditEntry>) {
        let (tx, rx) = mpsc::channel::<AuditEntry>(queue);
        (
            Self {
                tx,
                dropped: AtomicU64::new(0),
            },
            rx,
        )
    }

    /// Records dropped because the queue was full (also in every
    /// warning's `dropped_total`).
    #[cfg(test)]
    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn write(store: &dyn Store, batch: &mut Vec<AuditEntry>) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = store.append_audit(batch).await {
        tracing::error!(error = %e, entries = batch.len(), "audit records could not be stored");
    }
    batch.clear();
}

impl AuditSink for StoreAudit {
    fn record(&self, entry: AuditEntry) {
        if let Err(mpsc::error::TrySendError::Full(e) | mpsc::error::TrySendError::Closed(e)) =
            self.tx.try_send(entry)
        {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                correlation_id = %e.correlation_id,
                action = %e.action,
                dropped_total = n,
                "audit queue full; record dropped"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use pp_model::records::AuditOutcome;

    use super::*;

    #[tokio::test]
    async fn a_full_audit_queue_drops_and_counts_instead_of_blocking() {
        let (sink, mut rx) = StoreAudit::with_queue(3);
        for i in 0..10 {
            sink.record(pp_identity::audit::entry(
                "access.denied",
                AuditOutcome::Denied,
                &format!("cid-{i}"),
            ));
        }
        assert_eq!(sink.dropped(), 7);
        let mut kept = Vec::new();
        while let Ok(e) = rx.try_recv() {
            kept.push(e.correlation_id);
        }
        assert_eq!(
            kept,
            vec!["cid-0", "cid-1", "cid-2"],
            "the first ones are kept, in order"
        );
    }
}
