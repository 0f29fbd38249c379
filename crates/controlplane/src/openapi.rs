//! The OpenAPI 3.1 description of the API (DESIGN.md: served at
//! `/api/v1/openapi.json`), generated from the handlers' `#[utoipa::path]`
//! attributes and the model's `ToSchema` types, so it cannot drift from the
//! code the way a hand-written document would.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::handlers::{audit, grants, health, routes, sessions, tokens};

/// The API description. `ApiDoc::openapi()` builds the document; the
/// binary can also print it (for client generation) without a server.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "platform-proxy control-plane API",
        description = "Routes, access and sessions of platform-proxy, the identity-aware app gateway. \
            Every error is `{\"error\": {\"code\", \"message\", \"correlation_id\", \"field\"?}}` \
            with the same id in `X-Correlation-Id`."
    ),
    paths(
        health::healthz,
        health::readyz,
        serve,
        routes::list,
        routes::create,
        routes::get,
        routes::update,
        routes::delete,
        sessions::mint,
        sessions::list,
        sessions::revoke,
        sessions::backchannel_logout,
        sessions::jwks,
        sessions::me,
        grants::create,
        grants::list,
        grants::get,
        grants::delete,
        tokens::create,
        tokens::list,
        tokens::revoke,
        audit::list,
        crate::handlers::forward_auth_doc,
    ),
    components(schemas(
        routes::RouteView,
        routes::RouteList,
        health::HealthStatus,
        pp_model::Route,
        pp_model::NewRoute,
        pp_model::RoutePatch,
        pp_model::AuthBridge,
        pp_model::AuthBridgeInput,
        pp_model::AuthBridgeMode,
        pp_model::Role,
        pp_model::PrincipalKind,
        pp_model::records::Grant,
        pp_model::records::ServiceToken,
        pp_model::records::AuditEntry,
        pp_model::records::AuditOutcome,
        sessions::MintRequest,
        sessions::MintedSession,
        sessions::SessionView,
        sessions::SessionList,
        sessions::RevokeRequest,
        sessions::RevokeResult,
        sessions::WhoAmI,
        grants::NewGrant,
        grants::GrantList,
        tokens::NewServiceToken,
        tokens::CreatedServiceToken,
        tokens::ServiceTokenList,
        audit::AuditList,
        pp_model::ErrorEnvelope,
        pp_model::envelope::ErrorBody,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "routes", description = "Which app endpoints the proxy exposes, and how"),
        (name = "sessions", description = "Browser sessions, launch codes, revocation and logout"),
        (name = "grants", description = "Roles pushed by the platform"),
        (name = "service-tokens", description = "Tokens for automation"),
        (name = "audit", description = "The audit log"),
        (name = "forward-auth", description = "The auth endpoint for another gateway"),
        (name = "health", description = "Probes for the orchestrator"),
        (name = "meta", description = "This document"),
    ),
)]
pub struct ApiDoc;

/// Declares the `bearer` scheme the protected operations name in their
/// `security`: the operator's bootstrap token (RFC 6750).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A platform JWT, a service token (`ppst_…`) or the first-run bootstrap token",
                    ))
                    .build(),
            ),
        );
    }
}

/// This document. Public: it describes the API but holds no data.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")),
)]
pub(crate) async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
