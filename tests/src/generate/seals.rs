//! `seals/`: export bundles with the exporter's seal (spec/node.md §7), each judged by bundle
//! verification as `rapport verify` runs it: two that verify, and one for each way a bundle
//! is cut, padded, edited, unsigned or sealed by the wrong key.

use rapport_node::bundle::{Bundle, UNSIGNED_FORMAT};
use rapport_protocol::seal::{self, Seal};

use super::*;
use crate::{judge_bundle, BundleVector};

/// When the bundles say they were exported: a day after the lifecycle began.
const EXPORTED_AT: Timestamp = T0 + DAY;

pub(super) fn seals(out: &mut Out, cast: &Cast, w: &Walk<'_>) {
    // The relationship up to the consent grant, as the customer's node exports it.
    let held = w.upto("grant");
    let envelopes: Vec<Vec<u8>> = held.messages.iter().map(|(_, m)| m.bytes().to_vec()).collect();
    let rel = held.rel.id();
    let phase = held.rel.phase().as_str();
    let bundle = |key: &SigningKey, phase: &str| Bundle::new(rel, key, EXPORTED_AT, phase, &envelopes).unwrap();
    let by_customer = bundle(&cast.customer, phase);

    out.bundle(
        "valid-by-customer",
        "The customer's export of the relationship up to her consent grant, sealed by her key: it verifies.",
        &by_customer,
        None,
    );
    out.bundle(
        "valid-by-vendor",
        "The same messages exported by the vendor's node, sealed by its key: it verifies.",
        &bundle(&cast.vendor, phase),
        None,
    );

    let mut b = by_customer.clone();
    b.messages.pop();
    b.manifest.ids.pop();
    out.bundle(
        "truncated-last",
        "The last message and its id are dropped: the rest is a valid log, but the seal covers one message more.",
        &b,
        Some("truncated"),
    );
    let mut b = by_customer.clone();
    b.messages.truncate(2);
    out.bundle(
        "truncated-ids-kept",
        "All but the first two messages are dropped and the manifest's ids left as they were: the count is checked first.",
        &b,
        Some("truncated"),
    );
    let mut b = by_customer.clone();
    let next = w.messages[w.position("grant") + 1].1.bytes();
    b.messages.push(hex::encode(next));
    b.manifest.ids.push(MessageId::of(next).to_hex());
    out.bundle(
        "added-message",
        "The relationship's next message (the vendor's usage report) is appended, with its id: the seal covers one message fewer.",
        &b,
        Some("messages-altered"),
    );
    let mut b = by_customer.clone();
    b.messages.swap(2, 3);
    b.manifest.ids.swap(2, 3);
    out.bundle(
        "reordered",
        "Two messages and their ids swap places: as many as sealed, but the digest over the ids in order differs.",
        &b,
        Some("messages-altered"),
    );
    let mut b = by_customer.clone();
    let i = b.messages.len() - 1;
    b.messages[i] = hex::encode(w.messages[w.position("grant") + 1].1.bytes());
    b.manifest.ids[i] = MessageId::of(w.messages[w.position("grant") + 1].1.bytes()).to_hex();
    out.bundle(
        "replaced-message",
        "The last message is replaced by another of the relationship's messages: the count holds, the digest does not.",
        &b,
        Some("messages-altered"),
    );
    let mut b = by_customer.clone();
    b.manifest.exported_by = kid(&cast.vendor).to_hex();
    out.bundle(
        "edited-exported-by",
        "The manifest's exported_by names the vendor; the seal, by the customer, says otherwise.",
        &b,
        Some("manifest-edited"),
    );
    let mut b = by_customer.clone();
    b.manifest.exported_at += DAY;
    out.bundle(
        "edited-exported-at",
        "The manifest's exported_at is moved a day later than the sealed time.",
        &b,
        Some("manifest-edited"),
    );
    let mut b = by_customer.clone();
    b.manifest.ids.swap(0, 1);
    out.bundle(
        "edited-ids",
        "The manifest lists two ids in the wrong order; the messages are as sealed.",
        &b,
        Some("manifest-edited"),
    );
    out.bundle(
        "seal-by-outsider",
        "A valid seal, but by a key that is neither party: only a party's node may vouch for its record.",
        &bundle(&cast.outsider, phase),
        Some("seal-not-by-party"),
    );
    let mut b = by_customer.clone();
    let payload = sealed_payload(&by_customer);
    b.seal = Some(hex::encode(raw::sign_seal(&cast.outsider, kid(&cast.customer).as_bytes(), &payload)));
    out.bundle(
        "seal-wrong-key",
        "The customer's seal statement and kid, signed by the outsider's key: the signature does not verify.",
        &b,
        Some("bad-seal"),
    );
    let mut b = by_customer.clone();
    b.seal = Some(hex::encode(raw::sign_seal(&cast.outsider, kid(&cast.outsider).as_bytes(), &payload)));
    out.bundle(
        "seal-exporter-mismatch",
        "A seal signed by the outsider, kid and all, over a statement naming the customer as exported_by (wrong-key).",
        &b,
        Some("bad-seal"),
    );
    let mut b = by_customer.clone();
    let mut bytes = hex::decode(b.seal.as_ref().unwrap()).unwrap();
    *bytes.last_mut().unwrap() ^= 0x01;
    b.seal = Some(hex::encode(bytes));
    out.bundle("seal-bad-signature", "One bit of the seal's signature is flipped.", &b, Some("bad-seal"));
    let mut b = by_customer.clone();
    b.seal = Some(hex::encode(&envelopes[0]));
    out.bundle(
        "seal-is-a-message",
        "The seal field holds a protocol message, validly signed by a party: its protected header has no content type.",
        &b,
        Some("bad-seal"),
    );
    let mut b = by_customer.clone();
    b.seal = Some(hex::encode(raw::sign(&cast.customer, &payload)));
    out.bundle(
        "seal-without-content-type",
        "The seal's statement signed by the customer under a protocol message's header {1: -8, 4: kid}.",
        &b,
        Some("bad-seal"),
    );
    let mut b = by_customer.clone();
    b.seal = None;
    out.bundle("unsigned-seal-removed", "A rapport-export/2 bundle whose seal was removed.", &b, Some("unsigned"));
    b.format = UNSIGNED_FORMAT.into();
    out.bundle(
        "unsigned-first-version",
        "A rapport-export/1 bundle, which carries no seal: refused unless unsigned bundles are allowed.",
        &b,
        Some("unsigned"),
    );
    out.bundle(
        "false-phase",
        "The customer seals (and the manifest states) phase closed; the log ends in phase active.",
        &bundle(&cast.customer, "closed"),
        Some("false-claim"),
    );
    let mut b = by_customer;
    b.format = "rapport-export/3".into();
    out.bundle("unknown-format", "A format this version does not read.", &b, Some("unknown-format"));
}

