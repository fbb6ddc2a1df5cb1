//! Certificate resolution (reloadable) and the server-name rule.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::load::{AgentTls, TlsError};

/// Hands out the agent's current certificate on every handshake, so a
/// reload takes effect for the next connection.
#[derive(Debug)]
pub(crate) struct Resolver(pub(crate) Arc<AgentTls>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }
}

impl ResolvesClientCert for Resolver {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Verifies a server's chain against the CA and, with
/// `verify_server_hostname`, that it is valid for `server.<region>.nomad`
/// rather than for the address dialled (servers are dialled by IP).
#[derive(Debug)]
pub(crate) struct ServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    expected: ServerName<'static>,
    check_name: bool,
}

impl ServerVerifier {
    pub(crate) fn new(
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
        expected: String,
        check_name: bool,
    ) -> Result<Self, TlsError> {
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|error| TlsError::Config(error.to_string()))?;
        let expected =
            ServerName::try_from(expected).map_err(|error| TlsError::Config(error.to_string()))?;
        Ok(Self {
            inner,
            expected,
            check_name,
        })
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            &self.expected,
            ocsp_response,
            now,
        ) {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Whether the peer's (already CA-verified) certificate is valid for
/// `server.<region>.nomad`: a server of this region.
pub fn peer_is_server(certs: &[CertificateDer<'_>], region: &str) -> bool {
    let Some(end_entity) = certs.first() else {
        return false;
    };
    let Ok(cert) = webpki::EndEntityCert::try_from(end_entity) else {
        return false;
    };
    let Ok(name) = ServerName::try_from(crate::server_name(region, "nomad")) else {
        return false;
    };
    cert.verify_is_valid_for_subject_name(&name).is_ok()
}
