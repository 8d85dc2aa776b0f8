//! Reliability suite, crash durability (issue #6, scope 1), with real daemons: a vendor's node
//! sends a customer's node a load of signed messages while the customer's node is killed with
//! SIGKILL at random points, and restarted, over and over. The vendor's node keeps retrying from
//! its outbox. After every restart, every message the vendor holds a receipt for must be stored
//! by the customer, once, in a log that verifies; at the end, every message is.
//!
//! The quick version (1,000 messages, 20 kills) runs in CI. The long one:
//!
//! ```text
//! RAPPORT_CRASH_MESSAGES=10000 RAPPORT_CRASH_KILLS=200 \
//!     cargo test --release -p rapport-node --test reliability-crash -- --nocapture
//! ```
//!
//! `RAPPORT_CRASH_SEED` fixes the kill points (the seed is printed). Timing still varies from
//! run to run, so a seed reproduces where the kills fall in the load, not the exact interleaving.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../../node/tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{now_ms, wait_for, Daemon};
use rand::{Rng as _, SeedableRng as _};
use rapport_node::bundle::Bundle;
use rapport_node::client::Client;
use rapport_protocol::{Body, KeyId, Message, MessageId};
use serde_json::{json, Value};

/// Messages from the vendor in each relationship: its offer, its acceptance of the customer's
/// terms, and usage reports.
const PER_RELATIONSHIP: usize = 100;
/// Relationships whose receipts and logs are compared after each restart; all of them at the end.
const SAMPLED: usize = 10;
/// Time between two messages of the load.
const GAP: Duration = Duration::from_millis(4);
/// Polls of the vendor's outbox, 50 ms apart, once the customer's node stays up: a bound on
/// waiting (two minutes). The vendor's node retries with backoff capped at five minutes, but
/// redelivers at once when a connection opens.
const DRAIN_POLLS: usize = 2_400;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
        .unwrap_or(default)
}

/// Blocking calls to the nodes' APIs. Each call reads the node's `api` file afresh: a restarted
/// node listens on a new API port.
struct Api {
    runtime: tokio::runtime::Runtime,
}

impl Api {
    fn client(node: &Daemon) -> Client {
        Client::for_data_dir(&node.dir).unwrap()
    }

