//! The key list in Envoy's shared data, where the refresher writes it and
//! every worker's VM reads it. Shared data belongs to a `vm_id`: the
//! refresher and the filter name the same one in `envoy.yaml`.
//!
//! Any plugin configured with that `vm_id` can read and write these
//! entries too, so nothing in them is believed without a signature made
//! with a secret only this plugin has. Two entries:
//!
//! - the list: the time of its refresh, each key's HMAC under the secret
//!   (never a key), and a signature over both;
//! - its version: the CAS number Envoy gave the list's write, the same
//!   time, and a signature over both. Envoy numbers every write to shared
//!   data from one counter, so a version names one write of the list: a
//!   list written again, even byte for byte the same, no longer matches
//!   it.
//!
//! So another plugin can neither add a key, nor bring back an older list
//! (the version of an old list names a write that is gone, and a VM never
//! goes back to a list older than the one it holds). It can still make
//! VMs that hold no list yet refuse requests, by writing over both: a
//! plugin that shares a `vm_id` can always deny service.

use hmac::{Hmac, Mac};
use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;
use sha2::Sha256;
use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

pub type KeyedDigest = Hmac<Sha256>;

const LIST: &str = "key-refresh.list";
const VERSION: &str = "key-refresh.version";
const DIGEST_BYTES: usize = 32;
/// The list: the refresh time (Unix ms), the signature, then the digests.
const LIST_HEADER_BYTES: usize = 8 + DIGEST_BYTES;
/// The version: the list's CAS number, the refresh time, the signature.
const VERSION_BYTES: usize = 4 + 8 + DIGEST_BYTES;

pub type Digest = [u8; DIGEST_BYTES];

