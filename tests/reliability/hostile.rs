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
        assert_eq!(report.header().relationship, None, "a refusal at the payload checks has no rel (spec §5.15)");
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

/// `prev` followed by one more offer in its relationship, from the same key, with a
/// description of `pad` bytes: the next message of a stranger's chain.
fn follow_up(prev: &Message, key: &SigningKey, pad: usize) -> Message {
    let h = prev.header();
    let header = Header { seq: h.seq + 1, prev: Some(prev.id()), created_at: now_ms(), ..h.clone() };
    let Body::Offer(mut body) = prev.body().clone() else { panic!("an offer") };
    body.description = "x".repeat(pad);
    Message::seal(Payload { header, body: Body::Offer(body) }, key).unwrap()
}

/// Relationship `n` of a run tagged `tag`.
fn rel_of(tag: u8, n: u16) -> RelationshipId {
    let mut rel = [tag; 16];
    rel[14..].copy_from_slice(&n.to_be_bytes());
    RelationshipId::from_bytes(rel)
}

/// `key`'s offer to `daemon` opening relationship `n` of run `tag`.
fn opening(key: &SigningKey, daemon: rapport_protocol::KeyId, tag: u8, n: u16) -> Message {
    offer(key, daemon, rel_of(tag, n), now_ms())
}

/// The neighbour's offer `n`, which must be stored whatever the attackers do.
fn serve(neighbour: &mut Wire, honest: &SigningKey, n: u16) {
    let m = opening(honest, neighbour.daemon, 7, n);
    assert_eq!(neighbour.ask(m.bytes().to_vec()), Ok(m.id()), "the neighbour's offer {n} is stored");
}

fn key_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().to_bytes())
}

/// Counts the answers of a run: how many receipts, and each refusal's code.
fn tally(
    answers: &[Result<rapport_protocol::MessageId, String>],
) -> (usize, std::collections::BTreeMap<String, usize>) {
    let mut refused = std::collections::BTreeMap::new();
    for code in answers.iter().filter_map(|a| a.as_ref().err()) {
        *refused.entry(code.clone()).or_default() += 1;
    }
    (answers.iter().filter(|a| a.is_ok()).count(), refused)
}

fn metric(dir: &std::path::Path, runtime: &tokio::runtime::Runtime, line: &str) -> bool {
    let client = rapport_node::client::Client::for_data_dir(dir).unwrap();
    runtime.block_on(client.get_text("/metrics")).unwrap().lines().any(|l| l == line)
}

