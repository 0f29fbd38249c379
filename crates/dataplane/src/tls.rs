//! TLS for HTTPS listeners: certificates from PEM files and an SNI resolver
//! that serves a wildcard certificate for the apps domain (`*.apps.example`
//! covers exactly one label, RFC 6125 §6.4.3) beside exact names such as the
//! API host. ALPN offers h2 and http/1.1.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// One certificate and the host names it is served for (`*.domain` allowed).
#[derive(Debug, Clone)]
pub struct CertSpec {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub hosts: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading certificate chain {path}: {source}")]
    Cert {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{path} holds no certificate")]
    EmptyChain { path: PathBuf },
    #[error("reading private key {path}: {source}")]
    Key {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("private key {path} is of an unsupported type: {source}")]
    KeyType {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("no certificate configured")]
    NoCertificates,
    #[error("building the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

fn load(spec: &CertSpec) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&spec.cert)
        .and_then(Iterator::collect)
        .map_err(|source| TlsError::Cert {
            path: spec.cert.clone(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::EmptyChain {
            path: spec.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&spec.key).map_err(|source| TlsError::Key {
        path: spec.key.clone(),
        source,
    })?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|source| {
        TlsError::KeyType {
            path: spec.key.clone(),
            source,
        }
    })?;
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

/// Picks a certificate by SNI: exact name, then a one-label wildcard, then
/// the first configured certificate.
#[derive(Debug)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    fn lookup(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = name.map(str::to_ascii_lowercase) else {
            return Arc::clone(&self.default);
        };
        if let Some(k) = self.exact.get(&name) {
            return Arc::clone(k);
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(k) = self.wildcard.get(parent) {
                return Arc::clone(k);
            }
        }
        Arc::clone(&self.default)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.lookup(hello.server_name()))
    }
}

/// Builds the server configuration for HTTPS listeners.
///
/// # Errors
/// A certificate or key that cannot be read or used, naming its file.
pub fn server_config(specs: &[CertSpec]) -> Result<Arc<ServerConfig>, TlsError> {
    let mut exact = HashMap::new();
    let mut wildcard = HashMap::new();
    let mut default = None;
    for spec in specs {
        let key = load(spec)?;
        default.get_or_insert_with(|| Arc::clone(&key));
        for h in &spec.hosts {
            let h = h.to_ascii_lowercase();
            match h.strip_prefix("*.") {
                Some(parent) => wildcard.insert(parent.to_owned(), Arc::clone(&key)),
                None => exact.insert(h, Arc::clone(&key)),
            };
        }
    }
    let default = default.ok_or(TlsError::NoCertificates)?;
    let resolver = SniResolver {
        exact,
        wildcard,
        default,
    };
    let mut cfg =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Whether `path` exists, for config validation messages.
#[must_use]
pub fn readable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}
