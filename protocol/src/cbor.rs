//! Deterministic CBOR (spec §3.1): RFC 8949 §4.2.1 core deterministic encoding, produced by
//! [`to_canonical_vec`] and enforced by [`decode_canonical`], with size and nesting limits.
//!
//! Rapport signs payload bytes, so two encodings of one value would give two message ids for
//! one meaning. Decoding therefore accepts a byte string only if it is exactly the canonical
//! encoding of the value it decodes to: shortest-form integers and lengths, definite lengths,
//! map keys in bytewise order of their encodings, no duplicate keys, no trailing bytes.

use std::cmp::Ordering;

use ciborium::Value;
use serde::{de::DeserializeOwned, Serialize};

/// Largest envelope (and so payload) a node accepts, in bytes (spec §9).
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// Deepest nesting of arrays, maps and tags a payload may use (spec §9).
pub const MAX_DEPTH: usize = 16;

/// Why bytes were not accepted as deterministic CBOR of the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input is larger than the limit; nothing was parsed. Send a smaller message.
    #[error("{size} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit it broke.
        max: usize,
    },
    /// Arrays, maps or tags nest deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {max}")]
    TooDeep {
        /// The limit it broke.
        max: usize,
    },
    /// The bytes are not well-formed CBOR, or hold more than one data item.
    #[error("malformed CBOR: {0}")]
    Malformed(String),
    /// Well-formed CBOR, but not in the deterministic encoding the protocol requires.
    #[error("not deterministic CBOR: {0}")]
    NonDeterministic(&'static str),
    /// Deterministic CBOR of the wrong shape: a missing, unknown or mistyped field.
    #[error("schema violation: {0}")]
    Schema(String),
}

/// Encodes a value in deterministic CBOR. Struct fields may be declared in any order: maps are
/// sorted here, so the output does not depend on declaration order.
pub fn to_canonical_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut v = Value::serialized(value).map_err(|e| Error::Schema(e.to_string()))?;
    canonicalize(&mut v);
    Ok(encode_value(&v))
}

/// Encodes a [`Value`] as it stands (no sorting).
pub(crate) fn encode_value(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    // Writing into a Vec cannot fail, and every Value is encodable.
    if ciborium::into_writer(v, &mut out).is_err() {
        out.clear();
    }
    out
}

/// Sorts every map in `v`, recursively, into deterministic key order.
pub(crate) fn canonicalize(v: &mut Value) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(canonicalize),
        Value::Tag(_, inner) => canonicalize(inner),
        Value::Map(entries) => {
            for (k, val) in entries.iter_mut() {
                canonicalize(k);
                canonicalize(val);
            }
            entries.sort_by(|(a, _), (b, _)| key_order(a, b));
        }
        _ => {}
    }
}

/// Order of map keys: bytewise comparison of their deterministic encodings. For text keys this
/// is shorter-first, then bytewise, which is computed without encoding.
fn key_order(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Text(x), Value::Text(y)) => x.len().cmp(&y.len()).then_with(|| x.as_bytes().cmp(y.as_bytes())),
        _ => encode_value(a).cmp(&encode_value(b)),
    }
}

/// Parses one CBOR data item within the limits, without checking determinism.
pub fn decode_value(bytes: &[u8], max_size: usize) -> Result<Value, Error> {
    if bytes.len() > max_size {
        return Err(Error::TooLarge { size: bytes.len(), max: max_size });
    }
    let mut rest = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_DEPTH)
        .map_err(|e| match e {
            ciborium::de::Error::RecursionLimitExceeded => Error::TooDeep { max: MAX_DEPTH },
            other => Error::Malformed(other.to_string()),
        })?;
    if !rest.is_empty() {
        return Err(Error::Malformed(format!("{} trailing bytes after the data item", rest.len())));
    }
    Ok(value)
}

/// Checks that `bytes` is the deterministic encoding of `value` (which it decoded to).
pub(crate) fn check_canonical(bytes: &[u8], value: &Value) -> Result<(), Error> {
    check_structure(value)?;
    if encode_value(value) != bytes {
        return Err(Error::NonDeterministic(
            "integers, lengths or floats not in shortest form, or indefinite lengths",
        ));
    }
    Ok(())
}

fn check_structure(v: &Value) -> Result<(), Error> {
    match v {
        Value::Array(items) => items.iter().try_for_each(check_structure),
        Value::Tag(_, inner) => check_structure(inner),
        Value::Map(entries) => {
            for pair in entries.windows(2) {
                match key_order(&pair[0].0, &pair[1].0) {
                    Ordering::Less => {}
                    Ordering::Equal => return Err(Error::NonDeterministic("duplicate map key")),
                    Ordering::Greater => {
                        return Err(Error::NonDeterministic("map keys not in deterministic order"))
                    }
                }
            }
            entries.iter().try_for_each(|(k, val)| {
                check_structure(k)?;
                check_structure(val)
            })
        }
        _ => Ok(()),
    }
}

