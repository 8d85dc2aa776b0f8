//! One customer and three vendors, each a real `rapport` process on 127.0.0.1, through the CLI.
//! The customer's intent reaches all three by gossip; each answers with an offer, and the three
//! relationships walk, interleaved, the whole lifecycle to the closure receipt. Both sides'
//! exports verify and hold the same messages.
//!
//! On the way, two refusals the protocol promises:
//! - after consent is revoked, a data share is refused at once: by the vendor's own node, and
//!   by the customer's node when a vendor sends one anyway (signed with its key, correctly
//!   chained), with `consent-required`;
//! - after closure, contact in that relationship is refused the same two ways, with `closed`.
//!
//! Neither refusal changes anything stored.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../../node/tests/common/mod.rs"]
mod common;

use common::{act, json, key_of, now_ms, rapport, verdict, wait_for, Daemon, Wire};
use ed25519_dalek::SigningKey;
use rapport_protocol::{
    Body, Category, DataShare, Digest32, Header, KeyId, Message, MessageId, Payload, Purpose, RelationshipId,
    ShareContent,
};
use serde_json::Value;

const PURPOSE: &str = "dpv:ServiceProvision";
const CATEGORY: &str = "pd:Location";

/// Runs `args` on `node`, expecting a refusal whose one-line reason names `code`.
fn refused(node: &Daemon, args: &[&str], code: &str) {
    let out = rapport(&node.dir, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} was accepted");
    assert!(err.contains(code), "{args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(json(&node.dir, &["status"])["outbox"], 0, "nothing queued");
}

fn log_ids(node: &Daemon, rel: &str) -> Vec<String> {
    json(&node.dir, &["log", rel]).as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

/// A data share signed with the vendor's `key` in relationship `rel`, chained after its last
/// message in `vendor_log`, as a vendor whose node did not check would send it.
fn share_sent_anyway(key: &SigningKey, vendor_log: &Value, customer: KeyId, rel: &str) -> Message {
    let me = KeyId::from_bytes(key.verifying_key().to_bytes());
    let entries = vendor_log.as_array().unwrap();
    let mine = entries.iter().filter(|m| m["from"] == me.to_hex().as_str()).max_by_key(|m| m["seq"].as_u64()).unwrap();
    let theirs = entries.iter().rev().find(|m| m["from"] == customer.to_hex().as_str()).unwrap();
    let header = Header {
        relationship: Some(RelationshipId::from_hex(rel).unwrap()),
        from: me,
        to: Some(customer),
        seq: mine["seq"].as_u64().unwrap() + 1,
        prev: Some(MessageId::from_hex(mine["id"].as_str().unwrap()).unwrap()),
        ack: Some(MessageId::from_hex(theirs["id"].as_str().unwrap()).unwrap()),
        created_at: now_ms(),
        expires_at: None,
        reply_to: None,
    };
    let data = b"{\"location\": \"52.37,4.89\"}";
    let body = Body::DataShare(DataShare {
        content: ShareContent::Data,
        purpose: Some(Purpose::new(PURPOSE).unwrap()),
        categories: vec![Category::new(CATEGORY).unwrap()],
        commitment: Digest32::commit(&[7; 32], data),
        media_type: "application/json".into(),
        size: data.len() as u64,
    });
    Message::seal(Payload { header, body }, key).unwrap()
}

/// Stops `vendor`, sends `customer` a message built from the vendor's log with the vendor's
/// key, and returns the problem code of the customer's signed answer; restarts the vendor.
fn sent_anyway(vendor: &mut Daemon, customer: &Daemon, rel: &str) -> String {
    let vendor_log = json(&vendor.dir, &["log", rel]);
    let key = key_of(vendor);
    let customer_key = KeyId::from_hex(&customer.key()).unwrap();
    let message = share_sent_anyway(&key, &vendor_log, customer_key, rel);
    vendor.stop();
    let answer = Wire::connect(customer, &key).send(message.bytes().to_vec());
    vendor.start();
    let code = verdict(&answer, customer_key).expect_err("the customer's node accepted it");
    let Body::ProblemReport(report) = Message::open(&answer).unwrap().body().clone() else { unreachable!() };
    assert_eq!(report.message, Some(message.id()), "the report names the message refused");
    code
}

#[test]
fn one_customer_and_three_vendors_walk_the_lifecycle_to_closure() {
    let root = tempfile::tempdir().unwrap();
    let mut customer = Daemon::init(root.path(), "customer");
    customer.start();
    let mut vendors: Vec<Daemon> = (1..=3).map(|i| Daemon::init(root.path(), &format!("vendor-{i}"))).collect();
    let customer_addr = customer.addr();
    for v in &mut vendors {
        v.start();
        json(&v.dir, &["connect", &customer_addr]);
    }
    wait_for("three vendors connected", || {
        (json(&customer.dir, &["peers"]).as_array().unwrap().len() == 3).then_some(())
    });

    // The intent goes out on gossip; each vendor hears it and answers with an offer to its
    // author: three relationships.
    let intent = json(&customer.dir, &["intent", "--title", "Rooftop solar", "--tag", "solar"]);
    let mut rels = Vec::new();
    for (i, v) in vendors.iter().enumerate() {
        let heard = wait_for("the intent", || {
            json(&v.dir, &["public"]).as_array().unwrap().iter().find(|m| m["id"] == intent["id"]).cloned()
        });
        let author = heard["from"].as_str().unwrap().to_owned();
        assert_eq!(author, customer.key());
        let title = format!("Solar lease from vendor {}", i + 1);
        let sent = json(&v.dir, &["offer", "--to", &author, "--title", &title, "--amount", &(2000 + i).to_string()]);
        rels.push(sent["relationship"].as_str().unwrap().to_owned());
    }
    for v in &vendors {
        wait_for("the offer's receipt", || (json(&v.dir, &["status"])["outbox"] == 0).then_some(()));
    }
    let c = &customer;
    let terms = format!(
        r#"{{"duration": 31536000, "renewal": "opt_in", "notice_period": 1,
        "price": {{"model": "per_usage", "amount": {{"currency": "EUR", "minor_units": 25}}, "metric": "kWh"}},
        "data": {{"purposes": ["{PURPOSE}"], "categories": ["{CATEGORY}"]}},
        "portability": {{"format": "application/json", "deadline": 2592000}},
        "deletion_deadline": 5184000, "exit_fee": {{"currency": "EUR", "minor_units": 0}}}}"#
    );
    let (start, end) = ((now_ms() - 3_600_000).to_string(), (now_ms() - 1).to_string());
    let mut grants = Vec::new();
    for (v, rel) in vendors.iter().zip(&rels) {
        let proposal = act(c, &["terms", "propose", "--rel", rel, "--role", "customer", "--terms", &terms]);
        act(v, &["terms", "accept", rel, &proposal]);
    }
    for rel in &rels {
        grants.push(act(c, &["consent", "grant", rel, "--purpose", PURPOSE, "--category", CATEGORY]));
    }
    let report = |rel: &str| -> Vec<String> {
        ["report", "usage", rel, "--metric", "kWh", "--unit", "kWh", "--start", &start, "--end", &end, "--value", "42"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    for (v, rel) in vendors.iter().zip(&rels) {
        let args = report(rel);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let usage = act(v, &args);
        act(c, &["countersign", rel, &usage]);
    }
    let insight = root.path().join("insight.json");
    std::fs::write(&insight, br#"{"saving": "12%"}"#).unwrap();
    let insight = insight.to_str().unwrap();
    let share = |rel: &str| {
        ["share", rel, "--file", insight, "--content", "insight", "--purpose", PURPOSE, "--category", CATEGORY]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<String>>()
    };
    let introduction =
        r#"{"party": {"name": "Battery recyclers"}, "offering": "Battery recycling", "commission": {"basis": "none"}}"#;
    for (v, rel) in vendors.iter().zip(&rels) {
        let args = share(rel);
        act(v, &args.iter().map(String::as_str).collect::<Vec<_>>());
        act(v, &["introduce", rel, "--body", introduction]);
    }
    for (rel, grant) in rels.iter().zip(&grants) {
        act(c, &["consent", "revoke", rel, grant]);
    }

    // After the revocation a share is refused at once: by the vendor's node...
    for (v, rel) in vendors.iter().zip(&rels) {
        let before = log_ids(v, rel);
        let args = share(rel);
        refused(v, &args.iter().map(String::as_str).collect::<Vec<_>>(), "consent-required");
        assert_eq!(log_ids(v, rel), before, "nothing stored");
    }
    // ...and by the customer's, when a vendor sends one anyway.
    let before = log_ids(c, &rels[2]);
    assert_eq!(sent_anyway(&mut vendors[2], c, &rels[2]), "consent-required");
    assert_eq!(log_ids(c, &rels[2]), before, "nothing stored");

    // Friendly separation, in each relationship.
    for (v, rel) in vendors.iter().zip(&rels) {
        let effective = now_ms() + 2_000;
        let notice = act(
            c,
            &[
                "separate",
                rel,
                "--body",
                &format!(
                    r#"{{"effective": {effective}, "disposition": [{{"category": "{CATEGORY}", "action": "delete"}}]}}"#
                ),
            ],
        );
        let body =
            format!(r#"{{"notice": "{notice}", "items": [{{"category": "{CATEGORY}", "outcome": "deleted"}}]}}"#);
        let statement = act(v, &["dispose", rel, "--body", &body]);
        act(c, &["close", rel, &statement]);
    }

    // Both sides of each relationship export it, the exports verify offline, and they hold
    // the same messages.
    for (i, (v, rel)) in vendors.iter().zip(&rels).enumerate() {
        let mut verified = Vec::new();
        for (side, node) in [("vendor", v), ("customer", c)] {
            let out = root.path().join(format!("{side}-{i}.json"));
            json(&node.dir, &["export", rel, "--out", out.to_str().unwrap()]);
            let report = rapport(&node.dir, &["--json", "verify", out.to_str().unwrap()]);
            assert!(report.status.success(), "{side} {i}: {}", String::from_utf8_lossy(&report.stderr));
            verified.push(serde_json::from_slice::<Value>(&report.stdout).unwrap());
        }
        assert_eq!(verified[0]["phase"], "closed");
        assert_eq!(verified[0]["ids"], verified[1]["ids"], "relationship {i}: both exports hold the same messages");
        // The offer, terms, acceptance, grant, report, countersignature, share, introduction,
        // revocation, notice, statement and closure: twelve, each with its receipt.
        assert_eq!(verified[0]["chained"], 12, "{}", verified[0]);
    }
    assert_eq!(
        json(&c.dir, &["relationships"]).as_array().unwrap().iter().filter(|r| r["phase"] == "closed").count(),
        3
    );

    // After closure, contact in the relationship is refused: by the vendor's node...
    let args = report(&rels[0]);
    refused(&vendors[0], &args.iter().map(String::as_str).collect::<Vec<_>>(), "closed");
    // ...and by the customer's.
    let before = log_ids(c, &rels[2]);
    assert_eq!(sent_anyway(&mut vendors[2], c, &rels[2]), "closed");
    assert_eq!(log_ids(c, &rels[2]), before, "nothing stored");

    for v in &mut vendors {
        v.stop();
    }
    customer.stop();
}
