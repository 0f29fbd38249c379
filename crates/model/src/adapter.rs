//! Adapters: how one class of upstream app is carried through the proxy.
//!
//! Seed 000 ("Proxy Adapter Model") fixes the rule: the proxy runtime is
//! shared and every per-app difference is *data* in an adapter, never a branch
//! in handler code. A route names an adapter preset and may override any field.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which grants a route needs (enforced once identity lands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScopeStrategy {
    /// Allocation- and project-scoped tools: the user must be a project member.
    ProjectRequired,
    /// Admin-global platform tools: the user needs an org role.
    OrgOnly,
}

/// Where a launch lands inside the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntrypointStrategy {
    Root,
    DefaultOpenPath,
    StableDeepLink,
    PreserveRequestedPath,
}

/// How the app's own login is satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthStrategy {
    None,
    BearerPassthrough,
    UpstreamTokenBridge,
}

/// How the public path maps onto the upstream path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BaseUrlStrategy {
    /// The app believes it lives at `/`: the public prefix is stripped on the
    /// way in and added back to redirects and cookie paths on the way out.
    None,
    /// The app is launched with the platform path as its base URL
    /// (JupyterLab `--ServerApp.base_url`): the runtime prefix is kept.
    PlatformPath,
    /// The app is configured with its public subpath natively (Grafana
    /// `serve_from_sub_path`): the runtime prefix is kept.
    UpstreamSubpathNative,
}

