//! Audit records of control-plane actions (seed 001 "Audit
//! Expectations": session issuance, revocations, and every privileged
//! change). Written to the store before the handler answers, so a client
//! that saw its change succeed can find it in `/api/v1/audit` at once.

use pp_model::records::{AuditEntry, AuditOutcome};

use crate::auth::Caller;
use crate::correlation::Cid;
use crate::AppState;

/// Starts an entry for `action` by `caller`.
pub(crate) fn entry(caller: &Caller, action: &str, outcome: AuditOutcome, cid: &Cid) -> AuditEntry {
    let mut e = pp_identity::audit::entry(action, outcome, cid.0.as_str());
    e.actor = Some(caller.id().to_owned());
    e.details = serde_json::json!({ "via": caller.0.via.as_str() });
    e
}

/// Stores the entry. A failure is logged, not returned: the change it
/// records has already happened and must not be reported as failed.
pub(crate) async fn write(state: &AppState, e: AuditEntry) {
    if let Err(err) = state.store.append_audit(std::slice::from_ref(&e)).await {
        tracing::error!(
            correlation_id = %e.correlation_id,
            action = %e.action,
            error = %err,
            "audit record could not be stored"
        );
    }
}

/// Adds a key to the entry's details object.
pub(crate) fn detail(e: &mut AuditEntry, key: &str, value: serde_json::Value) {
    if let serde_json::Value::Object(m) = &mut e.details {
        m.insert(key.to_owned(), value);
    }
}
