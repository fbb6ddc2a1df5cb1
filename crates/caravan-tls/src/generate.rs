//! The CA and the agent certificates behind `caravan tls ca create` and
//! `caravan tls cert create`, named and shaped as Nomad's commands make
//! them (ECDSA P-256 keys; servers `server.<region>.<domain>`, clients
//! `client.<region>.<domain>`, the CLI `cli.<region>.<domain>`, each also
//! valid for `localhost` and, but for the CLI, `127.0.0.1`).

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// A PEM certificate and its PEM private key.
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair").finish_non_exhaustive()
    }
}

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{0}")]
    Invalid(String),
    #[error("failed to generate: {0}")]
    Crypto(#[from] rcgen::Error),
}

/// What kind of agent certificate to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
    Cli,
}

impl Role {
    pub fn word(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
            Role::Cli => "cli",
        }
    }
}

fn validity(params: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    // A minute back, so a peer with a slightly slow clock accepts it.
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::days(i64::from(days));
}

/// A new CA for `domain`, valid `days`.
pub fn ca(domain: &str, common_name: Option<&str>, days: u32) -> Result<Pair, GenerateError> {
    if days == 0 {
        return Err(GenerateError::Invalid("Days must be >= 1".to_string()));
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let serial: u64 = rand_serial();
    let name = common_name
        .map(str::to_string)
        .unwrap_or_else(|| format!("Nomad Agent CA {serial}"));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationName, "HashiCorp Inc.");
    dn.push(DnType::CountryName, "US");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(serial.to_be_bytes().to_vec().into());
    params
        .subject_alt_names
        .push(SanType::DnsName(domain.to_string().try_into()?));
    validity(&mut params, days);
    let cert = params.self_signed(&key)?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A certificate for `role` in `region`, signed by the CA given as PEM.
#[allow(clippy::too_many_arguments)] // Nomad's flags, one for one.
pub fn agent_cert(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    role: Role,
    region: &str,
    domain: &str,
    days: u32,
    additional_dns: &[String],
    additional_ips: &[IpAddr],
) -> Result<Pair, GenerateError> {
    if days == 0 {
        return Err(GenerateError::Invalid("Days must be >= 1".to_string()));
    }
    let ca_key = KeyPair::from_pem(ca_key_pem)
        .map_err(|error| GenerateError::Invalid(format!("Error parsing CA key: {error}")))?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key)
        .map_err(|error| GenerateError::Invalid(format!("Error parsing CA: {error}")))?;
    let name = format!("{}.{region}.{domain}", role.word());
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name.clone());
    params.distinguished_name = dn;
    let mut dns = vec![name, "localhost".to_string()];
    dns.extend(additional_dns.iter().cloned());
    for dns_name in dns {
        params
            .subject_alt_names
            .push(SanType::DnsName(dns_name.try_into()?));
    }
    let mut ips: Vec<IpAddr> = Vec::new();
    if role != Role::Cli {
        ips.push(IpAddr::from([127, 0, 0, 1]));
    }
    ips.extend(additional_ips.iter().copied());
    for ip in ips {
        params.subject_alt_names.push(SanType::IpAddress(ip));
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = match role {
        // Servers also dial each other, so they are TLS clients too.
        Role::Server | Role::Client => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Role::Cli => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.serial_number = Some(rand_serial().to_be_bytes().to_vec().into());
    validity(&mut params, days);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn rand_serial() -> u64 {
    // Not secret, only unique: the clock and the process are enough.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 40)) & (u64::MAX >> 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    #[test]
    fn server_certificates_name_a_server_of_their_region_and_client_ones_do_not() {
        let ca = super::ca("nomad", None, 30).unwrap();
        let server = agent_cert(
            &ca.cert_pem,
            &ca.key_pem,
            Role::Server,
            "global",
            "nomad",
            30,
            &[],
            &[],
        )
        .unwrap();
        let client = agent_cert(
            &ca.cert_pem,
            &ca.key_pem,
            Role::Client,
            "global",
            "nomad",
            30,
            &[],
            &[],
        )
        .unwrap();
        let der = |pem: &str| vec![CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()];
        assert!(crate::peer_is_server(&der(&server.cert_pem), "global"));
        assert!(!crate::peer_is_server(&der(&server.cert_pem), "europe"));
        assert!(!crate::peer_is_server(&der(&client.cert_pem), "global"));
        assert!(agent_cert(
            &ca.cert_pem,
            "garbage",
            Role::Cli,
            "g",
            "nomad",
            1,
            &[],
            &[]
        )
        .is_err());
        assert!(super::ca("nomad", None, 0).is_err());
    }
}
