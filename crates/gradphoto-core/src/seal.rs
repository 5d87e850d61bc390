//! The seal: the student's identity, encrypted, in the JPEG comment segment (S 四.3: "the encryption algorithm and
//! the embedding are announced separately"). A [`Sealer`] is the seam where a site plugs the official algorithm when
//! the registry publishes it; the default is AES-256-GCM.
//!
//! Payload: `GPSEAL` · version (1 byte) · key-id length (1 byte, 1–32) · key id (ASCII) · nonce (12 bytes) ·
//! ciphertext with its 16-byte tag. The plaintext is the id number, the student number and the school code,
//! separated by U+001F. The associated data is the SHA-256 of every byte of the file outside the COM segment, so
//! any change to pixels or metadata after sealing makes the seal fail.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub const MAGIC: &[u8; 6] = b"GPSEAL";
pub const VERSION: u8 = 1;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

/// What the comment segments of a file say about a seal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SealState {
    Absent,
    Present { version: u8, key_id: String },
    Malformed { reason: &'static str },
}

/// Looks for our seal among the COM payloads; other comments (cameras and editors write them) are ignored.
pub fn find(comments: &[&[u8]]) -> SealState {
    let mut seals = comments.iter().filter(|c| c.starts_with(MAGIC));
    let Some(first) = seals.next() else { return SealState::Absent };
    if seals.next().is_some() {
        return SealState::Malformed { reason: "more than one seal" };
    }
    parse(first)
}

fn parse(p: &[u8]) -> SealState {
    let rest = &p[MAGIC.len()..];
    let [version, key_len, rest @ ..] = rest else {
        return SealState::Malformed { reason: "header cut short" };
    };
    if *version != VERSION {
        return SealState::Malformed { reason: "unknown version" };
    }
    let key_len = usize::from(*key_len);
    if !(1..=32).contains(&key_len) || rest.len() < key_len {
        return SealState::Malformed { reason: "bad key id length" };
    }
    let (key_id, rest) = rest.split_at(key_len);
    if !key_id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return SealState::Malformed { reason: "key id is not plain ASCII" };
    }
    if rest.len() < NONCE_LEN + TAG_LEN + 1 {
        return SealState::Malformed { reason: "ciphertext cut short" };
    }
    SealState::Present { version: *version, key_id: String::from_utf8_lossy(key_id).into_owned() }
}

/// Who the photo belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub id_number: String,
    pub student_no: String,
    pub school: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("no seal in the file")]
    Absent,
    #[error("the seal is malformed: {0}")]
    Malformed(&'static str),
    #[error("the seal was made with key {0:?}, which is not configured")]
    UnknownKey(String),
    #[error("the seal does not match the file: pixels, metadata or the seal were changed after sealing")]
    Tampered,
    #[error("the file is not a JPEG whose segments can be read")]
    NotJpeg,
    #[error("invalid seal key: {0}")]
    Key(String),
}

/// The seam for the registry's own algorithm: turn an identity and the file's digest into a COM payload, and back.
pub trait Sealer: Send + Sync + std::fmt::Debug {
    fn seal(&self, identity: &Identity, file_digest: &[u8; 32]) -> Result<Vec<u8>, SealError>;
    fn open(&self, payload: &[u8], file_digest: &[u8; 32]) -> Result<(Identity, String), SealError>;
}

/// A 256-bit key and its id. The key never appears in Debug output or logs.
#[derive(Clone)]
pub struct SealKey {
    pub id: String,
    key: [u8; 32],
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealKey({})", self.id)
    }
}

impl SealKey {
    pub fn new(id: &str, key: [u8; 32]) -> Result<SealKey, SealError> {
        let ok = (1..=32).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err(SealError::Key("a key id is 1–32 characters of A–Z, a–z, 0–9, '-', '_', '.'".into()));
        }
        Ok(SealKey { id: id.to_string(), key })
    }
}

/// AES-256-GCM with a key ring: the first key seals, every key opens (rotation by key id).
#[derive(Debug, Clone)]
pub struct AesGcmSealer {
    keys: Vec<SealKey>,
}

impl AesGcmSealer {
    pub fn new(keys: Vec<SealKey>) -> Result<AesGcmSealer, SealError> {
        if keys.is_empty() {
            return Err(SealError::Key("no key given".into()));
        }
        Ok(AesGcmSealer { keys })
    }

    /// Parses a key ring: `id:BASE64[,id:BASE64…]` (the first seals), or a bare BASE64 key with id `k1`.
    /// Each key must decode to exactly 32 bytes.
    pub fn from_spec(spec: &str) -> Result<AesGcmSealer, SealError> {
        let mut keys = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, b64) = part.split_once(':').unwrap_or(("k1", part));
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| SealError::Key(format!("key {id:?} is not base64")))?;
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|b: Vec<u8>| SealError::Key(format!("key {id:?} is {} bytes; it must be 32", b.len())))?;
            keys.push(SealKey::new(id.trim(), key)?);
        }
        AesGcmSealer::new(keys)
    }
}

