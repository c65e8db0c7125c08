//! The key list in Envoy's shared data, where the refresher writes it and
//! every worker's VM reads it. Shared data belongs to a `vm_id`: the
//! refresher and the filter name the same one in `envoy.yaml`.
//!
//! Any plugin configured with that `vm_id` can read and write these
//! entries too, so the list holds no key: it holds each key's HMAC under a
//! secret only this plugin has, and is signed with it together with the
//! time of its refresh. Without the secret, no one can read a key from it,
//! add one, or pass an old list off as new (an old list is refused once it
//! is older than the filter's bound, like any other).
//!
//! Two entries. The list, rewritten by every refresh that works; and the
//! list's CAS number (Envoy numbers every write), 4 bytes, written after
//! it. A request reads the 4 bytes; a VM reads, checks and decodes the
//! list again only when they name a list it has not decoded yet.

use hmac::{Hmac, Mac};
use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;
use sha2::Sha256;
use std::cell::Cell;
use std::collections::HashSet;
use std::rc::Rc;

pub type KeyedDigest = Hmac<Sha256>;

const LIST: &str = "key-refresh.list";
const LIST_CAS: &str = "key-refresh.list-cas";
const DIGEST_BYTES: usize = 32;
/// The refresh time (Unix ms), then the signature, then the digests.
const HEADER_BYTES: usize = 8 + DIGEST_BYTES;

pub type Digest = [u8; DIGEST_BYTES];

