//! Public URLs of routes, as the browser will use them.

use crate::route::{Route, RouteMode};

/// How the proxy is reached from outside: scheme, apps domain and the port
/// when it is not the scheme's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicBase {
    pub scheme: String,
    pub apps_domain: String,
    pub port: Option<u16>,
}

impl PublicBase {
    fn authority(&self, host: &str) -> String {
        match self.port {
            Some(443) if self.scheme == "https" => host.to_owned(),
            Some(80) if self.scheme == "http" => host.to_owned(),
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        }
    }

    /// The URL a browser opens to reach `route`'s root.
    #[must_use]
    pub fn public_url(&self, route: &Route) -> String {
        match route.route_mode {
            RouteMode::Subdomain => {
                let label = route.route_host.as_deref().unwrap_or_default();
                let host = format!("{label}.{}", self.apps_domain);
                format!("{}://{}/", self.scheme, self.authority(&host))
            }
            RouteMode::PathPrefix => format!(
                "{}://{}{}",
                self.scheme,
                self.authority(&self.apps_domain),
                route.public_path
            ),
        }
    }
}