const SEPARATOR: char = '\u{1f}';

impl Sealer for AesGcmSealer {
    fn seal(&self, identity: &Identity, file_digest: &[u8; 32]) -> Result<Vec<u8>, SealError> {
        let key = &self.keys[0];
        let fields = [&identity.id_number, &identity.student_no, &identity.school];
        if fields.iter().any(|f| f.contains(SEPARATOR)) {
            return Err(SealError::Malformed("identity fields may not contain U+001F"));
        }
        let plain = format!("{}{SEPARATOR}{}{SEPARATOR}{}", fields[0], fields[1], fields[2]);
        let cipher = Aes256Gcm::new_from_slice(&key.key).map_err(|_| SealError::Key("bad key length".into()))?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(&nonce, Payload { msg: plain.as_bytes(), aad: file_digest })
            .map_err(|_| SealError::Malformed("encryption failed"))?;
        let mut out = MAGIC.to_vec();
        out.push(VERSION);
        out.push(key.id.len() as u8);
        out.extend_from_slice(key.id.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, payload: &[u8], file_digest: &[u8; 32]) -> Result<(Identity, String), SealError> {
        let SealState::Present { key_id, .. } = parse(payload) else {
            return Err(SealError::Malformed("not a seal payload"));
        };
        let key = self.keys.iter().find(|k| k.id == key_id).ok_or_else(|| SealError::UnknownKey(key_id.clone()))?;
        let start = MAGIC.len() + 2 + key_id.len();
        let nonce = Nonce::from_slice(&payload[start..start + NONCE_LEN]);
        let cipher = Aes256Gcm::new_from_slice(&key.key).map_err(|_| SealError::Key("bad key length".into()))?;
        let plain = cipher
            .decrypt(nonce, Payload { msg: &payload[start + NONCE_LEN..], aad: file_digest })
            .map_err(|_| SealError::Tampered)?;
        let text = String::from_utf8(plain).map_err(|_| SealError::Malformed("identity is not UTF-8"))?;
        let mut parts = text.split(SEPARATOR);
        let (Some(id_number), Some(student_no), Some(school), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SealError::Malformed("identity does not have three fields"));
        };
        Ok((Identity { id_number: id_number.into(), student_no: student_no.into(), school: school.into() }, key_id))
    }
}

/// Where our seal's COM segment sits in a JPEG, and the digest of everything else.
fn locate(jpeg: &[u8]) -> Result<(Option<std::ops::Range<usize>>, [u8; 32]), SealError> {
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return Err(SealError::NotJpeg);
    }
    // Walk the marker segments up to the first scan: the seal is written before it.
    let mut pos = 2;
    let mut found = None;
    while pos + 4 <= jpeg.len() && jpeg[pos] == 0xFF {
        let marker = jpeg[pos + 1];
        if marker == 0xDA || marker == 0xD9 {
            break;
        }
        let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
        if len < 2 || pos + 2 + len > jpeg.len() {
            return Err(SealError::NotJpeg);
        }
        if marker == 0xFE && jpeg[pos + 4..pos + 2 + len].starts_with(MAGIC) {
            if found.is_some() {
                return Err(SealError::Malformed("more than one seal"));
            }
            found = Some(pos..pos + 2 + len);
        }
        pos += 2 + len;
    }
    let mut h = Sha256::new();
    match &found {
        Some(r) => {
            h.update(&jpeg[..r.start]);
            h.update(&jpeg[r.end..]);
        }
        None => h.update(jpeg),
    }
    Ok((found, h.finalize().into()))
}

/// Inserts the seal as a COM segment right after SOI and the JFIF header. A seal already there is replaced.
pub fn seal_jpeg(jpeg: &[u8], sealer: &dyn Sealer, identity: &Identity) -> Result<Vec<u8>, SealError> {
    let (existing, _) = locate(jpeg)?;
    let clean: Vec<u8> = match existing {
        Some(r) => [&jpeg[..r.start], &jpeg[r.end..]].concat(),
        None => jpeg.to_vec(),
    };
    let (_, digest) = locate(&clean)?;
    let payload = sealer.seal(identity, &digest)?;
    let len = u16::try_from(payload.len() + 2).map_err(|_| SealError::Malformed("seal over 64 KiB"))?;
    let mut at = 2;
    if clean.get(2..4) == Some(&[0xFF, 0xE0][..]) && clean.len() >= 6 {
        at = 4 + usize::from(u16::from_be_bytes([clean[4], clean[5]]));
    }
    let mut out = Vec::with_capacity(clean.len() + payload.len() + 4);
    out.extend_from_slice(&clean[..at]);
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&clean[at..]);
    Ok(out)
}