/// Rejects `null` anywhere: Rapport omits absent optional fields instead, so each value has
/// exactly one encoding even after a typed round trip.
fn check_no_null(v: &Value) -> Result<(), Error> {
    match v {
        Value::Null => Err(Error::Schema("null is not used; omit absent fields".into())),
        Value::Float(_) => Err(Error::Schema("floating-point numbers are not used".into())),
        Value::Array(items) => items.iter().try_for_each(check_no_null),
        Value::Tag(..) => Err(Error::Schema("tags are not used in payloads".into())),
        Value::Map(entries) => entries.iter().try_for_each(|(k, val)| {
            check_no_null(k)?;
            check_no_null(val)
        }),
        _ => Ok(()),
    }
}

/// Decodes deterministic CBOR into `T`. Errors are classified in the order the spec lists:
/// size, well-formedness, nesting, determinism, then schema.
pub fn decode_canonical<T: DeserializeOwned>(bytes: &[u8], max_size: usize) -> Result<(T, Value), Error> {
    let value = decode_value(bytes, max_size)?;
    check_canonical(bytes, &value)?;
    check_no_null(&value)?;
    let typed = value.deserialized::<T>().map_err(|e| Error::Schema(e.to_string()))?;
    Ok((typed, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &Value) -> Vec<u8> {
        encode_value(v)
    }

    #[test]
    fn canonical_sorts_keys_by_length_then_bytes() {
        let mut v = Value::Map(vec![
            (Value::Text("kind".into()), Value::Integer(1.into())),
            (Value::Text("b".into()), Value::Integer(2.into())),
            (Value::Text("aa".into()), Value::Integer(3.into())),
            (Value::Text("a".into()), Value::Integer(4.into())),
        ]);
        canonicalize(&mut v);
        let keys: Vec<_> = match &v {
            Value::Map(e) => e.iter().map(|(k, _)| k.as_text().unwrap().to_owned()).collect(),
            _ => unreachable!(),
        };
        assert_eq!(keys, ["a", "b", "aa", "kind"]);
    }

    #[test]
    fn rejects_unsorted_duplicate_and_non_shortest() {
        // {"b": 1, "a": 2}
        let unsorted = hex::decode("a2616201616102").unwrap();
        assert_eq!(
            decode_canonical::<Value>(&unsorted, 100).unwrap_err(),
            Error::NonDeterministic("map keys not in deterministic order")
        );
        // {"a": 1, "a": 2}
        let dup = hex::decode("a2616101616102").unwrap();
        assert_eq!(decode_canonical::<Value>(&dup, 100).unwrap_err(), Error::NonDeterministic("duplicate map key"));
        // 1 encoded in two bytes
        let long = hex::decode("1801").unwrap();
        assert!(matches!(decode_canonical::<Value>(&long, 100), Err(Error::NonDeterministic(_))));
        // indefinite-length array [_ 1]
        let indef = hex::decode("9f01ff").unwrap();
        assert!(matches!(decode_canonical::<Value>(&indef, 100), Err(Error::NonDeterministic(_))));
    }

    #[test]
    fn rejects_trailing_truncated_deep_and_large() {
        assert!(matches!(decode_value(&[0x01, 0x02], 100), Err(Error::Malformed(_))));
        assert!(matches!(decode_value(&[0x62, b'a'], 100), Err(Error::Malformed(_))));
        let deep = [vec![0x81; MAX_DEPTH + 2], vec![0x01]].concat();
        assert_eq!(decode_value(&deep, 100), Err(Error::TooDeep { max: MAX_DEPTH }));
        assert_eq!(decode_value(&[0; 11], 10), Err(Error::TooLarge { size: 11, max: 10 }));
    }

    #[test]
    fn rejects_null_and_float() {
        let null = enc(&Value::Map(vec![(Value::Text("a".into()), Value::Null)]));
        assert!(matches!(decode_canonical::<Value>(&null, 100), Err(Error::Schema(_))));
        let float = enc(&Value::Float(1.5));
        assert!(matches!(decode_canonical::<Value>(&float, 100), Err(Error::Schema(_))));
    }

    #[test]
    fn accepts_canonical() {
        let mut v = Value::Map(vec![
            (Value::Text("seq".into()), Value::Integer(500.into())),
            (Value::Text("v".into()), Value::Bytes(vec![1, 2])),
        ]);
        canonicalize(&mut v);
        let bytes = enc(&v);
        let (back, _) = decode_canonical::<Value>(&bytes, 100).unwrap();
        assert_eq!(back, v);
    }
}
