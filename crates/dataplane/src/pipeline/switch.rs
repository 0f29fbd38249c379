//! The protocol switch's side of the pipeline: which requests open a
//! WebSocket tunnel, and the tunnel itself once both sides have switched:
//! its limits, its audit entries, and its end when the caller's access
//! does.

use std::sync::Arc;

use http::header;
use http::{Method, Request};
use pp_identity::Via;
use pp_model::records::AuditOutcome;
use pp_model::table::CompiledRoute;
use pp_model::{CorrelationId, ResolvedRoute};
use tracing::Instrument;

use super::Proxy;
use crate::authenticate::Caller;
use crate::headers::hop;
use crate::limit::Permit;
use crate::routes::RouteTableHandle;
use crate::server::ClientUpgrade;
use crate::tunnel::{self, TunnelLimits};

impl Proxy {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn spawn_tunnel(
        &self,
        resolved: &ResolvedRoute,
        client: ClientUpgrade,
        upstream: hyper::upgrade::OnUpgrade,
        permit: Permit,
        caller: Option<&Caller>,
        cid: CorrelationId,
    ) {
        let limits = &resolved.route.route.limits;
        let configured = limits.websocket_max_lifetime_secs.map_or(
            self.settings.websocket_max_lifetime,
            std::time::Duration::from_secs,
        );
        // A tunnel ends with the credential that opened it: the session's
        // hard end, the token's expiry.
        let now = crate::unix_now();
        let credential_left = caller
            .and_then(|c| c.expires_at)
            .map(|end| std::time::Duration::from_secs(u64::try_from(end - now).unwrap_or(0)));
        let limits = TunnelLimits {
            idle: limits.websocket_idle_timeout_secs.map_or(
                self.settings.websocket_idle_timeout,
                std::time::Duration::from_secs,
            ),
            max_lifetime: credential_left.map_or(configured, |left| left.min(configured)),
        };
        let drain = self.drain.clone();
        let route_id = resolved.route.route.id;
        // Boxed once here: a kilobyte that the tunnel's task, the relay and
        // the watcher would each otherwise hold room for (an argument an
        // `async fn` moves into a local keeps both slots), about 3 KiB an
        // idle tunnel.
        let revoked = Box::pin(watch_revocation(
            Arc::clone(self.access.authn.directory()),
            Arc::clone(&self.routes),
            caller.cloned(),
            Arc::clone(&resolved.route),
        ));
        let audit = Arc::clone(&self.access.audit);
        let mut connected =
            pp_identity::audit::entry("websocket.connected", AuditOutcome::Allowed, cid.as_str());
        connected.route_id = Some(route_id);
        connected.org_id.clone_from(&resolved.route.route.org_id);
        connected
            .project_id
            .clone_from(&resolved.route.route.project_id);
        if let Some(c) = caller {
            connected.actor = Some(c.principal.id.clone());
            connected.user_id = Some(c.principal.id.clone());
            connected.details = serde_json::json!({
                "via": c.via.as_str(),
                "session_id": c.session.as_ref().map(|s| s.sid),
            });
        }
        let span = tracing::info_span!("tunnel", correlation_id = %cid, %route_id);
        self.tunnels.spawn(
            async move {
                let _permit = permit;
                let upstream = async {
                    upstream
                        .await
                        .map(tunnel::End::from_hyper)
                        .map_err(crate::body::BoxError::from)
                };
                let (c, u) = match tokio::try_join!(client.connected(), upstream) {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "websocket upgrade failed");
                        return;
                    }
                };
                tracing::info!("websocket opened");
                audit.record(connected.clone());
                let stats = tunnel::relay(c, u, limits, drain, revoked).await;
                let mut closed = connected;
                closed.id = uuid::Uuid::new_v4();
                closed.at = time::OffsetDateTime::now_utc();
                closed.action = "websocket.disconnected".into();
                closed.reason = stats.closed_by_proxy.map(|r| r.text().to_owned());
                if let serde_json::Value::Object(m) = &mut closed.details {
                    m.insert("bytes_to_upstream".into(), stats.bytes_to_upstream.into());
                    m.insert("bytes_to_client".into(), stats.bytes_to_client.into());
                }
                audit.record(closed);
                tracing::info!(
                    frames_to_upstream = stats.frames_to_upstream,
                    frames_to_client = stats.frames_to_client,
                    bytes_to_upstream = stats.bytes_to_upstream,
                    bytes_to_client = stats.bytes_to_client,
                    closed_by_proxy = stats.closed_by_proxy.map(|r| r.text()),
                    "websocket closed"
                );
            }
            .instrument(span),
        );
    }
}

/// Resolves when the tunnel's caller loses its access: the session, user,
/// route or platform session is revoked, the service token is revoked, the
/// grants in force no longer allow the route, or the route is gone. Checks once at once (a
/// change may have landed since authentication), then on every new
/// directory snapshot; never resolves for public routes.
async fn watch_revocation(
    directory: Arc<pp_identity::DirectoryHandle>,
    routes: Arc<RouteTableHandle>,
    caller: Option<Caller>,
    route: Arc<CompiledRoute>,
) -> &'static str {
    let Some(caller) = caller else {
        return std::future::pending().await;
    };
    let opened = crate::unix_now();
    // Every snapshot rebuild (route changes included) publishes a new
    // directory, so this wakes for route removals too.
    let mut changes = directory.subscribe();
    loop {
        if routes.load().get(route.route.id).is_none() {
            return "route removed";
        }
        let d = directory.load();
        if caller.session.is_none() && d.revocations().route_revoked_since(route.route.id, opened) {
            return "route access revoked";
        }
        let r = match &caller.session {
            Some(s) => d.revocations().check(s),
            None => d
                .revocations()
                .check_bearer(&caller.principal, caller.issued_at),
        };
        if let Some(r) = r {
            return r.as_str();
        }
        if caller.via == Via::ServiceToken && !d.service_token_live(&caller.principal.id) {
            return "service token revoked";
        }
        let now = d.with_grants(pp_model::Principal::clone(&caller.credential));
        if pp_model::access::may_use_route(&now, crate::authorize::route_scope(&route)).is_err() {
            return "access revoked";
        }
        if changes.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// WebSocket opening handshake (RFC 6455 §4.1): GET with `Upgrade:
/// websocket` and `Connection: upgrade`. Other upgrade protocols are not
/// tunnelled; their `Upgrade` header is dropped as hop-by-hop.
pub(super) fn is_websocket_upgrade<B>(req: &Request<B>) -> bool {
    req.method() == Method::GET
        && hop::is_upgrade(req.headers())
        && req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
            })
}