/// The payload of a bundle's seal.
fn sealed_payload(b: &Bundle) -> Vec<u8> {
    let bytes = hex::decode(b.seal.as_ref().unwrap()).unwrap();
    let statement = Seal::open(&bytes).unwrap();
    let payload = rapport_protocol::cbor::to_canonical_vec(&statement).unwrap();
    assert_eq!(statement.format, seal::FORMAT);
    payload
}

impl Out {
    /// A seal vector: `bundle` given to bundle verification, expected to reach `code`.
    fn bundle(&mut self, name: &str, description: &str, bundle: &Bundle, code: Option<&str>) {
        let text = serde_json::to_string(bundle).unwrap();
        let verdict = judge_bundle(text.as_bytes());
        assert_eq!(verdict, code.map_or(Ok(()), |c| Err(c.to_owned())), "seals/{name}");
        let parsed = bundle.seal.as_ref().and_then(|h| hex::decode(h).ok()).and_then(|b| cose_parts(&b));
        let vector = BundleVector {
            name: name.into(),
            description: description.into(),
            valid: verdict.is_ok(),
            problem_code: verdict.err(),
            signer_public_key_hex: parsed.as_ref().map(|(kid, _)| hex::encode(kid)),
            seal_payload_hex: parsed.as_ref().map(|(_, payload)| hex::encode(payload)),
            bundle: serde_json::to_value(bundle).unwrap(),
        };
        self.files.push(File { path: format!("seals/{name}.json"), text: json(&vector) });
    }
}

/// The kid and payload of a COSE_Sign1, when it parses as one.
fn cose_parts(bytes: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let sign1 = rapport_protocol::cose::parse_sign1(bytes).ok()?;
    Some((sign1.protected.header.key_id.clone(), sign1.payload?))
}
