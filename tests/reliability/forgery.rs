//! Reliability suite, replay and forgery (issue #6, scope 2): a raw peer sends a running
//! daemon what an attacker or a broken implementation would. The figures print as a table
//! (`cargo test -p rapport-node --test reliability-forgery -- --nocapture`); RELIABILITY.md
//! records them.
//!
//! - every invalid vector of `spec/vectors/invalid/` and `spec/vectors/strict/` (malformed,
//!   non-deterministic, forged, wrong key id, weak and non-canonical keys and signatures, too
//!   large, too deep…): each gets a signed problem report with the vector's code;
//! - one signed message sent 1,000 times: one stored, every copy answered with its receipt;
//! - timestamps outside the window (more than 5 minutes ahead, more than 30 days old):
//!   `clock-skew`;
//! - a message re-chained into another relationship (its `prev` names a message of another
//!   one): `fork`;
//!
//! and none of the refused ones changes anything stored.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../../node/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{json, now_ms, offer, verdict, Daemon, Wire};
use ed25519_dalek::SigningKey;
use rapport_node::client::Client;
use rapport_protocol::{Body, Header, Message, Money, Offer, Payload, Price, PriceModel, RelationshipId};
use serde_json::Value;

/// Copies of one message sent.
const REPEATS: usize = 1_000;
/// Copies in flight at once.
const IN_FLIGHT: usize = 32;

/// The invalid vectors: (file name, envelope bytes, expected problem code).
fn invalid_vectors() -> Vec<(String, Vec<u8>, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/vectors");
    let mut out = Vec::new();
    for dir in ["invalid", "strict"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            if v["valid"] == true {
                continue;
            }
            let name = format!("{dir}/{}", file.file_stem().unwrap().to_string_lossy());
            let bytes = hex::decode(v["cose_hex"].as_str().unwrap()).unwrap();
            out.push((name, bytes, v["problem_code"].as_str().unwrap().to_owned()));
        }
    }
    out
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0)
}

