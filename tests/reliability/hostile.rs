//! Reliability suite, hostile peers (issue #22): a scripted attacker speaks the real wire to a
//! running daemon and sends what a stranger would to crash it or spoil its record. Each case
//! checks that the daemon stays up, refuses with the documented answer, stores nothing it was
//! not meant to, and keeps serving a legitimate peer meanwhile. RELIABILITY.md records the
//! rows (`cargo test -p rapport-node --test reliability-hostile -- --nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../../node/tests/common/mod.rs"]
mod common;

use ciborium::Value;
use common::{json, now_ms, offer, rapport, Daemon, Wire};
use ed25519_dalek::{Signer as _, SigningKey};
use rapport_protocol::{Body, Header, Message, Payload, Receipt, RelationshipId};

/// `m` with its payload's `kind` replaced by `kind`, signed again by `key`: a well-signed
/// envelope whose kind no version defines.
fn with_kind(m: &Message, kind: &str, key: &SigningKey) -> Vec<u8> {
    let mut payload: Value = ciborium::from_reader(m.payload_bytes().as_slice()).unwrap();
    let Value::Map(entries) = &mut payload else { panic!("a payload is a map") };
    for (k, v) in entries.iter_mut() {
        if k.as_text() == Some("kind") {
            *v = Value::Text(kind.into());
        }
    }
    let payload = rapport_protocol::cbor::to_canonical_vec(&payload).unwrap();
    let envelope: Value = ciborium::from_reader(m.bytes()).unwrap();
    let Value::Tag(18, sign1) = envelope else { panic!("a COSE_Sign1 is tagged 18") };
    let Value::Array(parts) = *sign1 else { panic!("a COSE_Sign1 is an array") };
    let protected = parts[0].clone();
    let to_be_signed = Value::Array(vec![
        Value::Text("Signature1".into()),
        protected.clone(),
        Value::Bytes(Vec::new()),
        Value::Bytes(payload.clone()),
    ]);
    let mut tbs = Vec::new();
    ciborium::into_writer(&to_be_signed, &mut tbs).unwrap();
    let signature = key.sign(&tbs).to_bytes().to_vec();
    let sign1 = Value::Tag(
        18,
        Box::new(Value::Array(vec![protected, parts[1].clone(), Value::Bytes(payload), Value::Bytes(signature)])),
    );
    let mut out = Vec::new();
    ciborium::into_writer(&sign1, &mut out).unwrap();
    out
}

#[test]
fn a_hostile_peer_cannot_crash_the_node_or_spoil_its_record() {
    let root = tempfile::tempdir().unwrap();
    let mut customer = Daemon::init(root.path(), "customer");
    customer.start();
    let attacker = SigningKey::from_bytes(&[66; 32]);
    let honest = SigningKey::from_bytes(&[7; 32]);
    let mut wire = Wire::connect(&customer, &attacker);
    let mut neighbour = Wire::connect(&customer, &honest);
    let daemon = wire.daemon;
    let mut rows: Vec<(&str, String)> = Vec::new();

    // 1. A kind of `x` (or `xy`) and 700 two-byte characters: whatever the detail's prefix,
    // its 1,000th byte falls inside a character for one of the two, and quoting the kind in
    // the problem report's text must cut at a character boundary, not panic.
    let template = offer(&attacker, daemon, RelationshipId::from_bytes([1; 16]), now_ms());
    for prefix in ["x", "xy"] {
        let kind = format!("{prefix}{}", "é".repeat(700));
        let answer = wire.send(with_kind(&template, &kind, &attacker));
        let report = Message::open(&answer).expect("a signed answer");
        let Body::ProblemReport(p) = report.body() else { panic!("{} instead of a problem report", report.kind()) };
        assert_eq!(p.code, "unknown-kind");
        assert!(p.text.len() <= 1000, "the detail is bounded: {} bytes", p.text.len());
    }
    let honest_offer = offer(&honest, daemon, RelationshipId::from_bytes([2; 16]), now_ms());
    assert_eq!(neighbour.ask(honest_offer.bytes().to_vec()), Ok(honest_offer.id()), "the node still serves others");
    rows.push((
        "signed message whose kind is `x` or `xy` + 700 × `é` (1,401 or 1,402 bytes)",
        "unknown-kind; node up".into(),
    ));

    // 2. A standalone receipt sent as a request, inside a relationship the attacker opened: it
    // is neither stored nor answered, so the relationship's export still verifies.
    let rel = RelationshipId::from_bytes([3; 16]);
    let opening = offer(&attacker, daemon, rel, now_ms());
    assert_eq!(wire.ask(opening.bytes().to_vec()), Ok(opening.id()));
    let before = json(&customer.dir, &["log", &rel.to_hex()]);
    let header = Header::ack(Some(rel), opening.header().from, daemon, now_ms());
    let stored_receipt = before.as_array().unwrap().iter().find(|m| m["kind"] == "receipt").unwrap()["id"].clone();
    for named in [opening.id(), rapport_protocol::MessageId::from_hex(stored_receipt.as_str().unwrap()).unwrap()] {
        let body = Body::Receipt(Receipt { message: named });
        let receipt = Message::seal(Payload { header: header.clone(), body }, &attacker).unwrap();
        let answer = wire.runtime.block_on(wire.probe.send(wire.peer, receipt.bytes().to_vec()));
        assert!(answer.is_err(), "an acknowledgement sent as a request is not answered: {answer:?}");
    }
    assert_eq!(json(&customer.dir, &["log", &rel.to_hex()]), before, "nothing stored");
    let bundle = root.path().join("attacked.json");
    let out = rapport(&customer.dir, &["export", &rel.to_hex(), "--out", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "export: {}", String::from_utf8_lossy(&out.stderr));
    let out = rapport(&customer.dir, &["verify", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "the export still verifies: {}", String::from_utf8_lossy(&out.stderr));
    rows.push((
        "standalone receipt sent as a request (naming her offer, or her own receipt)",
        "no answer; nothing stored; export verifies".into(),
    ));

    // The honest peer is still answered, and the daemon counted what it refused.
    let again = offer(&honest, daemon, RelationshipId::from_bytes([4; 16]), now_ms());
    assert_eq!(neighbour.ask(again.bytes().to_vec()), Ok(again.id()));
    let metrics = wire
        .runtime
        .block_on(rapport_node::client::Client::for_data_dir(&customer.dir).unwrap().get_text("/metrics"))
        .unwrap();
    assert!(metrics.contains("rapport_messages_rejected_total{code=\"unknown-kind\"} 2"), "{metrics}");
    assert!(metrics.contains("rapport_unsolicited_acknowledgements_total 2"), "{metrics}");

    println!("\n| attack | answer |\n|---|---|");
    for (attack, answer) in &rows {
        println!("| {attack} | {answer} |");
    }
    customer.stop();
}
