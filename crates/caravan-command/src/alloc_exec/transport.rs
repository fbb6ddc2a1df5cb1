//! The exec session's connection: plain TCP, or TLS set up from the same
//! settings as the SDK's HTTPS client (`-ca-cert`/`NOMAD_CACERT`, the
//! client certificate and key, `-tls-skip-verify`), so `alloc exec` works
//! against an agent whose HTTP API requires TLS and client certificates.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use crate::error::CommandError;

/// How long one read waits: the session's one thread also sends input, so
/// a read must give the turn back often.
const READ_TURN: Duration = Duration::from_millis(50);

/// How long connecting, and each read of the TLS and websocket handshakes,
/// may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

pub enum Transport {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Transport {
    /// Connects to `authority` (`host:port`), with TLS when `tls`.
    pub fn connect(
        config: &caravan_sdk::Config,
        authority: &str,
        tls: bool,
    ) -> Result<Self, CommandError> {
        let failed = |error: std::io::Error| {
            CommandError::failed(format!("Error connecting to {authority}: {error}"))
        };
        // Bounded: an address that never answers, or a server that accepts
        // and then says nothing, is an error, not a hang.
        let address = authority
            .to_socket_addrs()
            .map_err(failed)?
            .next()
            .ok_or_else(|| {
                CommandError::failed(format!("Error connecting to {authority}: no address"))
            })?;
        let tcp = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).map_err(failed)?;
        tcp.set_read_timeout(Some(CONNECT_TIMEOUT))
            .map_err(failed)?;
        if !tls {
            return Ok(Self::Plain(tcp));
        }
        let host = host_of(authority);
        let name = ServerName::try_from(host.to_string()).map_err(|error| {
            CommandError::failed(format!("Error: {host:?} is not a TLS server name: {error}"))
        })?;
        let connection = ClientConnection::new(Arc::new(client_config(config)?), name)
            .map_err(|error| CommandError::failed(format!("Error starting TLS: {error}")))?;
        Ok(Self::Tls(Box::new(StreamOwned::new(connection, tcp))))
    }
}

impl Transport {
    /// From here on a read waits at most [`READ_TURN`] (TLS and the
    /// websocket both keep a partial record or frame for the next read).
    pub fn take_turns(&self) -> Result<(), CommandError> {
        let tcp = match self {
            Self::Plain(stream) => stream,
            Self::Tls(stream) => stream.get_ref(),
        };
        tcp.set_read_timeout(Some(READ_TURN))
            .map_err(|error| CommandError::failed(format!("Error on the exec session: {error}")))
    }
}

impl Read for Transport {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(stream) => stream.read(buffer),
            Self::Tls(stream) => stream.read(buffer),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(stream) => stream.write(buffer),
            Self::Tls(stream) => stream.write(buffer),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Plain(stream) => stream.flush(),
            Self::Tls(stream) => stream.flush(),
        }
    }
}

/// `host` of `host:port` (an IPv6 address without its brackets).
fn host_of(authority: &str) -> &str {
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

fn client_config(config: &caravan_sdk::Config) -> Result<ClientConfig, CommandError> {
    let tls_error =
        |error: rustls::Error| CommandError::failed(format!("Error setting up TLS: {error}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?;
    let builder = if config.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
    } else if let Some(ca) = &config.ca_cert {
        let mut roots = rustls::RootCertStore::empty();
        for certificate in read_certificates(ca)? {
            roots.add(certificate).map_err(tls_error)?;
        }
        builder.with_root_certificates(roots)
    } else {
        use rustls_platform_verifier::BuilderVerifierExt;
        builder.with_platform_verifier().map_err(tls_error)?
    };
    match (&config.client_cert, &config.client_key) {
        (Some(cert), Some(key)) => {
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|error| CommandError::failed(format!("Error reading {key}: {error}")))?;
            builder
                .with_client_auth_cert(read_certificates(cert)?, key)
                .map_err(tls_error)
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

fn read_certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, CommandError> {
    let read_error = |error: rustls::pki_types::pem::Error| {
        CommandError::failed(format!("Error reading {path}: {error}"))
    };
    CertificateDer::pem_file_iter(path)
        .map_err(read_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_error)
}

/// `-tls-skip-verify`: any certificate is accepted (signatures are still
/// checked, so the handshake itself is sound).
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_their_port_and_brackets() {
        assert_eq!(host_of("127.0.0.1:4646"), "127.0.0.1");
        assert_eq!(host_of("[::1]:4646"), "::1");
        assert_eq!(host_of("nomad.example"), "nomad.example");
    }
}