/// Issue #22, point 3: strangers cannot fill the disk. A key opens relationships as fast as it
/// can, a peer relays openings signed by fresh keys, a stranger floods one relationship and
/// another fills one with large messages; each is refused at its quota with a signed problem
/// report (`quota-exceeded`, `rate-limited`), a neighbour is served throughout, and a key the
/// owner blocks is refused (`blocked`) before anything is stored, across a restart.
#[test]
fn a_stranger_cannot_fill_the_disk_and_a_blocked_key_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let mut customer = Daemon::init(root.path(), "customer");
    // Defaults but for the byte quota, lowered so that a few 4 KB offers reach it within the
    // rate of 10 a minute.
    customer.configure("max_unanswered_bytes = 24576");
    customer.start();
    let attacker = SigningKey::from_bytes(&[66; 32]);
    let honest = SigningKey::from_bytes(&[7; 32]);
    let mut wire = Wire::connect(&customer, &attacker);
    let mut neighbour = Wire::connect(&customer, &honest);
    let daemon = wire.daemon;
    let mut rows: Vec<(String, String)> = Vec::new();

    // 1. One key opens 100 relationships: 16 await her answer, the rest are refused.
    let answers: Vec<_> = (0..100).map(|n| wire.ask(opening(&attacker, daemon, 1, n).bytes().to_vec())).collect();
    let (stored, refused) = tally(&answers);
    assert_eq!(stored, 16, "{refused:?}");
    assert_eq!(refused.get("quota-exceeded"), Some(&84), "{refused:?}");
    assert!(answers[..16].iter().all(Result::is_ok), "the first 16 are the ones stored");
    // The log says what happened, without letting a flood of refusals flood it.
    let log = std::fs::read_to_string(customer.dir.join("daemon.log")).unwrap();
    let refusals = log.lines().filter(|l| l.contains(" refused") && l.contains("code=quota-exceeded")).count();
    assert!((1..=20).contains(&refusals), "{refusals} refusal lines for 84 refusals in a second");
    assert!(
        log.lines().any(|l| l.contains(" received") && l.contains(&key_hex(&attacker))),
        "each stored message has a line"
    );
    // A refusal after the payload checks names the message's relationship, held or not (§5.15).
    let refused = opening(&attacker, daemon, 1, 150);
    let answer = Message::open(&wire.send(refused.bytes().to_vec())).unwrap();
    assert_eq!(answer.header().relationship, refused.header().relationship);
    serve(&mut neighbour, &honest, 0);
    rows.push(("one key opens 100 relationships".into(), "16 stored, 84 quota-exceeded".into()));

    // 2. The same peer relays openings signed by 64 fresh keys: 64 unanswered per peer.
    let fresh: Vec<SigningKey> = (0..64u8).map(|i| SigningKey::from_bytes(&[i.wrapping_add(100); 32])).collect();
    let answers: Vec<_> =
        fresh.iter().enumerate().map(|(i, k)| wire.ask(opening(k, daemon, 2, i as u16).bytes().to_vec())).collect();
    let (stored, refused) = tally(&answers);
    assert_eq!((stored, refused.get("quota-exceeded")), (48, Some(&16)), "{refused:?}");
    serve(&mut neighbour, &honest, 1);
    rows.push((
        "the same peer relays openings by 64 fresh keys".into(),
        "48 stored (64 per peer), 16 quota-exceeded".into(),
    ));

    // 3. A stranger floods one relationship: 10 messages a minute while it awaits an answer.
    let eager = SigningKey::from_bytes(&[31; 32]);
    let mut eager_wire = Wire::connect(&customer, &eager);
    let started = std::time::Instant::now();
    let mut last = opening(&eager, daemon, 3, 0);
    assert_eq!(eager_wire.ask(last.bytes().to_vec()), Ok(last.id()));
    let mut next = follow_up(&last, &eager, 10);
    let mut answers = Vec::new();
    for _ in 0..60 {
        let answer = eager_wire.ask(next.bytes().to_vec());
        if answer.is_ok() {
            last = next;
            next = follow_up(&last, &eager, 10);
        }
        answers.push(answer);
    }
    let (stored, refused) = tally(&answers);
    let rate_stored = stored;
    // A message is earned back every 6 s; the run takes far less, but a slow machine may earn one.
    let earned = (started.elapsed().as_secs() / 6) as usize;
    assert!((9..=9 + earned).contains(&stored), "{stored} stored, {refused:?}");
    assert_eq!(refused.get("rate-limited"), Some(&(60 - stored)), "{refused:?}");
    serve(&mut neighbour, &honest, 2);
    rows.push((
        "60 messages at once into one unanswered relationship".into(),
        format!("{} stored (10 a minute), {} rate-limited", stored + 1, 60 - stored),
    ));

    // 4. Another fills one with 4 KB offers, up to the byte quota (24 KiB here).
    let bulky = SigningKey::from_bytes(&[32; 32]);
    let mut bulky_wire = Wire::connect(&customer, &bulky);
    let first = opening(&bulky, daemon, 4, 0);
    let rel = first.header().relationship.unwrap().to_hex();
    assert_eq!(bulky_wire.ask(first.bytes().to_vec()), Ok(first.id()));
    let mut last = first;
    let mut answers = Vec::new();
    for _ in 0..8 {
        let next = follow_up(&last, &bulky, 4096);
        let answer = bulky_wire.ask(next.bytes().to_vec());
        if answer.is_ok() {
            last = next;
        }
        answers.push(answer);
    }
    let (stored, refused) = tally(&answers);
    let bulky_stored = stored;
    let bytes: usize = json(&customer.dir, &["log", &rel])
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["from"] == key_hex(&bulky))
        .map(|m| m["envelope"].as_str().unwrap().len() / 2)
        .sum();
    assert!(bytes <= 24576, "{bytes} bytes stored");
    assert!(stored >= 2 && refused.get("quota-exceeded") == Some(&(8 - stored)), "{stored} {refused:?}");
    rows.push((
        "4 KB offers into one unanswered relationship".into(),
        format!("{bytes} bytes stored of 24,576, then quota-exceeded ×{}", 8 - stored),
    ));

    // 5. She answers one of the attacker's relationships: it is hers now, and the key may open
    // one more.
    let answered = rel_of(1, 0).to_hex();
    let terms = r#"{"duration": 31536000, "renewal": "opt_in", "notice_period": 1,
        "price": {"model": "upfront", "amount": {"currency": "EUR", "minor_units": 100}},
        "data": {"purposes": ["dpv:ServiceProvision"], "categories": ["pd:Location"]},
        "portability": {"format": "application/json", "deadline": 2592000},
        "deletion_deadline": 5184000, "exit_fee": {"currency": "EUR", "minor_units": 0}}"#;
    json(&customer.dir, &["terms", "propose", "--rel", &answered, "--role", "customer", "--terms", terms]);
    let m = opening(&attacker, daemon, 1, 100);
    assert_eq!(wire.ask(m.bytes().to_vec()), Ok(m.id()), "an answer frees a place");
    let m = opening(&attacker, daemon, 1, 101);
    assert_eq!(wire.ask(m.bytes().to_vec()), Err("quota-exceeded".into()));

    // 6. She blocks the attacker: refused before anything is stored, in a relationship it
    // opened as much as in a new one, and still after a restart.
    let attacker_key = key_hex(&attacker);
    let held = rel_of(1, 1).to_hex();
    let before = json(&customer.dir, &["log", &held]);
    let out = rapport(&customer.dir, &["block", &attacker_key]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let in_held = {
        let log = before.as_array().unwrap();
        let first = Message::open(&hex::decode(log[0]["envelope"].as_str().unwrap()).unwrap()).unwrap();
        follow_up(&first, &attacker, 10)
    };
    assert_eq!(wire.ask(in_held.bytes().to_vec()), Err("blocked".into()));
    assert_eq!(wire.ask(opening(&attacker, daemon, 1, 200).bytes().to_vec()), Err("blocked".into()));
    assert_eq!(json(&customer.dir, &["log", &held]), before, "nothing stored");
    let bad = rapport(&customer.dir, &["block", "not-a-key"]);
    assert!(!bad.status.success());
    assert_eq!(String::from_utf8_lossy(&bad.stderr).trim().lines().count(), 1);
    let rt = &wire.runtime;
    // Run 1, its probe for `rel`, runs 2 and 4, and the opening after her answer.
    let quota_refusals = 84 + 1 + 16 + (8 - bulky_stored) + 1;
    for line in [
        "rapport_messages_rejected_total{code=\"blocked\"} 2".to_owned(),
        format!("rapport_messages_rejected_total{{code=\"quota-exceeded\"}} {quota_refusals}"),
        format!("rapport_messages_rejected_total{{code=\"rate-limited\"}} {}", 60 - rate_stored),
        "rapport_blocked_keys 1".to_owned(),
        // 16 + 48 + 1 + 1 strangers', less the one she answered, plus the one it let in; and the
        // neighbour's three.
        format!("rapport_unanswered_relationships {}", 16 + 48 + 1 + 1 + 3),
    ] {
        assert!(metric(&customer.dir, rt, &line), "no metric line {line}");
    }
    let attacked_rss = customer.peak_rss_kib();
    assert!(attacked_rss < 512 * 1024, "peak RSS {attacked_rss} KiB");
    customer.stop();
    customer.start();
    assert_eq!(json(&customer.dir, &["blocked"])["blocked"], serde_json::json!([attacker_key]));
    let mut wire = Wire::connect(&customer, &attacker);
    assert_eq!(wire.ask(in_held.bytes().to_vec()), Err("blocked".into()), "blocked across a restart");
    let mut neighbour = Wire::connect(&customer, &honest);
    serve(&mut neighbour, &honest, 3);
    // The quotas were counted again from the store: the attacker's 16 unanswered remain.
    let out = rapport(&customer.dir, &["unblock", &attacker_key]);
    assert!(out.status.success());
    assert_eq!(wire.ask(in_held.bytes().to_vec()), Ok(in_held.id()), "unblocked, it is heard again");
    assert_eq!(wire.ask(opening(&attacker, daemon, 1, 201).bytes().to_vec()), Err("quota-exceeded".into()));
    rows.push((
        "a blocked key, in its own relationship and a new one, before and after a restart".into(),
        "blocked; nothing stored; heard again once unblocked".into(),
    ));

    // Counted again since the restart, and the daemon stayed small.
    let rt = &wire.runtime;
    assert!(metric(&customer.dir, rt, "rapport_blocked_keys 0"));
    assert!(metric(&customer.dir, rt, "rapport_messages_rejected_total{code=\"blocked\"} 1"), "after the restart, one");
    assert!(metric(&customer.dir, rt, "rapport_messages_rejected_total{code=\"quota-exceeded\"} 1"));
    let rss = customer.peak_rss_kib();
    assert!(rss < 512 * 1024, "peak RSS {rss} KiB");
    println!(
        "\npeak RSS of the victim: {} MiB under attack, {} MiB after its restart",
        attacked_rss / 1024,
        rss / 1024
    );
    println!("\n| attack | answer |\n|---|---|");
    for (attack, answer) in &rows {
        println!("| {attack} | {answer} |");
    }
    customer.stop();
}