/// Opens the seal of a file: the identity and the key id, or why not.
pub fn verify_jpeg(jpeg: &[u8], sealer: &dyn Sealer) -> Result<(Identity, String), SealError> {
    let (range, digest) = locate(jpeg)?;
    let range = range.ok_or(SealError::Absent)?;
    sealer.open(&jpeg[range.start + 4..range.end], &digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(key: &[u8], body: usize) -> Vec<u8> {
        let mut p = MAGIC.to_vec();
        p.push(VERSION);
        p.push(key.len() as u8);
        p.extend_from_slice(key);
        p.extend(std::iter::repeat_n(7u8, body));
        p
    }

    #[test]
    fn present_absent_malformed() {
        let good = payload(b"k2026", NONCE_LEN + TAG_LEN + 20);
        assert_eq!(find(&[b"CREATOR: gd-jpeg", &good]), SealState::Present { version: 1, key_id: "k2026".into() });
        assert_eq!(find(&[b"just a comment"]), SealState::Absent);
        assert_eq!(find(&[]), SealState::Absent);
        assert!(matches!(find(&[&payload(b"k", 5)]), SealState::Malformed { .. }));
        assert!(matches!(find(&[&good, &good]), SealState::Malformed { .. }));
        assert!(matches!(find(&[b"GPSEAL"]), SealState::Malformed { .. }));
        assert!(matches!(find(&[&payload(b"k y", 40)]), SealState::Malformed { .. }));
    }

    fn jpeg() -> Vec<u8> {
        // SOI, a JFIF APP0, a DQT-like segment, SOS with a few entropy bytes, EOI: enough structure to seal.
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16];
        j.extend_from_slice(b"JFIF\0\x01\x01\x01\x01\x2c\x01\x2c\0\0");
        j.extend_from_slice(&[0xFF, 0xDB, 0, 4, 0, 1, 0xFF, 0xDA, 0, 2, 1, 2, 3, 0xFF, 0xD9]);
        j
    }

    fn sealer() -> AesGcmSealer {
        AesGcmSealer::new(vec![SealKey::new("k2026", [7; 32]).unwrap(), SealKey::new("k2025", [9; 32]).unwrap()])
            .unwrap()
    }

    fn who() -> Identity {
        Identity { id_number: "11010519491231002X".into(), student_no: "2021000001".into(), school: "10055".into() }
    }

    #[test]
    fn sealed_files_open_and_any_changed_byte_is_tampering() {
        let s = sealer();
        let sealed = seal_jpeg(&jpeg(), &s, &who()).unwrap();
        assert_eq!(verify_jpeg(&sealed, &s).unwrap(), (who(), "k2026".to_string()));
        let (range, _) = locate(&sealed).unwrap();
        let range = range.unwrap();
        for i in (0..sealed.len()).filter(|i| !range.contains(i)) {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            let r = verify_jpeg(&t, &s);
            assert!(matches!(r, Err(SealError::Tampered | SealError::NotJpeg | SealError::Absent)), "byte {i}: {r:?}");
        }
        // A changed ciphertext byte is tampering too.
        let mut t = sealed.clone();
        t[range.end - 1] ^= 0x80;
        assert_eq!(verify_jpeg(&t, &s), Err(SealError::Tampered));
    }

    #[test]
    fn rotation_unknown_keys_absent_and_resealing() {
        let old = AesGcmSealer::new(vec![SealKey::new("k2025", [9; 32]).unwrap()]).unwrap();
        let sealed = seal_jpeg(&jpeg(), &old, &who()).unwrap();
        // The new ring still opens last year's seal.
        assert_eq!(verify_jpeg(&sealed, &sealer()).unwrap().1, "k2025");
        let stranger = AesGcmSealer::new(vec![SealKey::new("other", [1; 32]).unwrap()]).unwrap();
        assert_eq!(verify_jpeg(&sealed, &stranger), Err(SealError::UnknownKey("k2025".into())));
        assert_eq!(verify_jpeg(&jpeg(), &sealer()), Err(SealError::Absent));
        // Sealing again replaces the seal rather than adding a second.
        let again = seal_jpeg(&sealed, &sealer(), &who()).unwrap();
        assert_eq!(verify_jpeg(&again, &sealer()).unwrap().1, "k2026");
    }

    #[test]
    fn key_specs() {
        let b64 = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
        let ring = AesGcmSealer::from_spec(&format!("new:{b64}, old:{b64}")).unwrap();
        assert_eq!(ring.keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), ["new", "old"]);
        assert_eq!(AesGcmSealer::from_spec(&b64).unwrap().keys[0].id, "k1");
        let short = base64::engine::general_purpose::STANDARD.encode([3u8; 16]);
        assert!(matches!(AesGcmSealer::from_spec(&short), Err(SealError::Key(m)) if m.contains("16 bytes")));
        assert!(AesGcmSealer::from_spec("not base64!").is_err());
        assert!(AesGcmSealer::from_spec("").is_err());
        assert!(!format!("{ring:?}").contains(&b64[..8]), "keys never in Debug output");
    }
}
