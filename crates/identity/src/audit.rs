//! Where audit records go. Both planes record through this trait; the
//! binary's implementation batches them into the store off the hot path,
//! so recording never waits for a write.

use pp_model::records::{AuditEntry, AuditOutcome};
use time::OffsetDateTime;
use uuid::Uuid;

/// A sink for audit records. `record` must not block.
pub trait AuditSink: Send + Sync + 'static {
    fn record(&self, entry: AuditEntry);
}

/// Starts an entry with the fields every record has.
#[must_use]
pub fn entry(action: &str, outcome: AuditOutcome, correlation_id: &str) -> AuditEntry {
    AuditEntry {
        id: Uuid::new_v4(),
        at: OffsetDateTime::now_utc(),
        action: action.to_owned(),
        outcome,
        actor: None,
        org_id: None,
        project_id: None,
        route_id: None,
        user_id: None,
        reason: None,
        correlation_id: correlation_id.to_owned(),
        details: serde_json::Value::Object(serde_json::Map::new()),
    }
}
