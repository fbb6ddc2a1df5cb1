//! The cluster key: how a server proves to another that it belongs to the
//! same cluster and region.
//!
//! Every server-to-server request carries [`AUTH_HEADER`]: `v1 <unix
//! seconds> <hex HMAC-SHA256>` over the method, the path with its query,
//! the time and the SHA-256 of the body (sent in [`BODY_HASH_HEADER`]).
//! The receiver checks the header before it reads the body (so an
//! unauthenticated caller cannot make it buffer anything), then checks the
//! body against the hash. A request is accepted within [`MAX_SKEW`] of its
//! timestamp; within that window an eavesdropper could replay it
//! unchanged, which is why TLS is the answer for networks with on-path
//! attackers (as with Nomad's gossip key).
//!
//! The key is derived from the gossip `encrypt` key and the region, so a
//! cluster secured with a gossip key is not open on its RPC port, and a
//! server of another region sharing the gossip key is still refused. A
//! `-dev` agent makes a random one: nobody else may call its Raft routes.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The header with the signature.
pub const AUTH_HEADER: &str = "x-caravan-cluster-auth";
/// The header with the body's SHA-256, in hex.
pub const BODY_HASH_HEADER: &str = "x-caravan-body-sha256";
/// How far a request's timestamp may be from the receiver's clock.
pub const MAX_SKEW_SECS: u64 = 60;
const MAX_SKEW: u64 = MAX_SKEW_SECS;

type HmacSha256 = Hmac<Sha256>;

/// Who is on the other end of a connection, as its TLS certificate says;
/// the listener puts it in every request's extensions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The connection is TLS and the peer presented a CA-signed
    /// certificate.
    pub verified: bool,
    /// That certificate names a server of this region
    /// (`server.<region>.nomad`).
    pub server_of_region: bool,
}

/// Why a request was not accepted as coming from a server of this cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing cluster authentication")]
    Missing,
    #[error("malformed cluster authentication")]
    Malformed,
    #[error("cluster authentication expired or from the future")]
    Stale,
    #[error("cluster authentication does not match")]
    Mismatch,
    #[error("request body does not match its signed hash")]
    BodyMismatch,
}

/// The secret shared by every server of one region: requests are signed
/// with the first key and accepted under any (so a gossip key rotation,
/// install then use then remove, never splits the servers).
#[derive(Clone)]
pub struct ClusterKey {
    mac_key: [u8; 32],
    also_accepted: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(<redacted>)")
    }
}

impl ClusterKey {
    /// Derives the RPC key from the gossip key: HMAC-SHA256 keyed with the
    /// gossip key over a label and the region, so the two keys are never
    /// the same bytes.
    pub fn from_gossip_key(gossip_key: &[u8], region: &str) -> Self {
        Self {
            mac_key: derive(gossip_key, region),
            also_accepted: Vec::new(),
        }
    }

    /// From a gossip keyring: the primary key first, then the others.
    /// `None` when the keyring is empty.
    pub fn from_gossip_keyring(keys: &[Vec<u8>], region: &str) -> Option<Self> {
        let (primary, others) = keys.split_first()?;
        Some(Self {
            mac_key: derive(primary, region),
            also_accepted: others.iter().map(|key| derive(key, region)).collect(),
        })
    }

    /// A key nobody else knows: a one-server `-dev` agent's.
    pub fn random() -> Self {
        Self {
            mac_key: rand::random(),
            also_accepted: Vec::new(),
        }
    }

    fn mac(&self, method: &str, path: &str, timestamp: u64, body_hash: &str) -> HmacSha256 {
        Self::mac_with(&self.mac_key, method, path, timestamp, body_hash)
    }

    fn mac_with(
        key: &[u8; 32],
        method: &str,
        path: &str,
        timestamp: u64,
        body_hash: &str,
    ) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
        for part in ["v1", method, path, &timestamp.to_string(), body_hash] {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        mac
    }

    /// The two header values for a request: the signature and the body
    /// hash.
    pub fn sign(&self, method: &str, path: &str, body: &[u8]) -> (String, String) {
        let body_hash = body_sha256(body);
        let timestamp = unix_now();
        let tag = self
            .mac(method, path, timestamp, &body_hash)
            .finalize()
            .into_bytes();
        (format!("v1 {timestamp} {}", to_hex(&tag)), body_hash)
    }

    /// Checks the signature header against the method, path and claimed
    /// body hash (before the body is read).
    pub fn verify_header(
        &self,
        header: Option<&str>,
        method: &str,
        path: &str,
        body_hash: Option<&str>,
    ) -> Result<(), AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let body_hash = body_hash.ok_or(AuthError::Missing)?;
        let mut parts = header.split(' ');
        let (Some("v1"), Some(timestamp), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let timestamp: u64 = timestamp.parse().map_err(|_| AuthError::Malformed)?;
        let tag = from_hex(tag).ok_or(AuthError::Malformed)?;
        if body_hash.len() != 64 {
            return Err(AuthError::Malformed);
        }
        if unix_now().abs_diff(timestamp) > MAX_SKEW {
            return Err(AuthError::Stale);
        }
        let accepted = std::iter::once(&self.mac_key).chain(&self.also_accepted);
        for key in accepted {
            if Self::mac_with(key, method, path, timestamp, body_hash)
                .verify_slice(&tag)
                .is_ok()
            {
                return Ok(());
            }
        }
        Err(AuthError::Mismatch)
    }
}