    fn get(&self, node: &Daemon, path: &str) -> Value {
        let client = Api::client(node);
        self.runtime.block_on(client.get(path)).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Sends a message of `kind`; returns its id and its relationship's.
    fn send(&self, client: &Client, kind: &str, request: Value) -> (String, String) {
        let v: Value = self
            .runtime
            .block_on(client.post(&format!("/v1/send/{kind}"), &request))
            .unwrap_or_else(|e| panic!("send {kind}: {e}"));
        (v["id"].as_str().unwrap().to_owned(), v["relationship"].as_str().unwrap().to_owned())
    }

    fn outbox(&self, node: &Daemon) -> u64 {
        self.get(node, "/v1/status")["outbox"].as_u64().unwrap()
    }

    /// The envelopes `node` holds for `rel`, in the order it stored them.
    fn log(&self, node: &Daemon, rel: &str) -> Vec<Message> {
        let entries = self.get(node, &format!("/v1/relationships/{rel}/log"));
        entries
            .as_array()
            .unwrap()
            .iter()
            .map(|e| Message::open(&hex::decode(e["envelope"].as_str().unwrap()).unwrap()).unwrap())
            .collect()
    }

    /// Exports `rel` from `node` and verifies the bundle offline, as `rapport verify` does.
    fn verified(&self, node: &Daemon, rel: &str) -> Vec<String> {
        let bundle: Bundle =
            serde_json::from_value(self.get(node, &format!("/v1/relationships/{rel}/export"))).unwrap();
        bundle.verify().unwrap_or_else(|e| panic!("{rel} from {} does not verify: {e}", node.dir.display()));
        bundle.manifest.ids
    }
}

/// The messages of `rel` the vendor holds a receipt for, signed by the customer.
fn acknowledged(log: &[Message], customer: KeyId) -> BTreeSet<MessageId> {
    log.iter()
        .filter(|m| m.header().from == customer)
        .filter_map(|m| match m.body() {
            Body::Receipt(r) => Some(r.message),
            _ => None,
        })
        .collect()
}

/// Checks `rel` after a restart: the customer stores each message the vendor holds a receipt
/// for (`receipted`, read while the customer was down), stores nothing twice, and its log
/// verifies. Returns how many receipted messages were checked.
fn check(api: &Api, customer: &Daemon, rel: &str, receipted: &BTreeSet<MessageId>) -> usize {
    let stored: Vec<MessageId> = api.log(customer, rel).iter().map(Message::id).collect();
    let unique: BTreeSet<MessageId> = stored.iter().copied().collect();
    assert_eq!(unique.len(), stored.len(), "{rel}: the customer stores a message twice");
    for id in receipted {
        assert!(unique.contains(id), "{rel}: the vendor holds a receipt for {id}, but the customer lost it");
    }
    api.verified(customer, rel);
    receipted.len()
}

#[test]
fn no_receipted_message_is_lost_when_the_receiver_is_killed_under_load() {
    let messages = setting("RAPPORT_CRASH_MESSAGES", 1_000) as usize;
    let kills = setting("RAPPORT_CRASH_KILLS", 20) as usize;
    let seed = setting("RAPPORT_CRASH_SEED", now_ms());
    assert!(messages >= PER_RELATIONSHIP && kills > 0);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let started = Instant::now();

    let root = tempfile::tempdir().unwrap();
    let (mut vendor, mut customer) = common::pair(root.path());
    let api = Api { runtime: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap() };
    let customer_key = KeyId::from_hex(&customer.key()).unwrap();

    // Set-up, before any kill: per relationship an offer, the customer's terms, the vendor's
    // acceptance. Then usage reports are allowed in every relationship.
    let relationships = messages / PER_RELATIONSHIP;
    let terms = json!({
        "duration": 31_536_000, "renewal": "opt_in", "notice_period": 1,
        "price": { "model": "per_usage", "amount": { "currency": "EUR", "minor_units": 25 }, "metric": "kWh" },
        "data": { "purposes": ["dpv:ServiceProvision"], "categories": ["pd:Location"] },
        "portability": { "format": "application/json", "deadline": 2_592_000 },
        "deletion_deadline": 5_184_000, "exit_fee": { "currency": "EUR", "minor_units": 0 }
    });
    let offer = json!({ "title": "Charging", "description": "",
        "price": { "model": "per_usage", "amount": { "currency": "EUR", "minor_units": 25 }, "metric": "kWh" } });
    let v = Api::client(&vendor);
    let c = Api::client(&customer);
    let to = customer.key();
    let rels: Vec<String> =
        (0..relationships).map(|_| api.send(&v, "offer", json!({ "to": to, "body": offer })).1).collect();
    // Messages the vendor sent in each relationship.
    let mut expected: BTreeMap<&String, usize> = rels.iter().map(|rel| (rel, 2)).collect();
    wait_for("the offers to arrive", || (api.outbox(&vendor) == 0).then_some(()));
    let mut proposals = Vec::new();
    for rel in &rels {
        let request = json!({ "relationship": rel, "body": { "role": "customer", "terms": terms } });
        proposals.push(api.send(&c, "terms_proposal", request).0);
    }
    wait_for("the proposals to arrive", || (api.outbox(&customer) == 0).then_some(()));
    for (rel, proposal) in rels.iter().zip(&proposals) {
        api.send(&v, "terms_acceptance", json!({ "relationship": rel, "body": { "proposal": proposal } }));
    }
    wait_for("the acceptances to arrive", || (api.outbox(&vendor) == 0).then_some(()));

    // The load: usage reports, round-robin over the relationships, sent to the vendor's node by
    // a thread of their own in one batch per kill, a few milliseconds apart. The customer's
    // node is killed at a random point of each batch, and one kill in eight falls while the
    // restarted node is still opening its store.
    let reports = messages - 2 * relationships;
    let cycle = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (cycle, rels, vendor_dir) = (Arc::clone(&cycle), rels.clone(), vendor.dir.clone());
        std::thread::spawn(move || -> BTreeMap<String, usize> {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let v = Client::for_data_dir(&vendor_dir).unwrap();
            let (start, end) = (now_ms() - 3_600_000, now_ms() - 1);
            let mut sent: BTreeMap<String, usize> = BTreeMap::new();
            let mut n = 0;
            for batch in 0..kills {
                while cycle.load(Ordering::SeqCst) < batch {
                    std::thread::sleep(Duration::from_millis(1));
                }
                while n < reports * (batch + 1) / kills {
                    let rel = &rels[n % rels.len()];
                    let body = json!({ "metric": "kWh", "unit": "kWh", "start": start, "end": end, "value": n });
                    let request = json!({ "relationship": rel, "body": body });
                    let sent_one: Result<Value, _> = runtime.block_on(v.post("/v1/send/usage_report", &request));
                    sent_one.unwrap_or_else(|e| panic!("usage report {n}: {e}"));
                    *sent.entry(rel.clone()).or_default() += 1;
                    n += 1;
                    std::thread::sleep(GAP);
                }
            }
            sent
        })
    };
    let batch_time = GAP.as_millis() as u64 * (reports / kills) as u64;
    let (mut checked, mut during_start, mut in_flight) = (0usize, 0usize, 0usize);
    for batch in 0..kills {
        cycle.store(batch, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..=batch_time + 20)));
        if api.outbox(&vendor) > 0 {
            in_flight += 1;
        }
        customer.kill();

        if rng.gen_ratio(1, 8) {
            customer.spawn_with(&[]);
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..60)));
            customer.kill();
            during_start += 1;
        }

        // What the vendor holds receipts for, read while the customer is down: all of it came
        // from the processes just killed.
        let sample: Vec<&String> =
            (0..SAMPLED.min(relationships)).map(|_| &rels[rng.gen_range(0..relationships)]).collect();
        let receipted: BTreeMap<&String, BTreeSet<MessageId>> =
            sample.iter().map(|rel| (*rel, acknowledged(&api.log(&vendor, rel), customer_key))).collect();

        customer.start();
        for (rel, ids) in &receipted {
            checked += check(&api, &customer, rel, ids);
        }
    }
    cycle.store(kills, Ordering::SeqCst);
    for (rel, n) in sender.join().unwrap() {
        *expected.get_mut(&rel).unwrap() += n;
    }

    // The customer's node stays up: every message arrives, once.
    let drain = Instant::now();
    for _ in 0..DRAIN_POLLS {
        if api.outbox(&vendor) == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(api.outbox(&vendor), 0, "the vendor's outbox never drained");
    let drained_in = drain.elapsed();
    let mut total = 0;
    for rel in &rels {
        let vendor_ids = api.verified(&vendor, rel);
        let customer_ids = api.verified(&customer, rel);
        let receipted = acknowledged(&api.log(&vendor, rel), customer_key);
        assert_eq!(receipted.len(), expected[rel], "{rel}: the vendor holds a receipt for each of its messages");
        total += check(&api, &customer, rel, &receipted);
        let chained = |log: Vec<Message>| -> BTreeSet<MessageId> {
            log.iter().filter(|m| m.header().seq > 0).map(Message::id).collect()
        };
        assert_eq!(
            chained(api.log(&vendor, rel)),
            chained(api.log(&customer, rel)),
            "{rel}: both sides hold the same chained messages"
        );
        assert!(!vendor_ids.is_empty() && !customer_ids.is_empty());
    }
    assert_eq!(total, messages, "every message the vendor sent is receipted and stored");
    vendor.stop();
    customer.stop();

    println!("crash durability, seed {seed}:");
    println!("| figure | value |");
    println!("|---|---:|");
    println!("| messages sent by the vendor | {messages} |");
    println!("| relationships | {relationships} |");
    println!("| SIGKILLs of the receiver | {} |", kills + during_start);
    println!("| … of which while it was opening its store | {during_start} |");
    println!("| kills with messages waiting for a receipt | {in_flight} of {kills} |");
    println!("| receipted messages checked after restarts | {checked} |");
    println!("| receipted messages lost | 0 |");
    println!("| messages stored twice | 0 |");
    println!("| outbox drained after the last restart in | {} ms |", drained_in.as_millis());
    println!("| wall time | {:.1} s |", started.elapsed().as_secs_f64());
}
