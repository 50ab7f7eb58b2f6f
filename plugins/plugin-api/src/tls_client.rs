//! TLS for every HTTPS client of the process (peers over `https://` without `public_tls`, Consul, `http_load`,
//! the CLI): the system's root certificates, loaded on the first handshake that needs them and then shared.
//!
//! reqwest loads them when a client is built: it reads and parses every file under /etc/ssl/certs, about 5 ms
//! and a root store per client. An agent builds two clients at start (a local swarm two per agent) and most
//! never speak HTTPS, so the load waits for the first server certificate to check.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// What a client checks a server's certificate against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerCheck {
    /// The system's roots (WebPKI), loaded on first use.
    SystemRoots,
    /// Nothing: any certificate is accepted (a self-signed target the user vouched for). The handshake's
    /// signatures are still checked, so the server must hold the certificate's key.
    AcceptAny,
}

/// A client config for `check`, offering HTTP/2 and HTTP/1.1 by ALPN (reqwest takes it as it is).
pub fn client_config(check: ServerCheck) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Verifier { check, provider: provider.clone() });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring's provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// The system roots, loaded once for the whole process on first use (an error too: no roots installed).
fn system_verifier(
    provider: &Arc<CryptoProvider>,
) -> Result<&'static rustls_platform_verifier::Verifier, rustls::Error> {
    static SYSTEM: OnceLock<Result<rustls_platform_verifier::Verifier, rustls::Error>> = OnceLock::new();
    SYSTEM.get_or_init(|| rustls_platform_verifier::Verifier::new(provider.clone())).as_ref().map_err(Clone::clone)
}

#[derive(Debug)]
struct Verifier {
    check: ServerCheck,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.check {
            ServerCheck::SystemRoots => system_verifier(&self.provider)?.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            ServerCheck::AcceptAny => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
