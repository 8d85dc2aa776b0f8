//! Bad input on the wire (spec §11.2): a probe speaking only the message protocol sends a
//! daemon malformed, forged, oversized, misaddressed, out-of-state and repeated messages. Each
//! gets a signed answer with its problem code, is counted in the metrics, and changes nothing
//! stored; a good message gets a receipt, and its repeat another one, stored once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{json, now_ms, offer, verdict, Daemon, Wire};
use ed25519_dalek::SigningKey;
use rapport_node::client::Client;
use rapport_protocol::{Body, ClosureReceipt, Header, KeyId, Message, MessageId, Payload, RelationshipId};

#[test]
fn every_bad_message_gets_a_signed_problem_report_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let mut customer = Daemon::init(root.path(), "customer");
    customer.start();
    let vendor = SigningKey::from_bytes(&[42; 32]);
    let mut wire = Wire::connect(&customer, &vendor);
    let daemon = wire.daemon;

    let rel = RelationshipId::from_bytes([7; 16]);
    let good = offer(&vendor, daemon, rel, now_ms());
    let mut forged = good.bytes().to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 0x01;
    let elsewhere =
        offer(&vendor, KeyId::from_bytes(SigningKey::from_bytes(&[9; 32]).verifying_key().to_bytes()), rel, now_ms());
    let closure = {
        let header = Header::opening(RelationshipId::from_bytes([8; 16]), good.header().from, daemon, now_ms());
        let body = Body::ClosureReceipt(ClosureReceipt { statement: MessageId::from_bytes([1; 32]) });
        Message::seal(Payload { header, body }, &vendor).unwrap()
    };

    assert_eq!(wire.ask(vec![0x01, 0x02, 0x03]), Err("malformed".into()));
    assert_eq!(wire.ask(forged), Err("bad-signature".into()));
    assert_eq!(wire.ask(elsewhere.bytes().to_vec()), Err("wrong-recipient".into()));
    assert_eq!(wire.ask(closure.bytes().to_vec()), Err("unknown-relationship".into()));
    let big = wire.runtime.block_on(wire.probe.announce(wire.peer, 70_000)).unwrap();
    assert_eq!(verdict(&big, daemon), Err("too-large".into()));
    // Nothing stored so far.
    assert_eq!(json(&customer.dir, &["relationships"]), serde_json::json!([]));

    // A good message gets a receipt; its repeat gets one too and is stored once.
    assert_eq!(wire.ask(good.bytes().to_vec()), Ok(good.id()));
    assert_eq!(wire.ask(good.bytes().to_vec()), Ok(good.id()));
    let log = json(&customer.dir, &["log", &rel.to_hex()]);
    let ids: Vec<&str> = log.as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids.iter().filter(|i| **i == good.id().to_hex()).count(), 1);
    assert_eq!(log.as_array().unwrap().len(), 2, "the offer and the daemon's own receipt");

    let metrics = wire.runtime.block_on(Client::for_data_dir(&customer.dir).unwrap().get_text("/metrics")).unwrap();
    for code in ["malformed", "bad-signature", "wrong-recipient", "unknown-relationship", "too-large"] {
        let line = format!("rapport_messages_rejected_total{{code=\"{code}\"}} 1");
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    assert!(metrics.lines().any(|l| l == "rapport_messages_received_total 1"), "{metrics}");
    customer.stop();
}
