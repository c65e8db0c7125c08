//! Removing fields from a JSON document: the part of the plugin that knows
//! nothing about Envoy, tested with `cargo test`.

use serde_json::Value;
use std::collections::BTreeSet;

// ANCHOR: redact
/// Removes every member named in `fields` from every object in `document`,
/// at any depth (inside arrays too). Returns how many were removed.
pub fn remove_fields(document: &mut Value, fields: &BTreeSet<String>) -> usize {
    match document {
        Value::Object(members) => {
            let before = members.len();
            members.retain(|name, _| !fields.contains(name));
            let removed = before - members.len();
            removed
                + members
                    .values_mut()
                    .map(|value| remove_fields(value, fields))
                    .sum::<usize>()
        }
        Value::Array(items) => items
            .iter_mut()
            .map(|item| remove_fields(item, fields))
            .sum(),
        _ => 0,
    }
}
// ANCHOR_END: redact

/// A body that is not one JSON document the guard can read: not JSON,
/// not UTF-8 (which JSON must be), more than one document, or nested
/// deeper than serde_json's recursion limit (128), which is refused rather
/// than risk the stack. Such a body is not sent at all.
#[derive(Debug, PartialEq)]
pub struct Unreadable;

// ANCHOR: rewrite
/// The body with the fields removed, and how many were. With serde_json's
/// `preserve_order` and `arbitrary_precision` features (Cargo.toml), what
/// is left keeps its members' order and every number's digits; only the
/// whitespace between tokens goes.
pub fn redact(body: &[u8], fields: &BTreeSet<String>) -> Result<(Vec<u8>, usize), Unreadable> {
    let mut document: Value = serde_json::from_slice(body).map_err(|_| Unreadable)?;
    let removed = remove_fields(&mut document, fields);
    // Serializing a `Value` that came from valid JSON cannot fail.
    let bytes = serde_json::to_vec(&document).map_err(|_| Unreadable)?;
    Ok((bytes, removed))
}
// ANCHOR_END: rewrite

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn removes_named_fields_at_any_depth() {
        let body = br#"{"id":1,"password_hash":"x","profile":{"ssn":"1","city":"London"},
            "sessions":[{"token":"t","password_hash":"y"}]}"#;
        let Ok((out, removed)) = redact(body, &fields(&["password_hash", "ssn"])) else {
            panic!("refused");
        };
        assert_eq!(removed, 3);
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"{"id":1,"profile":{"city":"London"},"sessions":[{"token":"t"}]}"#
        );
    }

    #[test]
    fn a_name_is_matched_exactly_after_json_unescaping() {
        // "pass\u0077ord_hash" is "password_hash": the guard compares the
        // decoded name, as the client's JSON parser will read it.
        let body = br#"{"pass\u0077ord_hash":"x","Password_hash":"kept"}"#;
        let Ok((out, removed)) = redact(body, &fields(&["password_hash"])) else {
            panic!("refused");
        };
        assert_eq!(removed, 1);
        assert_eq!(String::from_utf8_lossy(&out), r#"{"Password_hash":"kept"}"#);
    }

    #[test]
    fn a_repeated_member_is_removed_every_time() {
        // JSON allows a name twice; parsers differ on which value wins.
        // serde_json keeps the last, and removing the name removes both.
        let body = br#"{"ssn":"1","ssn":"2","id":3}"#;
        let Ok((out, removed)) = redact(body, &fields(&["ssn"])) else {
            panic!("refused");
        };
        assert_eq!(removed, 1);
        assert_eq!(String::from_utf8_lossy(&out), r#"{"id":3}"#);
    }

    #[test]
    fn what_is_left_keeps_its_order_and_its_numbers() {
        let body = br#"{"zeta":1,"ssn":"1","big":18446744073709551616123,
            "price":0.10,"tiny":1e-400,"alpha":[2.50,-0]}"#;
        let Ok((out, removed)) = redact(body, &fields(&["ssn"])) else {
            panic!("refused");
        };
        assert_eq!(removed, 1);
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"{"zeta":1,"big":18446744073709551616123,"price":0.10,"tiny":1e-400,"alpha":[2.50,-0]}"#
        );
    }

    #[test]
    fn unreadable_bodies_are_refused() {
        let f = fields(&["ssn"]);
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for body in [
            &br#"{"ssn":"1""#[..],
            b"{\"ssn\":\"\xff\"}",
            b"",
            br#"{"a":1} {"ssn":2}"#,
            b"{\"a\":1}\n{\"ssn\":2}\n",
            deep.as_bytes(),
        ] {
            assert_eq!(
                redact(body, &f).err(),
                Some(Unreadable),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
