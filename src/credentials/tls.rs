//! TLS for both listeners and for the client agents use to reach each other: rustls with PEM files from the
//! config. Agents speak HTTP/2 over TLS (ALPN `h2`); with `client_auth` the public port accepts only clients
//! that present a certificate signed by the configured CA (mutual TLS between agents).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// `tls:` (service port) and `public_tls:` (public port) in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// This agent's certificate chain (PEM). With mTLS it is also what the agent presents to its peers.
    pub cert: std::path::PathBuf,
    /// Its private key (PEM).
    pub key: std::path::PathBuf,
    /// The CA (PEM) that signed the agents' certificates: agents verify each other against it, and with
    /// `client_auth` the listener requires client certificates signed by it.
    #[serde(default)]
    pub ca: Option<std::path::PathBuf>,
    /// Mutual TLS: refuse clients without a certificate signed by `ca`.
    #[serde(default)]
    pub client_auth: bool,
}

fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read certificates from {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("invalid PEM in {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
    Ok(certs)
}

fn private_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).with_context(|| format!("cannot read a private key from {}", path.display()))
}

fn roots(ca: &Path) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(ca)? {
        roots.add(cert).with_context(|| format!("a certificate in {} is not a usable CA", ca.display()))?;
    }
    Ok(roots)
}

/// The server side of one listener.
pub fn server_config(tls: &TlsConfig) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let builder = rustls::ServerConfig::builder();
    let builder = match (&tls.ca, tls.client_auth) {
        (Some(ca), true) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots(ca)?))
                .build()
                .context("cannot build the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        (None, true) => anyhow::bail!("tls.client_auth needs tls.ca: the CA client certificates must be signed by"),
        (_, false) => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certificates(&tls.cert)?, private_key(&tls.key)?).with_context(|| {
        format!("the key {} does not fit the certificate {}", tls.key.display(), tls.cert.display())
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client builder whose HTTPS trusts the system's roots, loaded on the first handshake rather than now (see
/// `tarsier_plugin::tls_client`).
pub fn with_system_roots(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    use tarsier_plugin::tls_client::{client_config, ServerCheck};
    builder.tls_backend_preconfigured(client_config(ServerCheck::SystemRoots))
}

/// The client side: trust `ca` only, and present `identity` (certificate, key) when given.
pub fn client_config(ca: &Path, identity: Option<(&Path, &Path)>) -> anyhow::Result<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots(ca)?);
    let mut config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(certificates(cert)?, private_key(key)?)
            .with_context(|| format!("the key {} does not fit the certificate {}", key.display(), cert.display()))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
