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
    if fast::encode(v, &mut out) {
        return out;
    }
    encode_value_ciborium(v)
}

/// [`encode_value`] without the fast path: the reference behaviour.
fn encode_value_ciborium(v: &Value) -> Vec<u8> {
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
    match fast::decode(bytes) {
        Some(value) => Ok(value),
        None => decode_value_ciborium(bytes),
    }
}

/// [`decode_value`] without the size check and the fast path: the reference behaviour.
fn decode_value_ciborium(bytes: &[u8]) -> Result<Value, Error> {
    let mut rest = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_DEPTH).map_err(|e| match e {
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
    if fast::encodes_as(value, bytes) {
        return Ok(());
    }
    if encode_value_ciborium(value) != bytes {
        return Err(Error::NonDeterministic("integers, lengths or floats not in shortest form, or indefinite lengths"));
    }
    Ok(())
}

/// [`decode_value`] then [`check_canonical`], in one pass over the bytes where it can. Also
/// returns whether the value may hold a `null` (`false` only when it certainly does not), so
/// that the caller can skip [`check_no_null`].
pub(crate) fn decode_deterministic(bytes: &[u8], max_size: usize) -> Result<(Value, bool), Error> {
    if bytes.len() > max_size {
        return Err(Error::TooLarge { size: bytes.len(), max: max_size });
    }
    match fast::decode_checked(bytes) {
        Some((value, facts)) if facts.canonical => Ok((value, facts.null)),
        // Not deterministic: the full check names the defect.
        Some((value, _)) => check_canonical(bytes, &value).map(|()| (value, true)),
        None => {
            let value = decode_value_ciborium(bytes)?;
            check_canonical(bytes, &value)?;
            Ok((value, true))
        }
    }
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
                    Ordering::Greater => return Err(Error::NonDeterministic("map keys not in deterministic order")),
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
pub(crate) fn check_no_null(v: &Value) -> Result<(), Error> {
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
    let (value, may_hold_null) = decode_deterministic(bytes, max_size)?;
    if may_hold_null {
        check_no_null(&value)?;
    }
    let typed = value.deserialized::<T>().map_err(|e| Error::Schema(e.to_string()))?;
    Ok((typed, value))
}

/// Fast paths for the subset of CBOR that payloads use: unsigned and negative integers, byte
/// and text strings, arrays, maps, `false`, `true` and `null`, all of definite length.
///
/// ciborium decodes through serde and encodes to compare, which costs several times the time
/// of the parse itself (spec §9 budgets the whole envelope check close to one signature
/// check). Each function here either gives exactly the answer the ciborium-based path gives,
/// or declines (`None` / `false`), and the caller then takes that path: tags, floats, other
/// simple values, indefinite lengths, truncated input and every other error are classified by
/// ciborium alone, so error kinds and messages are unchanged.
mod fast {
    use ciborium::Value;

    use super::MAX_DEPTH;

    /// One data item's head: major type, argument, and whether the argument is in shortest form.
    struct Head {
        major: u8,
        arg: u64,
        shortest: bool,
    }

    /// Major types and the simple values the subset allows.
    const UINT: u8 = 0;
    const NINT: u8 = 1;
    const BYTES: u8 = 2;
    const TEXT: u8 = 3;
    const ARRAY: u8 = 4;
    const MAP: u8 = 5;
    const SIMPLE: u8 = 7;
    const FALSE: u64 = 20;
    const TRUE: u64 = 21;
    const NULL: u64 = 22;

    struct Reader<'a> {
        bytes: &'a [u8],
        /// Every head so far was in shortest form and every map's keys strictly ascending.
        canonical: bool,
        /// A `null` was read somewhere.
        null: bool,
    }

    impl<'a> Reader<'a> {
        fn new(bytes: &'a [u8]) -> Self {
            Reader { bytes, canonical: true, null: false }
        }
    }

    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if n > self.bytes.len() {
                return None;
            }
            let (head, rest) = self.bytes.split_at(n);
            self.bytes = rest;
            Some(head)
        }

        fn uint<const N: usize>(&mut self) -> Option<u64> {
            let (chunk, rest) = self.bytes.split_first_chunk::<N>()?;
            self.bytes = rest;
            Some(chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
        }

        /// The next head; `None` for tags, floats, simple values other than false, true and
        /// null, indefinite lengths, reserved encodings and truncated input.
        fn head(&mut self) -> Option<Head> {
            let (&first, rest) = self.bytes.split_first()?;
            self.bytes = rest;
            let major = first >> 5;
            let info = first & 0x1f;
            if major == SIMPLE {
                let arg = u64::from(info);
                return matches!(arg, FALSE | TRUE | NULL).then_some(Head { major, arg, shortest: true });
            }
            if major == 6 {
                return None;
            }
            let (arg, shortest) = match info {
                0..=23 => (u64::from(info), true),
                24 => self.uint::<1>().map(|v| (v, v >= 24))?,
                25 => self.uint::<2>().map(|v| (v, v > 0xff))?,
                26 => self.uint::<4>().map(|v| (v, v > 0xffff))?,
                27 => self.uint::<8>().map(|v| (v, v > 0xffff_ffff))?,
                _ => return None,
            };
            Some(Head { major, arg, shortest })
        }

        fn len(arg: u64) -> Option<usize> {
            usize::try_from(arg).ok()
        }

        /// One item as ciborium's `Value` deserializer builds it. `depth` counts the arrays
        /// and maps around the item, which ciborium limits to [`MAX_DEPTH`].
        fn value(&mut self, depth: usize) -> Option<Value> {
            let h = self.head()?;
            self.canonical &= h.shortest;
            Some(match h.major {
                UINT => Value::Integer(h.arg.into()),
                // ciborium takes a longer route beyond i64; leave those to it.
                NINT => Value::Integer((-1 - i64::try_from(h.arg).ok()?).into()),
                BYTES => Value::Bytes(self.take(Self::len(h.arg)?)?.to_vec()),
                TEXT => Value::Text(std::str::from_utf8(self.take(Self::len(h.arg)?)?).ok()?.to_owned()),
                ARRAY | MAP if depth >= MAX_DEPTH => return None,
                ARRAY => {
                    // Every item takes at least one byte, which bounds the allocation.
                    let n = Self::len(h.arg)?;
                    let mut items = Vec::with_capacity(n.min(self.bytes.len()));
                    for _ in 0..n {
                        items.push(self.value(depth + 1)?);
                    }
                    Value::Array(items)
                }
                MAP => {
                    let n = Self::len(h.arg)?;
                    let mut entries = Vec::with_capacity(n.min(self.bytes.len() / 2));
                    for _ in 0..n {
                        let k = self.value(depth + 1)?;
                        if let Some((last, _)) = entries.last() {
                            self.canonical &= super::key_order(last, &k) == std::cmp::Ordering::Less;
                        }
                        entries.push((k, self.value(depth + 1)?));
                    }
                    Value::Map(entries)
                }
                _ => match h.arg {
                    FALSE => Value::Bool(false),
                    TRUE => Value::Bool(true),
                    _ => {
                        self.null = true;
                        Value::Null
                    }
                },
            })
        }

        /// Whether the next item is `v` in shortest-form, definite-length encoding, which for
        /// these types is exactly what ciborium writes for `v`.
        fn matches(&mut self, v: &Value) -> Option<()> {
            let h = self.head()?;
            if !h.shortest {
                return None;
            }
            let same = |major: u8, arg: u64| (h.major == major && h.arg == arg).then_some(());
            match v {
                Value::Integer(i) => {
                    let i = i128::from(*i);
                    if i >= 0 {
                        same(UINT, u64::try_from(i).ok()?)
                    } else {
                        same(NINT, u64::try_from(-1 - i).ok()?)
                    }
                }
                Value::Bytes(b) => {
                    same(BYTES, b.len() as u64)?;
                    (self.take(b.len())? == b.as_slice()).then_some(())
                }
                Value::Text(t) => {
                    same(TEXT, t.len() as u64)?;
                    (self.take(t.len())? == t.as_bytes()).then_some(())
                }
                Value::Array(items) => {
                    same(ARRAY, items.len() as u64)?;
                    items.iter().try_for_each(|item| self.matches(item))
                }
                Value::Map(entries) => {
                    same(MAP, entries.len() as u64)?;
                    entries.iter().try_for_each(|(k, val)| {
                        self.matches(k)?;
                        self.matches(val)
                    })
                }
                Value::Bool(b) => same(SIMPLE, if *b { TRUE } else { FALSE }),
                Value::Null => same(SIMPLE, NULL),
                _ => None,
            }
        }
    }

    /// Decodes `bytes` as ciborium would, or declines.
    pub(super) fn decode(bytes: &[u8]) -> Option<Value> {
        decode_checked(bytes).map(|(v, _)| v)
    }

    /// What [`decode_checked`] learned while decoding.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) struct Facts {
        /// The input is the deterministic encoding of the value (shortest heads, keys in order,
        /// no duplicates); when `false`, [`super::check_canonical`] names the defect.
        pub(super) canonical: bool,
        /// The value holds a `null`.
        pub(super) null: bool,
    }

    /// [`decode`], also telling whether the input is deterministic, in the same single pass.
    pub(super) fn decode_checked(bytes: &[u8]) -> Option<(Value, Facts)> {
        let mut r = Reader::new(bytes);
        let v = r.value(0)?;
        r.bytes.is_empty().then_some((v, Facts { canonical: r.canonical, null: r.null }))
    }

    /// `true` if `bytes` is exactly ciborium's encoding of `v`; `false` if it is not or if the
    /// value is outside the subset (the caller then compares ciborium's encoding).
    pub(super) fn encodes_as(v: &Value, bytes: &[u8]) -> bool {
        let mut r = Reader::new(bytes);
        r.matches(v).is_some() && r.bytes.is_empty()
    }

    fn write_head(out: &mut Vec<u8>, major: u8, arg: u64) {
        let m = major << 5;
        match arg {
            0..=23 => out.push(m | arg as u8),
            24..=0xff => out.extend_from_slice(&[m | 24, arg as u8]),
            0x100..=0xffff => {
                out.push(m | 25);
                out.extend_from_slice(&(arg as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(m | 26);
                out.extend_from_slice(&(arg as u32).to_be_bytes());
            }
            _ => {
                out.push(m | 27);
                out.extend_from_slice(&arg.to_be_bytes());
            }
        }
    }

    /// Appends ciborium's encoding of `v` to `out` and returns `true`, or returns `false` (with
    /// `out` partly written) if `v` is outside the subset.
    pub(super) fn encode(v: &Value, out: &mut Vec<u8>) -> bool {
        match v {
            Value::Integer(i) => {
                let i = i128::from(*i);
                match (u64::try_from(i), u64::try_from(-1 - i)) {
                    (Ok(n), _) => write_head(out, UINT, n),
                    (_, Ok(n)) => write_head(out, NINT, n),
                    _ => return false,
                }
            }
            Value::Bytes(b) => {
                write_head(out, BYTES, b.len() as u64);
                out.extend_from_slice(b);
            }
            Value::Text(t) => {
                write_head(out, TEXT, t.len() as u64);
                out.extend_from_slice(t.as_bytes());
            }
            Value::Array(items) => {
                write_head(out, ARRAY, items.len() as u64);
                return items.iter().all(|item| encode(item, out));
            }
            Value::Map(entries) => {
                write_head(out, MAP, entries.len() as u64);
                return entries.iter().all(|(k, val)| encode(k, out) && encode(val, out));
            }
            Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
            Value::Null => out.push(0xf6),
            _ => return false,
        }
        true
    }
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

    /// Values of every CBOR type ciborium's `Value` has, nested, including those the fast
    /// paths decline (floats, tags, big negative integers).
    fn any_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            any::<u64>().prop_map(|n| Value::Integer(n.into())),
            any::<i64>().prop_map(|n| Value::Integer(n.into())),
            (0u64..4).prop_map(|n| Value::Integer(
                ciborium::value::Integer::try_from(-(1i128 << 64) + i128::from(n)).unwrap_or(0.into())
            )),
            prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
            "[a-z\\u{e9}\\u{1F600}]{0,30}".prop_map(Value::Text),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
            prop_oneof![Just(1.5f64), Just(0.1), Just(f64::INFINITY)].prop_map(Value::Float),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((inner.clone(), inner.clone()), 0..6).prop_map(Value::Map),
                (0u64..30, inner).prop_map(|(t, v)| Value::Tag(t, Box::new(v))),
            ]
        })
    }

    /// An encoding of `v`, possibly with one byte changed, dropped or added.
    fn mutated(v: &Value, edit: (u8, usize, u8)) -> Vec<u8> {
        mutate(encode_value_ciborium(v), edit)
    }

    fn mutate(mut bytes: Vec<u8>, edit: (u8, usize, u8)) -> Vec<u8> {
        let at = edit.1 % (bytes.len() + 1);
        match edit.0 % 4 {
            0 => {}
            1 if at < bytes.len() => bytes[at] ^= edit.2 | 1,
            2 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => bytes.insert(at, edit.2),
        }
        bytes
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn fast_decode_agrees_with_ciborium(v in any_value(), edit in proptest::prelude::any::<(u8, usize, u8)>()) {
            let bytes = mutated(&v, edit);
            if let Some(fast) = fast::decode(&bytes) {
                proptest::prop_assert_eq!(Ok(fast), decode_value_ciborium(&bytes));
            }
            // Debug, not ==, so that NaN compares equal to itself.
            proptest::prop_assert_eq!(format!("{:?}", decode_value(&bytes, usize::MAX)), format!("{:?}", decode_value_ciborium(&bytes)));
        }

        #[test]
        fn fast_decode_agrees_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            proptest::prop_assert_eq!(format!("{:?}", decode_value(&bytes, usize::MAX)), format!("{:?}", decode_value_ciborium(&bytes)));
        }

        #[test]
        fn fast_encode_agrees_with_ciborium(v in any_value()) {
            let mut out = Vec::new();
            if fast::encode(&v, &mut out) {
                proptest::prop_assert_eq!(&out, &encode_value_ciborium(&v));
            }
            proptest::prop_assert_eq!(encode_value(&v), encode_value_ciborium(&v));
        }

        #[test]
        fn canonical_check_agrees_with_reencoding(v in any_value(), edit in proptest::prelude::any::<(u8, usize, u8)>()) {
            let bytes = mutated(&v, edit);
            // Against the value the bytes came from, and against the value they decode to.
            let decoded = decode_value_ciborium(&bytes).ok();
            for value in [Some(&v), decoded.as_ref()].into_iter().flatten() {
                let reference = encode_value_ciborium(value) == bytes;
                if fast::encodes_as(value, &bytes) {
                    proptest::prop_assert!(reference, "fast path accepted a non-canonical encoding");
                }
                proptest::prop_assert_eq!(fast::encodes_as(value, &bytes) || reference, reference);
            }
        }

        /// The one-pass decoder gives exactly the verdict of decoding, then checking
        /// determinism, on canonical encodings and on edits of them and of others; and it
        /// says "no null" only when there is none.
        #[test]
        fn one_pass_decoding_agrees_with_decode_then_check(
            v in any_value(),
            edit in proptest::prelude::any::<(u8, usize, u8)>(),
        ) {
            let canonical = to_canonical_vec(&v).ok();
            let inputs = [Some(mutated(&v, edit)), canonical.clone(), canonical.map(|c| mutate(c, edit))];
            for bytes in inputs.into_iter().flatten() {
                let reference = decode_value(&bytes, usize::MAX)
                    .and_then(|value| check_canonical(&bytes, &value).map(|()| value));
                let ours = decode_deterministic(&bytes, usize::MAX);
                proptest::prop_assert_eq!(
                    format!("{:?}", ours.as_ref().map(|(value, _)| value)),
                    format!("{:?}", reference)
                );
                if let Ok((value, false)) = &ours {
                    proptest::prop_assert!(check_no_null(value).is_ok());
                }
            }
        }
    }

    #[test]
    fn one_pass_decoding_refuses_every_non_deterministic_form() {
        let cases: &[(&str, &[u8])] = &[
            ("uint in 2 bytes", &[0x18, 0x05]),
            ("uint in 3 bytes", &[0x19, 0x00, 0xff]),
            ("negative in 2 bytes", &[0x38, 0x00]),
            ("text length in 2 bytes", &[0x78, 0x01, b'a']),
            ("bytes length in 2 bytes", &[0x58, 0x01, 0x00]),
            ("array length in 2 bytes", &[0x98, 0x01, 0x00]),
            ("map length in 2 bytes", &[0xb8, 0x01, 0x61, b'a', 0x00]),
            ("nested long form", &[0xa1, 0x61, b'a', 0x81, 0x18, 0x01]),
            ("keys out of order", &[0xa2, 0x61, b'b', 0x00, 0x61, b'a', 0x00]),
            ("shorter key after longer", &[0xa2, 0x62, b'a', b'a', 0x00, 0x61, b'b', 0x00]),
            ("duplicate keys", &[0xa2, 0x61, b'a', 0x00, 0x61, b'a', 0x01]),
        ];
        for (what, bytes) in cases {
            assert!(
                matches!(decode_deterministic(bytes, 100), Err(Error::NonDeterministic(_))),
                "{what}: {:?}",
                decode_deterministic(bytes, 100)
            );
        }
        let (value, null) = decode_deterministic(&[0xa2, 0x61, b'a', 0x00, 0x61, b'b', 0xf6], 100).unwrap();
        assert!(null && check_no_null(&value).is_err());
        let (_, null) = decode_deterministic(&[0xa2, 0x61, b'a', 0x00, 0x62, b'a', b'a', 0x01], 100).unwrap();
        assert!(!null);
    }

    #[test]
    fn fast_paths_take_the_payload_subset() {
        let v = Value::Map(vec![
            (Value::Text("a".into()), Value::Integer((-500).into())),
            (Value::Text("b".into()), Value::Array(vec![Value::Bytes(vec![1; 30]), Value::Bool(true)])),
        ]);
        let bytes = encode_value_ciborium(&v);
        assert_eq!(fast::decode(&bytes), Some(v.clone()));
        assert!(fast::encodes_as(&v, &bytes));
        // Not shortest (0x18 0x01 for 1): declined, and refused by the reference check.
        assert!(!fast::encodes_as(&Value::Integer(1.into()), &[0x18, 0x01]));
        assert!(fast::decode(&[0xf9, 0x3c, 0x00]).is_none(), "floats go to ciborium");
        assert!(fast::decode(&[0xc1, 0x01]).is_none(), "tags go to ciborium");
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