/// The RPC key for one gossip key and region: HMAC-SHA256 keyed with the
/// gossip key over a label and the region, so the two keys are never the
/// same bytes.
fn derive(gossip_key: &[u8], region: &str) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(gossip_key).expect("HMAC takes any key length");
    mac.update(b"caravan server rpc v1\0");
    mac.update(region.as_bytes());
    let mut mac_key = [0u8; 32];
    mac_key.copy_from_slice(&mac.finalize().into_bytes());
    mac_key
}

/// Checks a body read after its header was verified.
pub fn verify_body(claimed_hash: &str, body: &[u8]) -> Result<(), AuthError> {
    let actual = body_sha256(body);
    // Both are hex of public data; the MAC already vouched for the claim.
    if actual.eq_ignore_ascii_case(claimed_hash) {
        Ok(())
    } else {
        Err(AuthError::BodyMismatch)
    }
}

fn body_sha256(body: &[u8]) -> String {
    to_hex(&Sha256::digest(body))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ClusterKey {
        ClusterKey::from_gossip_key(&[7u8; 32], "global")
    }

    #[test]
    fn a_signed_request_verifies() {
        let (header, hash) = key().sign("POST", "/rpc/raft", b"{}");
        key()
            .verify_header(Some(&header), "POST", "/rpc/raft", Some(&hash))
            .unwrap();
        verify_body(&hash, b"{}").unwrap();
    }

    #[test]
    fn another_key_region_path_or_body_is_refused() {
        let (header, hash) = key().sign("POST", "/rpc/raft", b"{}");
        let other = ClusterKey::from_gossip_key(&[8u8; 32], "global");
        assert_eq!(
            other.verify_header(Some(&header), "POST", "/rpc/raft", Some(&hash)),
            Err(AuthError::Mismatch)
        );
        let other_region = ClusterKey::from_gossip_key(&[7u8; 32], "europe");
        assert_eq!(
            other_region.verify_header(Some(&header), "POST", "/rpc/raft", Some(&hash)),
            Err(AuthError::Mismatch)
        );
        assert_eq!(
            key().verify_header(Some(&header), "POST", "/rpc/raft/remove-peer", Some(&hash)),
            Err(AuthError::Mismatch)
        );
        assert_eq!(
            verify_body(&hash, b"{\"x\":1}"),
            Err(AuthError::BodyMismatch)
        );
        let forged_hash = body_sha256(b"{\"x\":1}");
        assert_eq!(
            key().verify_header(Some(&header), "POST", "/rpc/raft", Some(&forged_hash)),
            Err(AuthError::Mismatch)
        );
    }

    #[test]
    fn missing_malformed_and_stale_headers_are_refused() {
        let hash = body_sha256(b"");
        assert_eq!(
            key().verify_header(None, "GET", "/rpc/raft/status", Some(&hash)),
            Err(AuthError::Missing)
        );
        assert_eq!(
            key().verify_header(Some("v1 x y"), "GET", "/rpc/raft/status", Some(&hash)),
            Err(AuthError::Malformed)
        );
        let old = unix_now() - 2 * MAX_SKEW;
        let tag = key()
            .mac("GET", "/rpc/raft/status", old, &hash)
            .finalize()
            .into_bytes();
        let header = format!("v1 {old} {}", to_hex(&tag));
        assert_eq!(
            key().verify_header(Some(&header), "GET", "/rpc/raft/status", Some(&hash)),
            Err(AuthError::Stale)
        );
    }

    #[test]
    fn a_keyring_signs_with_its_primary_and_accepts_every_key() {
        let old = vec![7u8; 32];
        let new = vec![9u8; 32];
        let rotating =
            ClusterKey::from_gossip_keyring(&[new.clone(), old.clone()], "global").unwrap();
        let (header, hash) = key().sign("GET", "/rpc/raft/status", b"");
        rotating
            .verify_header(Some(&header), "GET", "/rpc/raft/status", Some(&hash))
            .unwrap();
        let (header, hash) = rotating.sign("GET", "/rpc/raft/status", b"");
        assert_eq!(
            key().verify_header(Some(&header), "GET", "/rpc/raft/status", Some(&hash)),
            Err(AuthError::Mismatch)
        );
        ClusterKey::from_gossip_key(&new, "global")
            .verify_header(Some(&header), "GET", "/rpc/raft/status", Some(&hash))
            .unwrap();
        assert!(ClusterKey::from_gossip_keyring(&[], "global").is_none());
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", key()), "ClusterKey(<redacted>)");
    }
}
