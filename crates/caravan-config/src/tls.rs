//! Nomad's `tls {}` agent block.

use std::path::PathBuf;

use serde::Deserialize;

/// The `tls` block as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub http: Option<bool>,
    pub rpc: Option<bool>,
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub verify_server_hostname: Option<bool>,
    pub verify_https_client: Option<bool>,
    // Accepted so Nomad files load; rustls picks safe versions and suites.
    pub rpc_upgrade_mode: Option<bool>,
    pub tls_min_version: Option<String>,
    pub tls_cipher_suites: Option<String>,
    pub tls_prefer_server_cipher_suites: Option<bool>,
}

/// TLS settings in force (all off unless set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    pub http: bool,
    pub rpc: bool,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub verify_server_hostname: bool,
    pub verify_https_client: bool,
}

impl TlsConfig {
    /// Applies what a file sets; later files override earlier ones.
    pub fn apply(&mut self, file: &TlsFile) -> Result<(), (String, String)> {
        let set = |slot: &mut bool, value: Option<bool>| {
            if let Some(value) = value {
                *slot = value;
            }
        };
        set(&mut self.http, file.http);
        set(&mut self.rpc, file.rpc);
        set(
            &mut self.verify_server_hostname,
            file.verify_server_hostname,
        );
        set(&mut self.verify_https_client, file.verify_https_client);
        for (slot, value) in [
            (&mut self.ca_file, &file.ca_file),
            (&mut self.cert_file, &file.cert_file),
            (&mut self.key_file, &file.key_file),
        ] {
            if let Some(value) = value {
                *slot = Some(PathBuf::from(value));
            }
        }
        if let Some(version) = &file.tls_min_version {
            if !matches!(version.as_str(), "tls10" | "tls11" | "tls12" | "tls13") {
                return Err((
                    "tls.tls_min_version".to_string(),
                    format!("{version:?} is not one of tls10, tls11, tls12, tls13"),
                ));
            }
        }
        Ok(())
    }

    pub fn enabled(&self) -> bool {
        self.http || self.rpc
    }
}