#[test]
fn replays_and_forgeries_are_refused_with_their_codes_and_change_nothing() {
    let root = tempfile::tempdir().unwrap();
    let mut customer = Daemon::init(root.path(), "customer");
    customer.start();
    let vendor = SigningKey::from_bytes(&[42; 32]);
    let mut wire = Wire::connect(&customer, &vendor);
    let (daemon, peer) = (wire.daemon, wire.peer);
    // Rows of the table: case, messages sent, the answer every one of them got.
    let mut rows: Vec<(String, usize, String)> = Vec::new();

    // Every invalid vector, one by one.
    let vectors = invalid_vectors();
    assert!(vectors.len() >= 40, "the vectors are all there: {}", vectors.len());
    let mut by_code: BTreeMap<String, usize> = BTreeMap::new();
    for (name, bytes, code) in &vectors {
        // The probe's own codec will not write an oversized frame; it announces its length,
        // which is all the daemon reads of it before answering.
        let got = if bytes.len() > rapport_protocol::cbor::MAX_MESSAGE_SIZE {
            verdict(&wire.runtime.block_on(wire.probe.announce(peer, bytes.len())).unwrap(), daemon)
        } else {
            wire.ask(bytes.clone())
        };
        assert_eq!(got, Err(code.clone()), "{name}");
        *by_code.entry(code.clone()).or_default() += 1;
    }
    for (code, sent) in &by_code {
        rows.push((format!("invalid vectors: {code}"), *sent, code.clone()));
    }
    assert_eq!(json(&customer.dir, &["relationships"]), serde_json::json!([]), "nothing stored");

    // Timestamps outside the window.
    let minute = 60_000;
    let ahead = offer(&vendor, daemon, RelationshipId::from_bytes([1; 16]), now_ms() + 6 * minute);
    let old = offer(&vendor, daemon, RelationshipId::from_bytes([2; 16]), now_ms() - 31 * 24 * 60 * minute);
    assert_eq!(wire.ask(ahead.bytes().to_vec()), Err("clock-skew".into()), "6 minutes ahead");
    assert_eq!(wire.ask(old.bytes().to_vec()), Err("clock-skew".into()), "31 days old");
    rows.push(("created 6 min ahead, or 31 days ago".into(), 2, "clock-skew".into()));
    assert_eq!(json(&customer.dir, &["relationships"]), serde_json::json!([]), "nothing stored");

    // One message, sent 1,000 times: every copy gets its receipt, one is stored.
    let rel_a = RelationshipId::from_bytes([7; 16]);
    let good = offer(&vendor, daemon, rel_a, now_ms());
    let frames = vec![good.bytes().to_vec(); REPEATS];
    let started = std::time::Instant::now();
    let answers = wire.runtime.block_on(wire.probe.send_all(peer, frames, IN_FLIGHT));
    let took = started.elapsed();
    let receipts = answers.iter().filter(|a| verdict(a.as_ref().unwrap(), daemon) == Ok(good.id())).count();
    assert_eq!(receipts, REPEATS, "each copy is answered with the receipt of the one message");
    let log = json(&customer.dir, &["log", &rel_a.to_hex()]);
    let stored = log.as_array().unwrap().iter().filter(|m| m["id"] == good.id().to_hex().as_str()).count();
    assert_eq!(stored, 1, "stored once");
    assert_eq!(log.as_array().unwrap().len(), 2, "the offer and the daemon's own receipt, nothing else");
    // Every copy gets the very receipt the daemon stored, so the sender holds the same record.
    let stored_receipt = log.as_array().unwrap().iter().find(|m| m["kind"] == "receipt").unwrap()["envelope"].clone();
    let distinct: std::collections::BTreeSet<&Vec<u8>> = answers.iter().map(|a| a.as_ref().unwrap()).collect();
    assert_eq!(distinct.len(), 1, "{} different receipts for one message", distinct.len());
    assert_eq!(hex::encode(distinct.first().unwrap()), stored_receipt.as_str().unwrap(), "the stored receipt");
    rows.push((
        format!("one offer sent {REPEATS} times, {IN_FLIGHT} in flight"),
        REPEATS,
        "its receipt; stored once".into(),
    ));

    // Re-chained into another relationship: B opens, then a message of B names A's offer as
    // its predecessor.
    let rel_b = RelationshipId::from_bytes([8; 16]);
    let open_b = offer(&vendor, daemon, rel_b, now_ms());
    assert_eq!(wire.ask(open_b.bytes().to_vec()), Ok(open_b.id()));
    let mut header = Header::opening(rel_b, open_b.header().from, daemon, now_ms());
    header.seq = 2;
    header.prev = Some(good.id());
    let price = Price { model: PriceModel::Upfront, amount: Money::new("EUR", 90), metric: None, threshold: None };
    let body = Body::Offer(Offer { title: "Cheaper".into(), description: String::new(), price, terms: None });
    let crossed = Message::seal(Payload { header, body }, &vendor).unwrap();
    let before_b = json(&customer.dir, &["log", &rel_b.to_hex()]);
    assert_eq!(wire.ask(crossed.bytes().to_vec()), Err("fork".into()));
    assert_eq!(json(&customer.dir, &["log", &rel_b.to_hex()]), before_b, "nothing stored in B");
    assert_eq!(json(&customer.dir, &["log", &rel_a.to_hex()]), log, "nothing changed in A");
    rows.push(("prev names a message of another relationship".into(), 1, "fork".into()));

    // The daemon counted what it refused, by code, and received two messages in all.
    let metrics = wire.runtime.block_on(Client::for_data_dir(&customer.dir).unwrap().get_text("/metrics")).unwrap();
    let mut expected: BTreeMap<String, u64> = by_code.iter().map(|(c, n)| (c.clone(), *n as u64)).collect();
    *expected.entry("clock-skew".into()).or_default() += 2;
    *expected.entry("fork".into()).or_default() += 1;
    for (code, n) in &expected {
        let counted = metric(&metrics, &format!("rapport_messages_rejected_total{{code=\"{code}\"}}"));
        assert_eq!(counted, *n, "{code} in\n{metrics}");
    }
    assert_eq!(metric(&metrics, "rapport_messages_received_total"), 2, "A's offer and B's; repeats are not new");

    println!("\n| case | sent | every one answered with |\n|---|---:|---|");
    for (case, sent, answer) in &rows {
        println!("| {case} | {sent} | {answer} |");
    }
    let total: usize = rows.iter().map(|r| r.1).sum();
    println!("\n{total} messages sent; every answer signed by the daemon; nothing refused was stored.");
    println!(
        "{REPEATS} copies of one message answered in {:.0} ms ({:.0} answers/s).",
        took.as_secs_f64() * 1e3,
        REPEATS as f64 / took.as_secs_f64()
    );
    customer.stop();
}
