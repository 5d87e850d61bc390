//! Identity-document numbers at rest: AES-256-GCM for the number itself (random nonce per value, the school and
//! kind as associated data so a ciphertext cannot be moved to another row's meaning), and HMAC-SHA256 under a
//! second key as the lookup hash, so a number can be found without being stored in the clear.
//!
//! The encryption key rotates: previous keys still open (tried after the current one; AES-GCM's tag tells a wrong
//! key), the current key seals, and `gradphoto admin id-key` re-seals every row and then retires the previous keys.
//! The lookup key does not: it also keys device and rate-limit hashes whose values are not kept.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("a vault key must be 32 bytes in base64")]
    BadKey,
    #[error("the stored id number cannot be opened with this key (wrong key or damaged row)")]
    Open,
}

/// The two keys; never printed.
#[derive(Clone)]
pub struct Vault {
    cipher: Aes256Gcm,
    /// Keys that open what they sealed before a rotation; they seal nothing.
    previous: Vec<Aes256Gcm>,
    lookup: [u8; 32],
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(…)")
    }
}

const NONCE: usize = 12;

impl Vault {
    pub fn new(encryption_key: [u8; 32], lookup_key: [u8; 32]) -> Vault {
        Vault { cipher: Aes256Gcm::new(&encryption_key.into()), previous: Vec::new(), lookup: lookup_key }
    }

    /// The same vault, also opening what `keys` (base64, as the key file holds them) sealed.
    pub fn with_previous<S: AsRef<str>>(mut self, keys: &[S]) -> Result<Vault, VaultError> {
        for k in keys {
            self.previous.push(Aes256Gcm::new(&decode_key(k.as_ref())?.into()));
        }
        Ok(self)
    }

    /// From the two keys in base64, as the key file holds them.
    pub fn from_base64(encryption_key: &str, lookup_key: &str) -> Result<Vault, VaultError> {
        Ok(Vault::new(decode_key(encryption_key)?, decode_key(lookup_key)?))
    }

    /// A fresh random key in base64, for a new key file.
    pub fn generate_key() -> String {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        STANDARD.encode(key)
    }

    /// nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, context: &str, number: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload { msg: number.as_bytes(), aad: context.as_bytes() };
        // Encryption with a valid key and a 12-byte nonce cannot fail for inputs this small.
        let ct = self.cipher.encrypt(Nonce::from_slice(&nonce), payload).unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        out
    }

    /// Opens with the current key or any previous one.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<String, VaultError> {
        std::iter::once(&self.cipher)
            .chain(&self.previous)
            .find_map(|c| open_with(c, context, sealed))
            .ok_or(VaultError::Open)
    }

    /// Whether `sealed` opens with the current key: a row that does needs no re-sealing.
    pub fn opens_with_current(&self, context: &str, sealed: &[u8]) -> bool {
        open_with(&self.cipher, context, sealed).is_some()
    }

    /// The keyed lookup hash of a normalised number.
    pub fn lookup_hash(&self, number: &str) -> Vec<u8> {
        self.keyed(b"id-number", number.as_bytes())
    }

    /// A keyed hash for other values that must be matched but not kept (device ids).
    pub fn keyed(&self, purpose: &[u8], value: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.lookup).expect("HMAC takes any key length");
        mac.update(purpose);
        mac.update(&[0]);
        mac.update(value);
        mac.finalize().into_bytes().to_vec()
    }
}

fn open_with(cipher: &Aes256Gcm, context: &str, sealed: &[u8]) -> Option<String> {
    if sealed.len() < NONCE + 16 {
        return None;
    }
    let (nonce, ct) = sealed.split_at(NONCE);
    let plain = cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: context.as_bytes() }).ok()?;
    String::from_utf8(plain).ok()
}

fn decode_key(b64: &str) -> Result<[u8; 32], VaultError> {
    let bytes = STANDARD.decode(b64.trim()).map_err(|_| VaultError::BadKey)?;
    bytes.try_into().map_err(|_| VaultError::BadKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault() -> Vault {
        Vault::from_base64(&Vault::generate_key(), &Vault::generate_key()).unwrap()
    }

    #[test]
    fn round_trip_and_context() {
        let v = vault();
        let sealed = v.seal("1:mainland", "11010519491231002X");
        assert!(!sealed.windows(6).any(|w| w == b"110105"), "the number must not appear in the clear");
        assert_eq!(v.open("1:mainland", &sealed).unwrap(), "11010519491231002X");
        assert!(v.open("2:mainland", &sealed).is_err(), "a ciphertext moved to another school must not open");
        assert_ne!(v.seal("1:mainland", "x"), v.seal("1:mainland", "x"), "nonces are random");
    }

    #[test]
    fn previous_keys_open_and_only_the_current_one_seals() {
        let (old_key, new_key, lookup) = (Vault::generate_key(), Vault::generate_key(), Vault::generate_key());
        let old = Vault::from_base64(&old_key, &lookup).unwrap();
        let sealed_before = old.seal("1:mainland", "11010519491231002X");
        let ring = Vault::from_base64(&new_key, &lookup).unwrap().with_previous(&[&old_key]).unwrap();
        assert_eq!(ring.open("1:mainland", &sealed_before).unwrap(), "11010519491231002X");
        assert!(!ring.opens_with_current("1:mainland", &sealed_before));
        let sealed_after = ring.seal("1:mainland", "11010519491231002X");
        assert!(ring.opens_with_current("1:mainland", &sealed_after));
        assert!(old.open("1:mainland", &sealed_after).is_err(), "the new key seals, not the old one");
        assert_eq!(ring.lookup_hash("123"), old.lookup_hash("123"), "the lookup key does not rotate");
        assert!(ring.clone().with_previous(&["c2hvcnQ="]).is_err());
    }

    #[test]
    fn lookup_is_keyed_and_stable() {
        let (a, b) = (vault(), vault());
        assert_eq!(a.lookup_hash("123"), a.lookup_hash("123"));
        assert_ne!(a.lookup_hash("123"), b.lookup_hash("123"));
        assert!(Vault::from_base64("c2hvcnQ=", &Vault::generate_key()).is_err());
    }
}
