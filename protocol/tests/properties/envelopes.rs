//! (a)–(c): envelopes: sealing round-trips, encodings are stable and unique, any change to a
//! signed envelope is refused.

use super::*;

// =============================================================================================
// a–c: envelopes.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (a) Seal, then open: the same payload, id = SHA-256 of the bytes, signer = from.
    #[test]
    fn sealed_messages_open_to_the_same_payload((key, payload) in signed_payload()) {
        let sent = Message::seal(payload.clone(), &key).unwrap();
        prop_assert!(sent.bytes().len() <= MAX_MESSAGE_SIZE, "the strategies stay within the size limit");
        let got = Message::open(sent.bytes()).unwrap();
        prop_assert_eq!(got.payload(), &payload);
        prop_assert_eq!(got.id(), MessageId::of(sent.bytes()));
        prop_assert_eq!(got.id(), sent.id());
        prop_assert_eq!(got.signer(), payload.header.from);
        prop_assert_eq!(got.signer(), kid(&key));
        prop_assert_eq!(got.bytes(), sent.bytes());
        prop_assert_eq!(got.payload_bytes(), payload.encode().unwrap());
        prop_assert_eq!(&got, &sent);
    }

    /// (b) Decoding and re-encoding gives the identical bytes; sealing is deterministic.
    #[test]
    fn encoding_is_stable((key, payload) in signed_payload()) {
        let bytes = payload.encode().unwrap();
        let decoded = Payload::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &payload);
        prop_assert_eq!(decoded.encode().unwrap(), bytes);
        let a = Message::seal(payload.clone(), &key).unwrap();
        let b = Message::seal(decoded, &key).unwrap();
        prop_assert_eq!(a.bytes(), b.bytes());
        prop_assert_eq!(a.id(), b.id());
    }

    /// (b) One encoding per value: whatever bytes the decoder accepts — here, edits of a valid
    /// payload's CBOR tree and of its bytes — are exactly the encoding of what they decode to.
    #[test]
    fn the_decoder_accepts_only_the_encoders_output(
        (_key, payload) in signed_payload(),
        edits in prop::collection::vec((any::<u8>(), any::<usize>(), replacement()), 1..3),
        byte_edit in any::<(usize, u8)>(),
    ) {
        let mut value: Value = cbor::decode_canonical::<Value>(&payload.encode().unwrap(), MAX_MESSAGE_SIZE).unwrap().1;
        for (op, at, new) in edits {
            edit_tree(&mut value, op, at, new);
        }
        let sorted = cbor::to_canonical_vec(&value).unwrap();
        let mut as_is = Vec::new();
        ciborium::into_writer(&value, &mut as_is).unwrap();
        let mut flipped = sorted.clone();
        if !flipped.is_empty() {
            let i = byte_edit.0 % flipped.len();
            flipped[i] ^= byte_edit.1;
        }
        for bytes in [sorted, as_is, flipped] {
            if let Ok(p) = Payload::decode(&bytes) {
                prop_assert_eq!(p.encode().unwrap(), bytes);
            }
        }
    }

    /// (c) Any single-byte change, any truncation and any appended byte is refused.
    #[test]
    fn any_change_to_a_signed_message_is_refused(
        (key, payload) in signed_payload(),
        at in any::<usize>(),
        mask in 1..=255u8,
        cut in any::<usize>(),
        extra in any::<u8>(),
    ) {
        let sent = Message::seal(payload, &key).unwrap();
        let bytes = sent.bytes();
        let mut flipped = bytes.to_vec();
        let at = at % bytes.len();
        flipped[at] ^= mask;
        prop_assert!(Message::open(&flipped).is_err(), "byte {} ^ {:#04x} accepted", at, mask);
        let cut = cut % bytes.len();
        prop_assert!(Message::open(&bytes[..cut]).is_err(), "truncation to {} bytes accepted", cut);
        prop_assert!(Message::open(&[bytes, &[extra]].concat()).is_err(), "appended {:#04x} accepted", extra);
        prop_assert!(Message::open(&[&[extra], bytes].concat()).is_err(), "prepended {:#04x} accepted", extra);
    }
}

/// Values that replace a node of a payload's CBOR tree.
fn replacement() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(|n| Value::Integer(n.into())),
        (0..30u64).prop_map(|n| Value::Integer(n.into())),
        any::<i64>().prop_map(|n| Value::Integer(n.into())),
        "[a-z_]{0,12}".prop_map(Value::Text),
        select(vec!["upfront", "per_usage", "customer", "vendor", "export", "retained", "none", "flat"])
            .prop_map(|s| Value::Text(s.into())),
        prop_oneof![
            prop::collection::vec(any::<u8>(), 16),
            prop::collection::vec(any::<u8>(), 32),
            prop::collection::vec(any::<u8>(), 0..40)
        ]
        .prop_map(Value::Bytes),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        Just(Value::Array(vec![])),
        Just(Value::Map(vec![])),
        Just(Value::Float(1.0)),
    ]
}

/// Applies one edit to the tree. Half of the edits keep the node's type (another integer, text
/// or byte string of the same length, the other boolean, one entry fewer), since those are the
/// edits a decoder is most likely to accept; the others replace, add or wrap a node.
fn edit_tree(root: &mut Value, op: u8, at: usize, new: Value) {
    let count = count_nodes(root);
    let target = nth_node(root, at % count);
    match (op % 6, target, new) {
        (0..=2, Value::Integer(i), new) => {
            let n = i128::from(*i);
            *i = match new {
                Value::Integer(j) => j,
                _ => ciborium::value::Integer::try_from(n ^ 1).unwrap_or(0.into()),
            }
        }
        (0..=2, Value::Text(t), Value::Text(new)) => *t = new,
        (0..=2, Value::Text(t), _) => t.push('x'),
        (0..=2, Value::Bytes(b), _) if !b.is_empty() => {
            let i = at % b.len();
            b[i] ^= 0x80;
        }
        (0..=2, Value::Bool(b), _) => *b = !*b,
        (0..=2, Value::Map(e), _) if !e.is_empty() => {
            e.remove(at % e.len());
        }
        (0..=2, Value::Array(items), _) if !items.is_empty() => {
            items.remove(at % items.len());
        }
        (3, Value::Map(e), new) => {
            let key = ["v", "to", "seq", "body", "metric", "amount", "role", "x", "terms", "purpose"][at % 10];
            e.push((Value::Text(key.into()), new));
        }
        (3, Value::Array(items), new) => items.push(new),
        (4, target, new) => {
            let old = std::mem::replace(target, Value::Null);
            *target = if at % 2 == 0 { Value::Array(vec![old]) } else { Value::Map(vec![(new, old)]) };
        }
        (_, target, new) => *target = new,
    }
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Map(entries) => entries.iter().map(|(_, val)| count_nodes(val)).sum(),
        _ => 0,
    }
}

/// The `n`th node in pre-order (the root is 0).
fn nth_node(v: &mut Value, mut n: usize) -> &mut Value {
    if n == 0 {
        return v;
    }
    n -= 1;
    let children: Vec<&mut Value> = match v {
        Value::Array(items) => items.iter_mut().collect(),
        Value::Map(entries) => entries.iter_mut().map(|(_, val)| val).collect(),
        _ => unreachable!("n is below the node count"),
    };
    for child in children {
        let size = count_nodes(child);
        if n < size {
            return nth_node(child, n);
        }
        n -= size;
    }
    unreachable!("n is below the node count")
}
