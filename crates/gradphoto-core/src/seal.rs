//! The seal: the student's identity, encrypted, in the JPEG comment segment (S 四.3). This module knows the
//! payload layout; encryption and verification come with normalisation.
//!
//! Layout: `GPSEAL` · version (1 byte) · key-id length (1 byte, 1–32) · key id (ASCII) · nonce (12 bytes) ·
//! ciphertext with its 16-byte tag.

use serde::Serialize;

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
}
