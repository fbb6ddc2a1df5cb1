//! Loading the agent's certificates and building rustls configurations.

use std::path::{Path, PathBuf};

use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS could not be set up. Each names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls.{key}: {path}: {message}")]
    File {
        key: &'static str,
        path: String,
        message: String,
    },
    #[error("tls.{key} is required when tls.http or tls.rpc is enabled")]
    Missing { key: &'static str },
    #[error("tls: {0}")]
    Config(String),
}

/// The agent's `tls {}` block, as the configuration crate reads it.
pub use caravan_config::tls::TlsConfig as TlsSettings;

/// The CA, this agent's current certificate and key, and the settings.
pub struct AgentTls {
    settings: TlsSettings,
    region: String,
    provider: Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for AgentTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentTls")
            .field("settings", &self.settings)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

fn file_error(key: &'static str, path: &Path, message: impl ToString) -> TlsError {
    TlsError::File {
        key,
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

fn required<'a>(value: &'a Option<PathBuf>, key: &'static str) -> Result<&'a Path, TlsError> {
    value.as_deref().ok_or(TlsError::Missing { key })
}

fn load_certs(path: &Path, key: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|error| file_error(key, path, error))?
        .collect::<Result<_, _>>()
        .map_err(|error| file_error(key, path, error))?;
    if certs.is_empty() {
        return Err(file_error(key, path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

fn load_key(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = load_certs(cert_path, "cert_file")?;
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|error| file_error("key_file", key_path, error))?;
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|error| file_error("key_file", key_path, error))
}

impl AgentTls {
    /// Loads the CA, certificate and key named by `settings`.
    pub fn load(settings: &TlsSettings, region: &str) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let ca_path = required(&settings.ca_file, "ca_file")?;
        let mut roots = RootCertStore::empty();
        for cert in load_certs(ca_path, "ca_file")? {
            roots
                .add(cert)
                .map_err(|error| file_error("ca_file", ca_path, error))?;
        }
        let cert_path = required(&settings.cert_file, "cert_file")?;
        let key_path = required(&settings.key_file, "key_file")?;
        let certified = load_key(cert_path, key_path, &provider)?;
        Ok(Arc::new(Self {
            settings: settings.clone(),
            region: region.to_string(),
            provider,
            roots: Arc::new(roots),
            current: RwLock::new(Arc::new(certified)),
        }))
    }

    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// Reads the certificate and key files again (SIGHUP). On an error
    /// the old pair stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let cert_path = required(&self.settings.cert_file, "cert_file")?;
        let key_path = required(&self.settings.key_file, "key_file")?;
        let certified = load_key(cert_path, key_path, &self.provider)?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(certified);
        Ok(())
    }

    pub(crate) fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// The configuration a listener accepts with: `require_client_cert`
    /// makes the handshake fail without a certificate signed by the CA.
    /// Client certificates are verified when presented either way.
    pub fn server_config(
        self: &Arc<Self>,
        require_client_cert: bool,
    ) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let builder =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), self.provider.clone());
        let builder = match require_client_cert {
            true => builder,
            false => builder.allow_unauthenticated(),
        };
        let verifier = builder
            .build()
            .map_err(|error| TlsError::Config(error.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Config(error.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(crate::verify::Resolver(Arc::clone(self))));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The configuration outgoing connections (RPC, forwarding, the
    /// client's calls) use: the CA as the only root, this agent's
    /// certificate offered to the server.
    pub fn client_config(self: &Arc<Self>) -> Result<rustls::ClientConfig, TlsError> {
        let verifier = crate::verify::ServerVerifier::new(
            self.roots.clone(),
            self.provider.clone(),
            crate::server_name(&self.region, "nomad"),
            self.settings.verify_server_hostname,
        )?;
        let mut config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Config(error.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_cert_resolver(Arc::new(crate::verify::Resolver(Arc::clone(self))));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}