/// Bytes of the frames in the log store under `dir`: the file keeps zeros written ahead of
/// its last frame (spec/node.md §4), so its length says little. Header: 16 bytes; each frame:
/// length u32 (LE), crc32, body; the zeros begin where a length would be 0.
fn log_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let mut at = 16;
        while at + 8 <= data.len() {
            let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            if len == 0 {
                break;
            }
            at += 8 + len;
        }
        total += at.min(data.len()) as u64;
    }
    total
}

/// A full node's swarm (the daemon's own behaviours and transports) that joins `victim`'s
/// offers topic and publishes `n` distinct signed public offers as fast as gossipsub takes
/// them; returns how many it published. Bounded: it gives up 90 s after it starts.
async fn gossip_flood(victim: &str, n: usize) -> usize {
    use futures::StreamExt as _;
    use libp2p::gossipsub::{self, IdentTopic};
    use libp2p::swarm::SwarmEvent;
    use rapport_node::network::BehaviourEvent;
    use rapport_protocol::{Money, Offer, Price, PriceModel};

    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(90);
    let dir = tempfile::tempdir().unwrap();
    let layer = rapport_node::config::Layer { mdns: Some(false), listen: Some(Vec::new()), ..Default::default() };
    let config = rapport_node::config::Config::resolve(dir.path(), layer, None).unwrap();
    let keypair = libp2p::identity::Keypair::generate_ed25519();
    let mut registry = prometheus_client::registry::Registry::default();
    let mut swarm = rapport_node::network::swarm(keypair, &config, &mut registry).unwrap();
    let topic = IdentTopic::new(config.network.offers_topic());
    swarm.behaviour_mut().gossipsub.subscribe(&topic).unwrap();
    let addr: libp2p::Multiaddr = victim.parse().unwrap();
    let Some(libp2p::multiaddr::Protocol::P2p(victim_id)) = addr.iter().last() else { panic!("{victim}") };
    swarm.dial(addr).unwrap();
    // Publishing needs the victim's subscription first.
    loop {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some()).await.expect("the victim subscribes");
        if let SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, .. })) = event {
            if peer_id == victim_id {
                break;
            }
        }
    }
    // Signed beforehand, so that the flood goes as fast as gossipsub can carry it.
    let author = SigningKey::from_bytes(&[99; 32]);
    let from = rapport_protocol::KeyId::from_bytes(author.verifying_key().to_bytes());
    let at = now_ms();
    let offers: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let price =
                Price { model: PriceModel::Upfront, amount: Money::new("EUR", 100), metric: None, threshold: None };
            let body =
                Body::Offer(Offer { title: format!("Flood {i}"), description: "x".repeat(200), price, terms: None });
            Message::seal(Payload { header: Header::public(from, at), body }, &author).unwrap().bytes().to_vec()
        })
        .collect();
    let mut published = 0;
    'offers: for bytes in offers {
        while swarm.behaviour_mut().gossipsub.publish(topic.clone(), bytes.clone()).is_err() {
            // The connection's queue is full: let it drain.
            if tokio::time::Instant::now() > deadline {
                break 'offers;
            }
            let _ = tokio::time::timeout(std::time::Duration::from_millis(5), swarm.select_next_some()).await;
        }
        published += 1;
        // Let the swarm move after every few publications.
        if published % 32 == 0 {
            while tokio::time::timeout(std::time::Duration::ZERO, swarm.select_next_some()).await.is_ok() {}
        }
    }
    // Drain what is queued.
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    while tokio::time::timeout_at(until, swarm.select_next_some()).await.is_ok() {}
    published
}