impl BaseUrlStrategy {
    /// Whether the upstream serves under the runtime prefix rather than `/`.
    #[must_use]
    pub fn keeps_prefix(self) -> bool {
        !matches!(self, Self::None)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RewriteStrategy {
    HeadersOnly,
    HeadersAndHtml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResponseRewriteStrategy {
    None,
    SwaggerInitializer,
    GrafanaHtml,
    TemporalHtml,
    RedocHtml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CookieScopeStrategy {
    PublicPrefix,
    DualPublicAndRuntimePrefix,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerifyStrategy {
    None,
    HtmlOnly,
    HtmlPlusAsset,
}

/// Which `Host` header the upstream receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamHostHeader {
    /// The browser's host. Apps that compare `Origin` with `Host` before
    /// accepting a WebSocket (JupyterLab, Grafana live) need this.
    Preserve,
    /// The upstream target's `host:port`, for virtual-hosted upstreams.
    Target,
}

/// Every adapter field of seed 000, plus the transport flags the proxy needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Adapter {
    pub name: String,
    pub scope_strategy: ScopeStrategy,
    pub entrypoint_strategy: EntrypointStrategy,
    pub default_open_path: String,
    pub stable_deep_link_template: Option<String>,
    pub auth_strategy: AuthStrategy,
    pub base_url_strategy: BaseUrlStrategy,
    pub rewrite_strategy: RewriteStrategy,
    pub response_rewrite_strategy: ResponseRewriteStrategy,
    pub cookie_scope_strategy: CookieScopeStrategy,
    pub verify_strategy: VerifyStrategy,
    pub websocket_required: bool,
    pub root_requires_trailing_slash: bool,
    pub upstream_host_header: UpstreamHostHeader,
}

/// Per-route overrides: every field optional, applied over the preset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdapterOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope_strategy: Option<ScopeStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint_strategy: Option<EntrypointStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_open_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stable_deep_link_template: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_strategy: Option<AuthStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url_strategy: Option<BaseUrlStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite_strategy: Option<RewriteStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_rewrite_strategy: Option<ResponseRewriteStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie_scope_strategy: Option<CookieScopeStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_strategy: Option<VerifyStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub websocket_required: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_requires_trailing_slash: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_host_header: Option<UpstreamHostHeader>,
}

/// Names of the built-in presets, in the order the docs list them.
pub const PRESET_NAMES: &[&str] = &[
    "generic",
    "jupyterlab",
    "grafana",
    "netdata",
    "swagger-ui",
    "redoc",
    "temporal-ui",
    "vllm-chat",
];

impl Adapter {
    /// The built-in preset called `name`, if there is one.
    ///
    /// The values are seed 000's "Current validated examples".
    #[must_use]
    pub fn preset(name: &str) -> Option<Self> {
        let generic = Self {
            name: name.to_owned(),
            scope_strategy: ScopeStrategy::ProjectRequired,
            entrypoint_strategy: EntrypointStrategy::Root,
            default_open_path: "/".to_owned(),
            stable_deep_link_template: None,
            auth_strategy: AuthStrategy::None,
            base_url_strategy: BaseUrlStrategy::None,
            rewrite_strategy: RewriteStrategy::HeadersOnly,
            response_rewrite_strategy: ResponseRewriteStrategy::None,
            cookie_scope_strategy: CookieScopeStrategy::PublicPrefix,
            verify_strategy: VerifyStrategy::None,
            websocket_required: false,
            root_requires_trailing_slash: false,
            upstream_host_header: UpstreamHostHeader::Preserve,
        };
        let adapter = match name {
            "generic" => generic,
            // JupyterLab runs with `--ServerApp.base_url=/w/{id}/{endpoint}/`,
            // emits assets under that runtime prefix, needs its app-local
            // token injected server-side, and checks Origin against Host on
            // its kernel WebSockets.
            "jupyterlab" => Self {
                entrypoint_strategy: EntrypointStrategy::DefaultOpenPath,
                default_open_path: "/lab".to_owned(),
                auth_strategy: AuthStrategy::UpstreamTokenBridge,
                base_url_strategy: BaseUrlStrategy::PlatformPath,
                cookie_scope_strategy: CookieScopeStrategy::DualPublicAndRuntimePrefix,
                websocket_required: true,
                ..generic
            },
            // Grafana is configured with `root_url` + `serve_from_sub_path`
            // and generates its own subpath links; `/api/live/` is a WebSocket.
            "grafana" => Self {
                scope_strategy: ScopeStrategy::OrgOnly,
                base_url_strategy: BaseUrlStrategy::UpstreamSubpathNative,
                cookie_scope_strategy: CookieScopeStrategy::DualPublicAndRuntimePrefix,
                websocket_required: true,
                root_requires_trailing_slash: true,
                ..generic
            },
            // Modern Netdata agents need the V3 dashboard entry even when the
            // product version reads 2.x.
            "netdata" => Self {
                entrypoint_strategy: EntrypointStrategy::StableDeepLink,
                stable_deep_link_template: Some("/v3/".to_owned()),
                default_open_path: "/v3/".to_owned(),
                ..generic
            },
            "swagger-ui" => Self {
                scope_strategy: ScopeStrategy::OrgOnly,
                response_rewrite_strategy: ResponseRewriteStrategy::SwaggerInitializer,
                ..generic
            },
            "redoc" => Self {
                scope_strategy: ScopeStrategy::OrgOnly,
                rewrite_strategy: RewriteStrategy::HeadersAndHtml,
                response_rewrite_strategy: ResponseRewriteStrategy::RedocHtml,
                ..generic
            },
            // Temporal UI's inline bootstrap script is pinned by a CSP hash,
            // which must be recomputed from the exact rewritten bytes.
            "temporal-ui" => Self {
                scope_strategy: ScopeStrategy::OrgOnly,
                entrypoint_strategy: EntrypointStrategy::PreserveRequestedPath,
                rewrite_strategy: RewriteStrategy::HeadersAndHtml,
                response_rewrite_strategy: ResponseRewriteStrategy::TemporalHtml,
                verify_strategy: VerifyStrategy::HtmlPlusAsset,
                ..generic
            },
            "vllm-chat" => Self {
                base_url_strategy: BaseUrlStrategy::PlatformPath,
                websocket_required: true,
                ..generic
            },
            _ => return None,
        };
        Some(adapter)
    }

    /// This adapter with `overrides` applied field by field.
    #[must_use]
    pub fn with_overrides(mut self, o: &AdapterOverrides) -> Self {
        macro_rules! apply {
            ($($field:ident),*) => {$(
                if let Some(v) = &o.$field { self.$field = v.clone(); }
            )*};
        }
        apply!(
            scope_strategy,
            entrypoint_strategy,
            default_open_path,
            auth_strategy,
            base_url_strategy,
            rewrite_strategy,
            response_rewrite_strategy,
            cookie_scope_strategy,
            verify_strategy,
            websocket_required,
            root_requires_trailing_slash,
            upstream_host_header
        );
        if o.stable_deep_link_template.is_some() {
            self.stable_deep_link_template
                .clone_from(&o.stable_deep_link_template);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_preset_exists_and_unknown_does_not() {
        for name in PRESET_NAMES {
            let a = Adapter::preset(name).expect("preset");
            assert_eq!(a.name, *name);
        }
        assert!(Adapter::preset("nope").is_none());
    }

    #[test]
    fn jupyterlab_preset_matches_seed() {
        let a = Adapter::preset("jupyterlab").expect("preset");
        assert_eq!(a.base_url_strategy, BaseUrlStrategy::PlatformPath);
        assert_eq!(
            a.cookie_scope_strategy,
            CookieScopeStrategy::DualPublicAndRuntimePrefix
        );
        assert_eq!(a.default_open_path, "/lab");
        assert!(a.websocket_required);
    }

    #[test]
    fn overrides_replace_only_named_fields() {
        let o = AdapterOverrides {
            default_open_path: Some("/tree".into()),
            root_requires_trailing_slash: Some(true),
            ..AdapterOverrides::default()
        };
        let a = Adapter::preset("jupyterlab")
            .expect("preset")
            .with_overrides(&o);
        assert_eq!(a.default_open_path, "/tree");
        assert!(a.root_requires_trailing_slash);
        assert_eq!(a.base_url_strategy, BaseUrlStrategy::PlatformPath);
    }
}
