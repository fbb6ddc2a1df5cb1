//! The gossip keyring, as Serf keeps it: a primary key that encrypts every
//! outgoing gossip datagram and further installed keys that are accepted
//! when opening incoming ones (for rotating keys without a partition).
//!
//! A sealed datagram is `[version = 1][nonce: 12 bytes][ciphertext + tag]`,
//! AES-GCM (128, 192 or 256 by key length) with a random nonce and the
//! version byte as associated data. With no key, datagrams pass through
//! unchanged; with a key, anything that no installed key opens (plaintext
//! included) is dropped.
//!
//! The keyring persists in a JSON file (Serf's format: base64 keys, the
//! primary first), written with mode 0600.

use std::path::{Path, PathBuf};

use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes192;
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use base64::Engine;
use rand::RngCore;

/// The only framing version so far.
pub const VERSION: u8 = 1;
pub const NONCE_SIZE: usize = 12;
pub const TAG_SIZE: usize = 16;
/// What sealing adds to a datagram.
pub const OVERHEAD: usize = 1 + NONCE_SIZE + TAG_SIZE;

/// Serf's message for removing the primary key.
pub const REMOVE_PRIMARY: &str = "Removing the primary key is not allowed";
/// Serf's message for using a key that is not installed.
pub const NOT_INSTALLED: &str = "Requested key is not in the keyring";
/// Serf's message for modifying the keyring of an unencrypted agent.
pub const NOT_ENABLED: &str = "No keyring to modify (encryption not enabled)";

type Aes192Gcm = AesGcm<Aes192, aes_gcm::aead::consts::U12>;

enum Cipher {
    Aes128(Box<Aes128Gcm>),
    Aes192(Box<Aes192Gcm>),
    Aes256(Box<Aes256Gcm>),
}

impl Cipher {
    fn new(key: &[u8]) -> Result<Self, String> {
        let invalid = |_| "invalid key".to_string();
        match key.len() {
            16 => Ok(Self::Aes128(Box::new(
                Aes128Gcm::new_from_slice(key).map_err(invalid)?,
            ))),
            24 => Ok(Self::Aes192(Box::new(
                Aes192Gcm::new_from_slice(key).map_err(invalid)?,
            ))),
            32 => Ok(Self::Aes256(Box::new(
                Aes256Gcm::new_from_slice(key).map_err(invalid)?,
            ))),
            length => Err(format!("key size must be 16, 24 or 32 bytes, got {length}")),
        }
    }

    fn seal(&self, nonce: &[u8; NONCE_SIZE], message: &[u8]) -> Vec<u8> {
        let nonce = GenericArray::from_slice(nonce);
        let payload = Payload {
            msg: message,
            aad: &[VERSION],
        };
        let sealed = match self {
            Self::Aes128(cipher) => cipher.encrypt(nonce, payload),
            Self::Aes192(cipher) => cipher.encrypt(nonce, payload),
            Self::Aes256(cipher) => cipher.encrypt(nonce, payload),
        };
        // Encryption only fails for messages far beyond a datagram.
        sealed.unwrap_or_default()
    }

    fn open(&self, nonce: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let nonce = GenericArray::from_slice(nonce);
        let payload = Payload {
            msg: sealed,
            aad: &[VERSION],
        };
        match self {
            Self::Aes128(cipher) => cipher.decrypt(nonce, payload),
            Self::Aes192(cipher) => cipher.decrypt(nonce, payload),
            Self::Aes256(cipher) => cipher.decrypt(nonce, payload),
        }
        .ok()
    }
}

struct Key {
    bytes: Vec<u8>,
    cipher: Cipher,
}

/// Why an incoming datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Too short, or not our framing version (plaintext, for one).
    NotSealed,
    /// No installed key opens it (wrong key, or tampered).
    NoKey,
}

/// The keys, primary first.
pub struct Keyring {
    keys: Vec<Key>,
    file: Option<PathBuf>,
}

/// Base64 of a key, as the API and the keyring file show it.
pub fn encode_key(key: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// Decodes and checks a base64 key.
pub fn decode_key(key: &str) -> Result<Vec<u8>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .map_err(|error| format!("failed to decode key: {error}"))?;
    Cipher::new(&bytes)?;
    Ok(bytes)
}

/// A new random 32-byte key, base64 (`operator gossip keyring generate`).
pub fn generate_key() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    encode_key(&key)
}

impl Keyring {
    /// A keyring of `keys` (primary first) that is not persisted.
    pub fn new(keys: &[Vec<u8>]) -> Result<Self, String> {
        let mut keyring = Self {
            keys: Vec::new(),
            file: None,
        };
        for key in keys {
            keyring.push(key)?;
        }
        Ok(keyring)
    }