/// Issue #22, point 2, on the wire: a peer floods the victim's offers topic with distinct,
/// validly signed public offers. The victim's memory stays bounded (its verification
/// backlog is capped and what does not fit is dropped), it stores none of them (others'
/// public messages are kept in memory only, the latest 1,000), and a neighbour's messages get
/// receipts throughout.
#[test]
fn a_gossip_flood_costs_bounded_memory_and_no_disk() {
    let root = tempfile::tempdir().unwrap();
    let mut customer = Daemon::init(root.path(), "customer");
    // The neighbour opens a relationship every 50 ms, which the quotas (tested above) would
    // refuse after 16.
    customer.configure("max_unanswered_per_key = 100000\nmax_unanswered_per_peer = 100000");
    customer.start();
    let honest = SigningKey::from_bytes(&[7; 32]);
    let mut neighbour = Wire::connect(&customer, &honest);
    let store_before = log_bytes(&customer.dir.join("log"));
    let victim = customer.addr();
    let n: usize = std::env::var("RAPPORT_GOSSIP_FLOOD").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let flood = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(gossip_flood(&victim, n))
    });
    let mut asked = 0u16;
    while !flood.is_finished() {
        serve(&mut neighbour, &honest, asked);
        asked += 1;
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let published = flood.join().unwrap();
    serve(&mut neighbour, &honest, asked);
    assert!(published >= n / 2, "the attacker published {published} of {n}");

    let public = json(&customer.dir, &["public"]);
    let heard = public.as_array().unwrap().len();
    assert!((1..=1000).contains(&heard), "{heard} public messages kept");
    // The neighbour's offers and their receipts, about 700 bytes each: tens of kilobytes, not
    // the flood's megabytes (20,000 offers of about 500 bytes).
    let grown = log_bytes(&customer.dir.join("log")) - store_before;
    let neighbours = u64::from(asked + 1) * 2048;
    assert!(grown > 0 && grown < neighbours, "the store grew by {grown} bytes");
    let rss = customer.peak_rss_kib();
    assert!(rss < 512 * 1024, "peak RSS {rss} KiB");
    let metrics = neighbour
        .runtime
        .block_on(rapport_node::client::Client::for_data_dir(&customer.dir).unwrap().get_text("/metrics"))
        .unwrap();
    let dropped = metrics.lines().find(|l| l.starts_with("rapport_gossip_dropped_total")).unwrap_or("").to_owned();
    println!(
        "\ngossip flood: {published} offers published; {heard} kept for /v1/public; store grew {grown} bytes; \
         {dropped}; peak RSS {} MiB; the neighbour's {} offers all got receipts",
        rss / 1024,
        asked + 1
    );
    customer.stop();
}
