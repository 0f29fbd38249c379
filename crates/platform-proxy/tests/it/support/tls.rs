//! A throwaway PKI for HTTPS tests: one CA, a wildcard certificate for the
//! apps domain and one for the API host, written as PEM files, plus clients
//! that trust only that CA.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

use super::TempDir;

/// A leaf certificate on disk and its DER, to recognise it on the wire.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: Vec<u8>,
}

pub struct Pki {
    pub ca_pem: String,
    pub ca_der: Vec<u8>,
    /// `*.apps.test` and `apps.test`.
    pub wildcard: Leaf,
    /// `api.test`.
    pub api: Leaf,
    _dir: TempDir,
}

impl Pki {
    pub fn generate() -> Self {
        let dir = TempDir::new();
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.distinguished_name
            .push(DnType::CommonName, "platform-proxy test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).expect("self-sign CA");
        let leaf = |name: &str, sans: &[&str]| {
            let key = KeyPair::generate().expect("leaf key");
            let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
            let mut params = CertificateParams::new(sans).expect("leaf params");
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            let cert = params
                .signed_by(&key, &ca_cert, &ca_key)
                .expect("sign leaf");
            let cert_path = dir.0.join(format!("{name}.crt"));
            let key_path = dir.0.join(format!("{name}.key"));
            std::fs::write(&cert_path, cert.pem()).expect("write cert");
            std::fs::write(&key_path, key.serialize_pem()).expect("write key");
            Leaf {
                cert: cert_path,
                key: key_path,
                der: cert.der().to_vec(),
            }
        };
        let wildcard = leaf("wildcard", &["*.apps.test", "apps.test"]);
        let api = leaf("api", &["api.test"]);
        Self {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().to_vec(),
            wildcard,
            api,
            _dir: dir,
        }
    }

    /// `[[tls.certificates]]` entries; the wildcard comes first and so is
    /// also the default for unknown names.
    pub fn toml(&self) -> String {
        let entry = |l: &Leaf, hosts: &str| {
            format!(
                "[[tls.certificates]]\ncert = \"{}\"\nkey = \"{}\"\nhosts = {hosts}\n",
                l.cert.display(),
                l.key.display()
            )
        };
        entry(&self.wildcard, r#"["*.apps.test", "apps.test"]"#)
            + &entry(&self.api, r#"["api.test"]"#)
    }

    /// A reqwest client builder that trusts only this CA and sends every
    /// name in `names` to `addr`.
    pub fn client(&self, addr: SocketAddr, names: &[&str]) -> reqwest::ClientBuilder {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA for reqwest");
        names.iter().fold(
            reqwest::Client::builder()
                .tls_built_in_root_certs(false)
                .add_root_certificate(ca)
                .timeout(Duration::from_secs(10)),
            |b, n| b.resolve(n, addr),
        )
    }

    /// A TLS handshake with `sni` offering `alpn`; returns the negotiated
    /// protocol and the DER of the certificate the server presented.
    pub async fn handshake(
        &self,
        addr: SocketAddr,
        sni: &str,
        alpn: &[&[u8]],
    ) -> (Option<Vec<u8>>, Vec<u8>) {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.ca_der.clone()))
            .expect("add CA");
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let name = ServerName::try_from(sni.to_owned()).expect("server name");
        let tcp = TcpStream::connect(addr)
            .await
            .expect("connect TLS listener");
        let tls = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp),
        )
        .await
        .expect("handshake in time")
        .unwrap_or_else(|e| panic!("handshake for {sni}: {e}"));
        let conn = tls.get_ref().1;
        let leaf = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .expect("server presented a certificate")
            .to_vec();
        (conn.alpn_protocol().map(<[u8]>::to_vec), leaf)
    }
}
