//! The key set in Envoy's shared data, where the refresher writes it and
//! every worker's VM reads it: step 7's published list, holding the JWK
//! set the key service answered instead of key digests. Shared data
//! belongs to a `vm_id`: the refresher and the filter name the same one in
//! `envoy.yaml`.
//!
//! Any plugin configured with that `vm_id` can read and write these
//! entries too, and a key it wrote would let it sign tokens, so nothing in
//! them is believed without a signature made with a secret only this
//! plugin has. Two entries:
//!
//! - the set: the time of its refresh, the JWK set, and a signature over
//!   both;
//! - its version: the CAS number Envoy gave the list's write, the same
//!   time, and a signature over both. Envoy numbers every write to shared
//!   data from one counter, so a version names one write of the list: a
//!   list written again, even byte for byte the same, no longer matches
//!   it.
//!
//! So another plugin can neither add a key, nor bring back an older set
//! (the version of an old list names a write that is gone, and a VM never
//! goes back to a list older than the one it holds). It can still make
//! VMs that hold no list yet refuse requests, by writing over both: a
//! plugin that shares a `vm_id` can always deny service.

use crate::jwks::{self, KeySet};
use hmac::{Hmac, Mac};
use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;
use sha2::Sha256;
use std::cell::RefCell;
use std::rc::Rc;

pub type KeyedDigest = Hmac<Sha256>;

const LIST: &str = "tokens.key-set";
const VERSION: &str = "tokens.version";
const DIGEST_BYTES: usize = 32;
/// The set: the refresh time (Unix ms), the signature, then the JWK set.
const LIST_HEADER_BYTES: usize = 8 + DIGEST_BYTES;
/// The version: the list's CAS number, the refresh time, the signature.
const VERSION_BYTES: usize = 4 + 8 + DIGEST_BYTES;

/// The set's signature, over its refresh time and JWK set.
fn list_signature(keyed: &KeyedDigest, refreshed_ms: u64, set: &[u8]) -> KeyedDigest {
    let mut mac = keyed.clone();
    mac.update(b"key set");
    mac.update(&refreshed_ms.to_be_bytes());
    mac.update(set);
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

/// Writes the JWK set `set` for every VM of this `vm_id`, as refreshed at
/// `now_ms`: the set, then the version that names this write of it.
pub fn publish(keyed: &KeyedDigest, set: &[u8], now_ms: u64) -> Result<(), Status> {
    let mut list = Vec::with_capacity(LIST_HEADER_BYTES + set.len());
    list.extend_from_slice(&now_ms.to_be_bytes());
    list.extend_from_slice(&list_signature(keyed, now_ms, set).finalize().into_bytes());
    list.extend_from_slice(set);
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

/// The keys of one refresh, as a VM decoded them.
pub struct KeyList {
    pub refreshed_ms: u64,
    pub keys: KeySet,
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
                        log::error!("the shared key set was not used: {reason}");
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

/// An entry's bytes. Envoy answers a read of shared data with Ok or
/// NotFound only, so this read cannot panic.
fn read(key: &str) -> Option<Vec<u8>> {
    hostcalls::get_shared_data(key).ok()?.0
}

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
    if list.len() < LIST_HEADER_BYTES {
        return None;
    }
    let (time, rest) = list.split_at(8);
    let (tag, set) = rest.split_at(DIGEST_BYTES);
    let refreshed_ms = u64::from_be_bytes(time.try_into().ok()?);
    list_signature(keyed, refreshed_ms, set)
        .verify_slice(tag)
        .ok()?;
    let (keys, _) = jwks::parse(set).ok()?;
    Some(KeyList { refreshed_ms, keys })
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

    const SET: &[u8] = br#"{"keys":[{"kty":"EC","crv":"P-256","kid":"ec","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

    fn encode(keyed: &KeyedDigest, set: &[u8], refreshed_ms: u64) -> Vec<u8> {
        let mut list = refreshed_ms.to_be_bytes().to_vec();
        list.extend_from_slice(
            &list_signature(keyed, refreshed_ms, set)
                .finalize()
                .into_bytes(),
        );
        list.extend_from_slice(set);
        list
    }

    fn version(keyed: &KeyedDigest, cas: u32, refreshed_ms: u64) -> Vec<u8> {
        let mut version = cas.to_be_bytes().to_vec();
        version.extend_from_slice(
            &version_signature(keyed, cas, refreshed_ms)
                .finalize()
                .into_bytes(),
        );
        version.splice(4..4, refreshed_ms.to_be_bytes());
        version
    }

    #[test]
    fn a_set_is_believed_only_with_its_signature() {
        let secret = keyed(b"secret-0123456789");
        let list = encode(&secret, SET, 7);
        let Some(decoded) = decode_list(&secret, &list) else {
            panic!("its own set refused");
        };
        assert_eq!(decoded.refreshed_ms, 7);
        assert!(decoded.keys.contains_key("ec"));
        let other = keyed(b"another-secret-0123");
        assert!(decode_list(&other, &list).is_none(), "another secret's set");
        let forged = encode(&other, SET, 7);
        assert!(
            decode_list(&secret, &forged).is_none(),
            "a set signed elsewhere"
        );
        let mut newer = list.clone();
        newer[..8].copy_from_slice(&9u64.to_be_bytes());
        assert!(
            decode_list(&secret, &newer).is_none(),
            "an old set made new"
        );
        let mut changed = list.clone();
        changed.push(b' ');
        assert!(decode_list(&secret, &changed).is_none(), "a byte added");
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
        assert_eq!(decode_version(&secret, &good[..43]), None, "cut short");
    }
}