/// A key's name in the list.
pub fn digest_of(keyed: &KeyedDigest, key: &str) -> Digest {
    let mut mac = keyed.clone();
    mac.update(b"key");
    mac.update(key.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The signature over the refresh time and the digests.
fn signature(keyed: &KeyedDigest, refreshed_ms: u64, digests: &[u8]) -> KeyedDigest {
    let mut mac = keyed.clone();
    mac.update(b"list");
    mac.update(&refreshed_ms.to_be_bytes());
    mac.update(digests);
    mac
}

// ANCHOR: publish
/// Writes `keys` for every VM of this `vm_id`, as refreshed at `now_ms`.
pub fn publish(keyed: &KeyedDigest, keys: &[String], now_ms: u64) -> Result<(), Status> {
    let digests: Vec<u8> = keys.iter().flat_map(|key| digest_of(keyed, key)).collect();
    let mut list = Vec::with_capacity(HEADER_BYTES + digests.len());
    list.extend_from_slice(&now_ms.to_be_bytes());
    list.extend_from_slice(&signature(keyed, now_ms, &digests).finalize().into_bytes());
    list.extend_from_slice(&digests);
    hostcalls::set_shared_data(LIST, Some(&list), None)?;
    let (_, cas) = hostcalls::get_shared_data(LIST)?;
    let cas = cas.unwrap_or_default().to_be_bytes();
    hostcalls::set_shared_data(LIST_CAS, Some(&cas), None)
}
// ANCHOR_END: publish

/// The keys of one refresh, as a VM decoded them.
pub struct KeyList {
    pub refreshed_ms: u64,
    digests: HashSet<Digest>,
}

impl KeyList {
    pub fn contains(&self, keyed: &KeyedDigest, key: &str) -> bool {
        self.digests.contains(&digest_of(keyed, key))
    }
}

/// What a request can use.
pub enum Keys {
    /// No refresh has worked yet since Envoy started (or the list there
    /// was not written by this plugin).
    NotLoaded,
    /// The last refresh that worked is older than the configured bound.
    Stale {
        age_ms: u64,
    },
    Fresh(Rc<KeyList>),
}

// ANCHOR: local_copy
/// One VM's decoded copy of the list, shared by its requests.
#[derive(Default)]
pub struct LocalCopy {
    /// The CAS number of the list decoded, and its keys.
    decoded: Cell<Option<(u32, Rc<KeyList>)>>,
}

impl LocalCopy {
    pub fn current(&self, keyed: &KeyedDigest, now_ms: u64, max_age_ms: u64) -> Keys {
        let Some(cas) = read_list_cas() else {
            return Keys::NotLoaded;
        };
        let decoded = match self.decoded.take() {
            Some((seen, list)) if seen == cas => Some((seen, list)),
            _ => read_list(keyed),
        };
        let list = decoded.as_ref().map(|(_, list)| list.clone());
        self.decoded.set(decoded);
        match list {
            None => Keys::NotLoaded,
            Some(list) => match now_ms.saturating_sub(list.refreshed_ms) {
                age_ms if age_ms > max_age_ms => Keys::Stale { age_ms },
                _ => Keys::Fresh(list),
            },
        }
    }
}
// ANCHOR_END: local_copy

/// The list's CAS number. Envoy answers a read of shared data with Ok or
/// NotFound only, so this read cannot panic.
fn read_list_cas() -> Option<u32> {
    let (Some(cas), _) = hostcalls::get_shared_data(LIST_CAS).ok()? else {
        return None;
    };
    Some(u32::from_be_bytes(cas.try_into().ok()?))
}

/// The list, if its signature is this plugin's, and the CAS number it has
/// now (newer than the one just read if a refresh is writing: the next
/// request then reads it again).
fn read_list(keyed: &KeyedDigest) -> Option<(u32, Rc<KeyList>)> {
    let (Some(list), Some(cas)) = hostcalls::get_shared_data(LIST).ok()? else {
        return None;
    };
    let decoded = decode(keyed, &list);
    if decoded.is_none() {
        log::error!("the shared key list is not signed with this plugin's secret; not used");
    }
    Some((cas, Rc::new(decoded?)))
}

fn decode(keyed: &KeyedDigest, list: &[u8]) -> Option<KeyList> {
    if list.len() < HEADER_BYTES || !(list.len() - HEADER_BYTES).is_multiple_of(DIGEST_BYTES) {
        return None;
    }
    let (time, rest) = list.split_at(8);
    let (tag, digests) = rest.split_at(DIGEST_BYTES);
    let refreshed_ms = u64::from_be_bytes(time.try_into().ok()?);
    // A constant-time comparison: how long a wrong tag takes says nothing.
    signature(keyed, refreshed_ms, digests)
        .verify_slice(tag)
        .ok()?;
    let digests = digests
        .chunks_exact(DIGEST_BYTES)
        .filter_map(|digest| digest.try_into().ok())
        .collect();
    Some(KeyList {
        refreshed_ms,
        digests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(secret: &[u8]) -> KeyedDigest {
        match KeyedDigest::new_from_slice(secret) {
            Ok(mac) => mac,
            Err(_) => panic!("HMAC refused a key"),
        }
    }

    fn encode(keyed: &KeyedDigest, keys: &[&str], refreshed_ms: u64) -> Vec<u8> {
        let digests: Vec<u8> = keys.iter().flat_map(|key| digest_of(keyed, key)).collect();
        let mut list = refreshed_ms.to_be_bytes().to_vec();
        list.extend_from_slice(
            &signature(keyed, refreshed_ms, &digests)
                .finalize()
                .into_bytes(),
        );
        list.extend_from_slice(&digests);
        list
    }

    #[test]
    fn a_list_holds_digests_only_and_is_believed_only_with_its_signature() {
        let secret = keyed(b"secret-0123456789");
        let list = encode(&secret, &["key-abc123", "key-def456"], 7);
        assert!(
            !list.windows(10).any(|w| w == b"key-abc123"),
            "a key in clear"
        );
        let Some(decoded) = decode(&secret, &list) else {
            panic!("its own list refused");
        };
        assert_eq!(decoded.refreshed_ms, 7);
        assert!(decoded.contains(&secret, "key-abc123"));
        assert!(!decoded.contains(&secret, "key-ghi789"));

        let other = keyed(b"another-secret-0123");
        assert!(decode(&other, &list).is_none(), "another secret's list");
        let forged = encode(&other, &["key-forged"], 7);
        assert!(
            decode(&secret, &forged).is_none(),
            "a list signed elsewhere"
        );
        let mut newer = list.clone();
        newer[..8].copy_from_slice(&9u64.to_be_bytes());
        assert!(decode(&secret, &newer).is_none(), "an old list made new");
        let mut added = list.clone();
        added.extend_from_slice(&digest_of(&secret, "key-ghi789"));
        assert!(decode(&secret, &added).is_none(), "a digest added");
        assert!(
            decode(&secret, &list[..list.len() - 1]).is_none(),
            "cut short"
        );
    }
}
