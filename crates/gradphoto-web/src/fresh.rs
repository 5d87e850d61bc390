//! Originals this node has just taken in, kept in memory for its own check workers: the check that follows an
//! upload on the same node reads the bytes it already has instead of the file it just wrote (on S3, a GET of 2 MB
//! per check). Bounded by bytes: when full, a new original is not kept — checks take the oldest first, so keeping
//! the oldest is what makes them hits (evicting the oldest would make every check of a deep queue a miss). A miss
//! reads the store as before, so what is kept here is only ever a shortcut. An original nobody here takes (replaced
//! before its check, or checked by another node) is let go after `STALE`, so that it does not hold the room for
//! ever. Files are never changed once written, so a key's bytes cannot go stale.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use gradphoto_store::BlobKey;

/// What a node that checks keeps: about 48 originals of 2 MB, a minute and a half of uploads for two check threads.
pub const KEEP_BYTES: usize = 96 * 1024 * 1024;

/// How long an original not taken stays.
const STALE: Duration = Duration::from_secs(60);

pub struct FreshOriginals {
    cap: usize,
    inner: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    bytes: usize,
    by_key: HashMap<BlobKey, (Instant, Arc<Vec<u8>>)>,
}

impl FreshOriginals {
    /// Keeps at most `cap` bytes (0 keeps nothing).
    pub fn new(cap: usize) -> FreshOriginals {
        FreshOriginals { cap, inner: Mutex::new(Kept::default()) }
    }

    /// Keeps `bytes` unless that would pass the bound.
    pub fn keep(&self, key: &BlobKey, bytes: Arc<Vec<u8>>) {
        self.keep_at(key, bytes, Instant::now());
    }

    fn keep_at(&self, key: &BlobKey, bytes: Arc<Vec<u8>>, now: Instant) {
        let mut k = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if k.bytes + bytes.len() > self.cap {
            let before = k.by_key.len();
            k.by_key.retain(|_, (at, _)| now.saturating_duration_since(*at) < STALE);
            if k.by_key.len() != before {
                k.bytes = k.by_key.values().map(|(_, b)| b.len()).sum();
            }
        }
        if k.bytes + bytes.len() > self.cap || k.by_key.contains_key(key) {
            return;
        }
        k.bytes += bytes.len();
        k.by_key.insert(key.clone(), (now, bytes));
    }

    /// The bytes of `key` if kept; they are let go (a photo is checked once).
    pub fn take(&self, key: &BlobKey) -> Option<Arc<Vec<u8>>> {
        let mut k = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (_, b) = k.by_key.remove(key)?;
        k.bytes -= b.len();
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_bytes_the_oldest_kept_and_taken_once() {
        let fresh = FreshOriginals::new(10);
        let (a, b, c) = (BlobKey::new("original"), BlobKey::new("original"), BlobKey::new("original"));
        fresh.keep(&a, Arc::new(vec![1; 4]));
        fresh.keep(&b, Arc::new(vec![2; 4]));
        fresh.keep(&c, Arc::new(vec![3; 4]));
        assert!(fresh.take(&c).is_none(), "full: the newest is not kept");
        assert_eq!(fresh.take(&a).as_deref(), Some(&vec![1; 4]));
        assert!(fresh.take(&a).is_none(), "taken once");
        fresh.keep(&c, Arc::new(vec![3; 4]));
        assert_eq!(fresh.take(&c).as_deref(), Some(&vec![3; 4]), "kept once there was room");
        fresh.keep(&a, Arc::new(vec![9; 11]));
        assert!(fresh.take(&a).is_none(), "larger than the bound: not kept");
        assert_eq!(fresh.take(&b).as_deref(), Some(&vec![2; 4]));
        // Full of originals nobody took: after `STALE` they make room.
        let t = Instant::now();
        fresh.keep_at(&a, Arc::new(vec![1; 4]), t);
        fresh.keep_at(&c, Arc::new(vec![3; 4]), t);
        fresh.keep_at(&b, Arc::new(vec![2; 4]), t + STALE / 2);
        assert!(fresh.take(&b).is_none(), "full, and nothing stale yet");
        fresh.keep_at(&b, Arc::new(vec![2; 4]), t + STALE);
        assert_eq!(fresh.take(&b).as_deref(), Some(&vec![2; 4]), "the stale ones made room");
        assert!(fresh.take(&a).is_none() && fresh.take(&c).is_none());
        let none = FreshOriginals::new(0);
        none.keep(&a, Arc::new(vec![1]));
        assert!(none.take(&a).is_none());
    }
}