    /// Serf's start-up: an existing keyring file wins (it holds the keys
    /// installed since); otherwise `initial`, when given, starts a new file.
    pub fn load(initial: Option<&[u8]>, file: Option<&Path>) -> Result<Self, String> {
        let Some(file) = file else {
            return Self::new(&initial.map(<[u8]>::to_vec).into_iter().collect::<Vec<_>>());
        };
        let name = file.display();
        let mut keyring = match std::fs::read(file) {
            Ok(text) => {
                let keys: Vec<String> = serde_json::from_slice(&text)
                    .map_err(|error| format!("error parsing keyring file {name}: {error}"))?;
                let keys = keys
                    .iter()
                    .map(|key| decode_key(key))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|error| format!("keyring file {name}: {error}"))?;
                if initial.is_some() {
                    tracing::warn!(file = %name, "keyring file exists; using it, not the encrypt key");
                }
                Self::new(&keys)?
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Self::new(&initial.map(<[u8]>::to_vec).into_iter().collect::<Vec<_>>())?
            }
            Err(error) => return Err(format!("error reading keyring file {name}: {error}")),
        };
        keyring.file = Some(file.to_path_buf());
        if !keyring.keys.is_empty() {
            keyring.save()?;
        }
        Ok(keyring)
    }

    fn push(&mut self, key: &[u8]) -> Result<(), String> {
        if self.keys.iter().any(|known| known.bytes == key) {
            return Ok(());
        }
        let cipher = Cipher::new(key)?;
        self.keys.push(Key {
            bytes: key.to_vec(),
            cipher,
        });
        Ok(())
    }

    /// Whether gossip is encrypted.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The installed keys, base64, primary first.
    pub fn list(&self) -> Vec<String> {
        self.keys.iter().map(|key| encode_key(&key.bytes)).collect()
    }

    /// The primary key, base64.
    pub fn primary(&self) -> Option<String> {
        self.keys.first().map(|key| encode_key(&key.bytes))
    }

    /// Installs a key for decryption (a no-op when it is installed).
    pub fn install(&mut self, key: &str) -> Result<(), String> {
        if !self.enabled() {
            return Err(NOT_ENABLED.to_string());
        }
        let bytes = decode_key(key)?;
        self.push(&bytes)?;
        self.save()
    }

    /// Makes an installed key the primary one.
    pub fn use_key(&mut self, key: &str) -> Result<(), String> {
        if !self.enabled() {
            return Err(NOT_ENABLED.to_string());
        }
        let bytes = decode_key(key)?;
        let index = self
            .keys
            .iter()
            .position(|known| known.bytes == bytes)
            .ok_or_else(|| NOT_INSTALLED.to_string())?;
        let chosen = self.keys.remove(index);
        self.keys.insert(0, chosen);
        self.save()
    }

    /// Removes a key that is not the primary one.
    pub fn remove(&mut self, key: &str) -> Result<(), String> {
        if !self.enabled() {
            return Err(NOT_ENABLED.to_string());
        }
        let bytes = decode_key(key)?;
        if self.keys[0].bytes == bytes {
            return Err(REMOVE_PRIMARY.to_string());
        }
        self.keys.retain(|known| known.bytes != bytes);
        self.save()
    }

    /// Writes the keyring file (mode 0600), through a rename so a crash
    /// leaves the old file or the new one.
    fn save(&self) -> Result<(), String> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let text = serde_json::to_vec(&self.list()).map_err(std::io::Error::other)?;
            let staging = file.with_extension("tmp");
            let _ = std::fs::remove_file(&staging);
            {
                use std::io::Write;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut out = options.open(&staging)?;
                out.write_all(&text)?;
                out.sync_all()?;
            }
            std::fs::rename(&staging, file)
        };
        write().map_err(|error| format!("error writing keyring file {}: {error}", file.display()))
    }

    /// Seals a datagram with the primary key (unchanged without keys).
    pub fn seal(&self, message: &[u8]) -> Vec<u8> {
        let Some(primary) = self.keys.first() else {
            return message.to_vec();
        };
        let mut nonce = [0u8; NONCE_SIZE];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = primary.cipher.seal(&nonce, message);
        let mut packet = Vec::with_capacity(1 + NONCE_SIZE + sealed.len());
        packet.push(VERSION);
        packet.extend_from_slice(&nonce);
        packet.extend_from_slice(&sealed);
        packet
    }

    /// Opens a datagram with any installed key (unchanged without keys).
    pub fn open(&self, packet: &[u8]) -> Result<Vec<u8>, Dropped> {
        if self.keys.is_empty() {
            return Ok(packet.to_vec());
        }
        if packet.len() < OVERHEAD || packet[0] != VERSION {
            return Err(Dropped::NotSealed);
        }
        let (nonce, sealed) = packet[1..].split_at(NONCE_SIZE);
        self.keys
            .iter()
            .find_map(|key| key.cipher.open(nonce, sealed))
            .ok_or(Dropped::NoKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(length: usize, fill: u8) -> Vec<u8> {
        vec![fill; length]
    }

    #[test]
    fn sealed_datagrams_round_trip_for_every_key_size() {
        for length in [16, 24, 32] {
            let keyring = Keyring::new(&[key(length, 7)]).unwrap();
            let packet = keyring.seal(b"ping");
            assert_eq!(packet[0], VERSION);
            assert_eq!(packet.len(), 4 + OVERHEAD);
            assert_eq!(keyring.open(&packet).unwrap(), b"ping");
            // A fresh nonce every time.
            assert_ne!(keyring.seal(b"ping"), packet);
        }
    }

    #[test]
    fn wrong_keys_tampering_and_plaintext_are_dropped() {
        let ours = Keyring::new(&[key(32, 1)]).unwrap();
        let theirs = Keyring::new(&[key(32, 2)]).unwrap();
        let packet = theirs.seal(b"join me");
        assert_eq!(ours.open(&packet), Err(Dropped::NoKey));

        let mut tampered = ours.seal(b"join me");
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(ours.open(&tampered), Err(Dropped::NoKey));
        let mut tampered = ours.seal(b"join me");
        tampered[1 + NONCE_SIZE] ^= 0x80;
        assert_eq!(ours.open(&tampered), Err(Dropped::NoKey));
        let mut other_version = ours.seal(b"join me");
        other_version[0] = 2;
        assert_eq!(ours.open(&other_version), Err(Dropped::NotSealed));

        assert_eq!(ours.open(b"plain"), Err(Dropped::NotSealed));
        let plaintext = [VERSION; 64];
        assert_eq!(ours.open(&plaintext), Err(Dropped::NoKey));

        // Without keys, as before: plaintext in, plaintext out.
        let none = Keyring::new(&[]).unwrap();
        assert_eq!(none.seal(b"plain"), b"plain");
        assert_eq!(none.open(b"plain").unwrap(), b"plain");
    }

    #[test]
    fn secondary_keys_open_and_use_rotates() {
        let old = key(16, 3);
        let new = key(32, 4);
        let mut keyring = Keyring::new(std::slice::from_ref(&old)).unwrap();
        let sender_new = Keyring::new(std::slice::from_ref(&new)).unwrap();
        assert!(keyring.open(&sender_new.seal(b"x")).is_err());
        keyring.install(&encode_key(&new)).unwrap();
        assert_eq!(keyring.open(&sender_new.seal(b"x")).unwrap(), b"x");
        // Still seals with the old primary.
        assert!(sender_new.open(&keyring.seal(b"y")).is_err());
        assert_eq!(
            keyring.remove(&encode_key(&old)),
            Err(REMOVE_PRIMARY.into())
        );
        keyring.use_key(&encode_key(&new)).unwrap();
        assert_eq!(sender_new.open(&keyring.seal(b"y")).unwrap(), b"y");
        keyring.remove(&encode_key(&old)).unwrap();
        assert_eq!(keyring.list(), [encode_key(&new)]);
        assert_eq!(
            keyring.use_key(&encode_key(&old)),
            Err(NOT_INSTALLED.into())
        );
        assert!(keyring.install("c2hvcnQ=").is_err());
        let mut none = Keyring::new(&[]).unwrap();
        assert_eq!(none.install(&encode_key(&new)), Err(NOT_ENABLED.into()));
    }

    #[test]
    fn the_keyring_file_persists_and_wins() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("serf").join("keyring");
        let first = key(32, 5);
        let second = key(32, 6);
        let mut keyring = Keyring::load(Some(&first), Some(&file)).unwrap();
        keyring.install(&encode_key(&second)).unwrap();
        keyring.use_key(&encode_key(&second)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text: Vec<String> = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(text, [encode_key(&second), encode_key(&first)]);

        let reloaded = Keyring::load(Some(&first), Some(&file)).unwrap();
        assert_eq!(reloaded.primary(), Some(encode_key(&second)));
        assert_eq!(reloaded.list().len(), 2);
        let unkeyed = Keyring::load(None, Some(&file)).unwrap();
        assert!(unkeyed.enabled());

        let empty = Keyring::load(None, Some(&dir.path().join("none"))).unwrap();
        assert!(!empty.enabled());
        assert!(!dir.path().join("none").exists());
        assert_eq!(decode_key(&generate_key()).unwrap().len(), 32);
    }
}