/// A key's name in the list.
pub fn digest_of(keyed: &KeyedDigest, key: &str) -> Digest {
    let mut mac = keyed.clone();
    mac.update(b"key");
    mac.update(key.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The list's signature, over its refresh time and digests.
fn list_signature(keyed: &KeyedDigest, refreshed_ms: u64, digests: &[u8]) -> KeyedDigest {
    let mut mac = keyed.clone();
    mac.update(b"list");
    mac.update(&refreshed_ms.to_be_bytes());
    mac.update(digests);
    mac
}

/// The version's signature, over the list's CAS number and refresh time.
fn version_signature(keyed: &KeyedDigest, cas: u32, refreshed_ms: u64) -> KeyedDigest {
    let mut mac = keyed.clone();
    mac.update(b"version");
    mac.update(&cas.to_be_bytes());
    mac.update(&refreshed_ms.to_be_bytes());
    mac
}

// ANCHOR: publish
/// Writes `keys` for every VM of this `vm_id`, as refreshed at `now_ms`:
/// the list, then the version that names this write of it.
pub fn publish(keyed: &KeyedDigest, keys: &[String], now_ms: u64) -> Result<(), Status> {
    let digests: Vec<u8> = keys.iter().flat_map(|key| digest_of(keyed, key)).collect();
    let mut list = Vec::with_capacity(LIST_HEADER_BYTES + digests.len());
    list.extend_from_slice(&now_ms.to_be_bytes());
    list.extend_from_slice(
        &list_signature(keyed, now_ms, &digests)
            .finalize()
            .into_bytes(),
    );
    list.extend_from_slice(&digests);
    hostcalls::set_shared_data(LIST, Some(&list), None)?;
    // The CAS number of this write, unless another plugin wrote in
    // between: then the version would bless its bytes, so none is written.
    let (written, cas) = hostcalls::get_shared_data(LIST)?;
    let cas = match cas {
        Some(cas) if written.as_deref() == Some(list.as_slice()) => cas,
        _ => return Err(Status::CasMismatch),
    };
    let mut version = Vec::with_capacity(VERSION_BYTES);
    version.extend_from_slice(&cas.to_be_bytes());
    version.extend_from_slice(&now_ms.to_be_bytes());
    version.extend_from_slice(
        &version_signature(keyed, cas, now_ms)
            .finalize()
            .into_bytes(),
    );
    hostcalls::set_shared_data(VERSION, Some(&version), None)
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
    /// This VM holds no list yet: no refresh has worked since Envoy
    /// started, or every list it found was refused.
    NotLoaded,
    /// The list it holds is older than the configured bound.
    Stale {
        age_ms: u64,
    },
    Fresh(Rc<KeyList>),
}

/// One VM's view of the published list.
#[derive(Default)]
struct Seen {
    /// The version entry of the list this VM holds, and the list.
    held: Option<(Vec<u8>, Rc<KeyList>)>,
    /// The last version entry refused: not checked, nor logged, again.
    refused: Vec<u8>,
}

// ANCHOR: local_copy
/// One VM's copy of the published list, shared by its requests.
#[derive(Default)]
pub struct LocalCopy {
    seen: RefCell<Seen>,
}

impl LocalCopy {
    /// The keys a request uses: the list this VM holds, replaced first
    /// when the version entry names a newer one that checks out. A request
    /// reads the 44 bytes of the version; the list is read, checked and
    /// decoded once per refresh.
    pub fn current(&self, keyed: &KeyedDigest, now_ms: u64, max_age_ms: u64) -> Keys {
        let mut seen = self.seen.borrow_mut();
        if let Some(version) = read(VERSION) {
            let new = seen.held.as_ref().is_none_or(|(held, _)| *held != version);
            if new && seen.refused != version {
                let held_ms = seen.held.as_ref().map(|(_, list)| list.refreshed_ms);
                match newer_list(keyed, &version, held_ms) {
                    Ok(list) => seen.held = Some((version, Rc::new(list))),
                    Err(reason) => {
                        log::error!("the shared key list was not used: {reason}");
                        seen.refused = version;
                    }
                }
            }
        }
        match &seen.held {
            None => Keys::NotLoaded,
            Some((_, list)) => match now_ms.saturating_sub(list.refreshed_ms) {
                age_ms if age_ms > max_age_ms => Keys::Stale { age_ms },
                _ => Keys::Fresh(list.clone()),
            },
        }
    }
}
// ANCHOR_END: local_copy

/// An entry's bytes. Envoy answers a read of shared data with Ok or
/// NotFound only, so this read cannot panic.
fn read(key: &str) -> Option<Vec<u8>> {
    hostcalls::get_shared_data(key).ok()?.0
}

// ANCHOR: newer_list
/// The list `version` names, if its signature is this plugin's, it is
/// newer than the list held (refreshed at `held_ms`), and the list entry
/// is that very write, signed too.
fn newer_list(
    keyed: &KeyedDigest,
    version: &[u8],
    held_ms: Option<u64>,
) -> Result<KeyList, &'static str> {
    let (cas, refreshed_ms) = decode_version(keyed, version)
        .ok_or("its version is not signed with this plugin's secret")?;
    if held_ms.is_some_and(|held_ms| refreshed_ms <= held_ms) {
        return Err("its version is not newer than the list in use");
    }
    let (Some(list), Some(list_cas)) = hostcalls::get_shared_data(LIST).unwrap_or_default() else {
        return Err("there is no list");
    };
    if list_cas != cas {
        return Err("the list is not the write its version names");
    }
    let list =
        decode_list(keyed, &list).ok_or("the list is not signed with this plugin's secret")?;
    if list.refreshed_ms != refreshed_ms {
        return Err("the list is not the refresh its version names");
    }
    Ok(list)
}
// ANCHOR_END: newer_list

fn decode_version(keyed: &KeyedDigest, version: &[u8]) -> Option<(u32, u64)> {
    if version.len() != VERSION_BYTES {
        return None;
    }
    let cas = u32::from_be_bytes(version.get(..4)?.try_into().ok()?);
    let refreshed_ms = u64::from_be_bytes(version.get(4..12)?.try_into().ok()?);
    // A constant-time comparison: how long a wrong tag takes says nothing.
    version_signature(keyed, cas, refreshed_ms)
        .verify_slice(version.get(12..)?)
        .ok()?;
    Some((cas, refreshed_ms))
}

fn decode_list(keyed: &KeyedDigest, list: &[u8]) -> Option<KeyList> {
    if list.len() < LIST_HEADER_BYTES
        || !(list.len() - LIST_HEADER_BYTES).is_multiple_of(DIGEST_BYTES)
    {
        return None;
    }
    let (time, rest) = list.split_at(8);
    let (tag, digests) = rest.split_at(DIGEST_BYTES);
    let refreshed_ms = u64::from_be_bytes(time.try_into().ok()?);
    list_signature(keyed, refreshed_ms, digests)
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
            &list_signature(keyed, refreshed_ms, &digests)
                .finalize()
                .into_bytes(),
        );
        list.extend_from_slice(&digests);
        list
    }

    fn version(keyed: &KeyedDigest, cas: u32, refreshed_ms: u64) -> Vec<u8> {
        let mut version = cas.to_be_bytes().to_vec();
        version.extend_from_slice(&refreshed_ms.to_be_bytes());
        version.extend_from_slice(
            &version_signature(keyed, cas, refreshed_ms)
                .finalize()
                .into_bytes(),
        );
        version
    }

    #[test]
    fn a_list_holds_digests_only_and_is_believed_only_with_its_signature() {
        let secret = keyed(b"secret-0123456789");
        let list = encode(&secret, &["key-abc123", "key-def456"], 7);
        assert!(
            !list.windows(10).any(|w| w == b"key-abc123"),
            "a key in clear"
        );
        let Some(decoded) = decode_list(&secret, &list) else {
            panic!("its own list refused");
        };
        assert_eq!(decoded.refreshed_ms, 7);
        assert!(decoded.contains(&secret, "key-abc123"));
        assert!(!decoded.contains(&secret, "key-ghi789"));

        let other = keyed(b"another-secret-0123");
        assert!(
            decode_list(&other, &list).is_none(),
            "another secret's list"
        );
        let forged = encode(&other, &["key-forged"], 7);
        assert!(
            decode_list(&secret, &forged).is_none(),
            "a list signed elsewhere"
        );
        let mut newer = list.clone();
        newer[..8].copy_from_slice(&9u64.to_be_bytes());
        assert!(
            decode_list(&secret, &newer).is_none(),
            "an old list made new"
        );
        let mut added = list.clone();
        added.extend_from_slice(&digest_of(&secret, "key-ghi789"));
        assert!(decode_list(&secret, &added).is_none(), "a digest added");
        assert!(
            decode_list(&secret, &list[..list.len() - 1]).is_none(),
            "cut short"
        );
    }

    #[test]
    fn a_version_names_one_write_and_one_refresh() {
        let secret = keyed(b"secret-0123456789");
        let good = version(&secret, 41, 7);
        assert_eq!(decode_version(&secret, &good), Some((41, 7)));
        let other = keyed(b"another-secret-0123");
        assert_eq!(decode_version(&other, &good), None, "another secret");
        let mut moved = good.clone();
        moved[..4].copy_from_slice(&42u32.to_be_bytes());
        assert_eq!(decode_version(&secret, &moved), None, "another write");
        let mut newer = good.clone();
        newer[4..12].copy_from_slice(&8u64.to_be_bytes());
        assert_eq!(decode_version(&secret, &newer), None, "another time");
        assert_eq!(decode_version(&secret, &good[..43]), None, "cut short");
    }
}
