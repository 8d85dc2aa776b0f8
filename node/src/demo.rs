//! `rapport demo`: a customer node and a vendor node, in temporary data directories on
//! 127.0.0.1, walk one relationship from the customer's intent to the closure receipt of a
//! friendly separation. Each step goes through the nodes' control APIs, as the CLI's commands
//! do, and waits for the recipient's signed receipt. At the end both sides export the
//! relationship and the bundles are verified offline. Any step that does not hold stops the
//! demo with an error, so the exit status says whether everything worked.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::{ConnectRequest, SendRequest};
use crate::bundle::Bundle;
use crate::client::Client;
use crate::config::{Config, Layer};

/// How long one step may take before the demo gives up.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// One running node of the demo.
struct Node {
    name: &'static str,
    client: Client,
    key: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Node {
    async fn start(name: &'static str, dir: PathBuf) -> anyhow::Result<Node> {
        crate::identity::init(&dir, "local", false)?;
        let layer = Layer {
            listen: Some(vec!["/ip4/127.0.0.1/tcp/0".into()]),
            api: Some(([127, 0, 0, 1], 0).into()),
            mdns: Some(false),
            ..Layer::default()
        };
        let config = Config::load(&dir, layer)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(crate::daemon::run(config, async {
            let _ = stopped.await;
        }));
        let client = until(&format!("the {name} node's API"), || {
            let dir = dir.clone();
            async move { Client::for_data_dir(&dir).ok() }
        })
        .await?;
        let id: Value = until(&format!("the {name} node's identity"), || {
            let client = client.clone();
            async move { client.get("/v1/id").await.ok() }
        })
        .await?;
        let key = id["key_id"].as_str().unwrap_or_default().to_owned();
        Ok(Node { name, client, key, stop: Some(stop), task })
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await?
    }

    /// Sends a message through the API and waits until the other side's receipt is back
    /// (the outbox is empty again). Returns the new message's id and relationship.
    async fn send(
        &self,
        kind: &str,
        relationship: Option<&str>,
        to: Option<&str>,
        body: Value,
    ) -> anyhow::Result<Sent> {
        let request = SendRequest { relationship: relationship.map(str::to_owned), to: to.map(str::to_owned), body };
        let v: Value = self.client.post(&format!("/v1/send/{kind}"), &request).await?;
        let sent = Sent { id: text(&v, "id"), relationship: text(&v, "relationship") };
        until(&format!("the receipt for the {}'s {kind}", self.name), || async {
            let status: Value = self.client.get("/v1/status").await.ok()?;
            (status["outbox"] == 0).then_some(())
        })
        .await?;
        Ok(sent)
    }

    async fn relationship(&self, rel: &str) -> anyhow::Result<Value> {
        let all: Value = self.client.get("/v1/relationships").await?;
        all.as_array()
            .and_then(|a| a.iter().find(|r| r["id"] == rel).cloned())
            .ok_or_else(|| anyhow::anyhow!("the {} node does not know relationship {rel}", self.name))
    }
}

/// A message accepted by a node.
struct Sent {
    id: String,
    relationship: String,
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

/// Polls `check` until it gives a value, at most [`STEP_TIMEOUT`].
async fn until<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if start.elapsed() > STEP_TIMEOUT {
            anyhow::bail!("gave up waiting for {what} after {} s", STEP_TIMEOUT.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn now_ms() -> u64 {
    crate::engine::now()
}

/// Prints the demo's steps as they happen.
struct Narrator {
    step: usize,
}

impl Narrator {
    fn say(&mut self, from: &str, to: &str, kind: &str, id: &str, what: &str) {
        self.step += 1;
        println!("{:>3}. {from:<8} → {to:<8} {kind:<22} {:.12}…  {what}", self.step, id);
    }
}

/// Runs the demo in a temporary directory; `Ok` only if every step held.
pub async fn run() -> anyhow::Result<()> {
    let root = tempfile::Builder::new().prefix("rapport-demo-").tempdir()?;
    println!("Rapport demo: a customer and a vendor node on 127.0.0.1, data in {}\n", root.path().display());
    let customer = Node::start("customer", root.path().join("customer")).await?;
    let vendor = Node::start("vendor", root.path().join("vendor")).await?;
    let result = walk(&customer, &vendor, root.path()).await;
    let stopped = (customer.stop().await, vendor.stop().await);
    result?;
    stopped.0?;
    stopped.1?;
    println!("\nEverything held: both nodes stopped cleanly; the demo's data directories are removed.");
    Ok(())
}

async fn walk(c: &Node, v: &Node, root: &Path) -> anyhow::Result<()> {
    println!("customer key {}\nvendor   key {}\n", c.key, v.key);
    let status: Value = v.client.get("/v1/status").await?;
    let listen = status["listen"].as_array().and_then(|a| a.first()).and_then(Value::as_str).unwrap_or_default();
    let vendor_peer = text(&status, "peer_id");
    let address = format!("{listen}/p2p/{vendor_peer}");
    c.client.post::<_, Value>("/v1/connect", &ConnectRequest { address: address.clone() }).await?;
    until("the two nodes to connect", || async {
        let peers: Value = c.client.get("/v1/peers").await.ok()?;
        peers.as_array()?.iter().any(|p| p["peer_id"] == vendor_peer.as_str()).then_some(())
    })
    .await?;
    println!("customer dialled the vendor at {address}\n");
    let mut say = Narrator { step: 0 };

    // 1. The intent is public: gossiped to every node of the network.
    let intent = json!({"title": "Rooftop solar for a family home", "description": "About 6 kWp; pay by use", "tags": ["solar", "energy"]});
    let heard = publish_intent(c, v, intent).await?;
    say.say("customer", "network", "intent", &heard, "published on gossip; the vendor heard it");

    // 2. The vendor answers it with an offer addressed to her: a new relationship.
    let price = json!({"model": "per_usage", "amount": {"currency": "EUR", "minor_units": 25}, "metric": "kWh"});
    let offer = json!({"title": "Solar panel lease", "description": "Panels, inverter and upkeep; you pay per kWh", "price": price});
    let sent = v.send("offer", None, Some(&c.key), offer).await?;
    let rel = sent.relationship.clone();
    say.say("vendor", "customer", "offer", &sent.id, &format!("opens relationship {rel:.12}…"));

    // 3–4. Her terms, his acceptance.
    let terms = json!({
        "duration": 365 * 86_400, "renewal": "opt_in", "notice_period": 1,
        "price": {"model": "per_usage", "amount": {"currency": "EUR", "minor_units": 25}, "metric": "kWh", "threshold": 100},
        "data": {"purposes": ["dpv:ServiceProvision"], "categories": ["pd:Location", "urn:rapport:demo:energy-consumption"]},
        "portability": {"format": "application/json", "deadline": 30 * 86_400},
        "deletion_deadline": 60 * 86_400, "exit_fee": {"currency": "EUR", "minor_units": 0}
    });
    let proposal = c.send("terms_proposal", Some(&rel), None, json!({"role": "customer", "terms": terms})).await?;
    say.say("customer", "vendor", "terms_proposal", &proposal.id, "her terms: one year, opt-in renewal, EUR 0.25/kWh");
    let accepted = v.send("terms_acceptance", Some(&rel), None, json!({"proposal": proposal.id})).await?;
    say.say("vendor", "customer", "terms_acceptance", &accepted.id, "agreed: the relationship is active");

    // 5. Consent, scoped by purpose and category.
    let grant = json!({
        "purposes": ["dpv:ServiceProvision"], "categories": ["pd:Location", "urn:rapport:demo:energy-consumption"],
        "third_party_sharing": false, "retention": 90 * 86_400
    });
    let grant = c.send("consent_grant", Some(&rel), None, grant).await?;
    say.say("customer", "vendor", "consent_grant", &grant.id, "location and consumption, for the service only");

    // 6. Usage, reported and countersigned: the basis of payment.
    let report =
        json!({"metric": "kWh", "unit": "kWh", "start": now_ms() - 30 * 86_400_000, "end": now_ms() - 1, "value": 412});
    let report = v.send("usage_report", Some(&rel), None, report).await?;
    say.say("vendor", "customer", "usage_report", &report.id, "412 kWh this month");
    let counter = c.send("countersignature", Some(&rel), None, json!({"report": report.id})).await?;
    say.say("customer", "vendor", "countersignature", &counter.id, "she agrees: 412 kWh are billable");

    // 7. Data back to the customer: an insight, committed to in the log with a salted digest.
    let insight = br#"{"self_consumption": "71%", "advice": "run the dishwasher at noon"}"#;
    let mut salt = [0u8; rapport_protocol::SALT_LEN];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
    let commitment = rapport_protocol::Digest32::commit(&salt, insight);
    let share = json!({
        "content": "insight", "purpose": "dpv:ServiceProvision", "categories": ["urn:rapport:demo:energy-consumption"],
        "commitment": commitment.to_hex(), "media_type": "application/json", "size": insight.len()
    });
    let share = v.send("data_share", Some(&rel), None, share).await?;
    say.say("vendor", "customer", "data_share", &share.id, "an insight on her own consumption");

    // 8. An introduction to a third party.
    let intro = json!({"party": {"name": "Battery recyclers"}, "offering": "Battery recycling", "commission": {"basis": "none"}});
    let intro = v.send("introduction", Some(&rel), None, intro).await?;
    say.say("vendor", "customer", "introduction", &intro.id, "to a battery recycler, no commission");

    // 9. She withdraws consent; from its receipt on, the vendor holds it.
    let revocation = c.send("consent_revocation", Some(&rel), None, json!({"grant": grant.id})).await?;
    say.say("customer", "vendor", "consent_revocation", &revocation.id, "consent withdrawn");
    let shown = v.relationship(&rel).await?;
    if shown["consents"][0]["revoked_by"] != revocation.id.as_str() {
        anyhow::bail!("the vendor does not show the consent as revoked: {shown}");
    }
    match v.send("data_share", Some(&rel), None, json!({
        "content": "insight", "purpose": "dpv:ServiceProvision", "categories": ["urn:rapport:demo:energy-consumption"],
        "commitment": commitment.to_hex(), "media_type": "application/json", "size": insight.len()
    }))
    .await
    {
        Err(e) if e.to_string().contains("consent-required") => {
            println!("     vendor   ✗ data_share refused by his own node: consent-required")
        }
        Err(e) => anyhow::bail!("a data share after the revocation failed for the wrong reason: {e}"),
        Ok(s) => anyhow::bail!("a data share after the revocation was accepted: {}", s.id),
    }

    // 10–12. Friendly separation: notice, disposition, closure.
    let notice = json!({"effective": now_ms() + 2_000, "disposition": [
        {"category": "pd:Location", "action": "delete"}, {"category": "urn:rapport:demo:energy-consumption", "action": "return_and_delete"}]});
    let notice = c.send("separation_notice", Some(&rel), None, notice).await?;
    say.say(
        "customer",
        "vendor",
        "separation_notice",
        &notice.id,
        "she leaves: delete her location, return her consumption data",
    );
    // Her consumption data goes back to her, and the statement names the returned file by its
    // SHA-256, so she can show later what she received.
    let returned = br#"{"readings_kwh": [13.1, 12.7, 14.0], "period": "last 30 days"}"#;
    let digest = rapport_protocol::Digest32::of(returned).to_hex();
    let statement = json!({"notice": notice.id, "items": [
        {"category": "pd:Location", "outcome": "deleted"},
        {"category": "urn:rapport:demo:energy-consumption", "outcome": "returned_and_deleted", "export": digest}]});
    let statement = v.send("disposition_statement", Some(&rel), None, statement).await?;
    say.say(
        "vendor",
        "customer",
        "disposition_statement",
        &statement.id,
        "deleted, and returned then deleted, as asked",
    );
    let closure = c.send("closure_receipt", Some(&rel), None, json!({"statement": statement.id})).await?;
    say.say("customer", "vendor", "closure_receipt", &closure.id, "confirmed: the relationship is closed");

    // Both records, exported and verified offline.
    println!();
    let mut verified = Vec::new();
    for node in [c, v] {
        let bundle: Value = node.client.get(&format!("/v1/relationships/{rel}/export")).await?;
        let file = root.join(format!("{}-export.json", node.name));
        std::fs::write(&file, serde_json::to_string_pretty(&bundle)?)?;
        let report = Bundle::parse(&std::fs::read_to_string(&file)?)?.verify()?;
        println!(
            "{:<8} export verified: {} messages and {} receipts, phase {}, every signature strict-valid",
            node.name, report.chained, report.acknowledgements, report.phase
        );
        if report.phase != "closed" {
            anyhow::bail!("the {} side's record ends in phase {}, not closed", node.name, report.phase);
        }
        verified.push(report);
    }
    if verified[0].ids != verified[1].ids {
        anyhow::bail!("the two exports hold different messages");
    }
    println!("both records hold the same {} signed messages", verified[0].ids.len());
    Ok(())
}

/// Publishes the intent and waits until the vendor heard it. Gossip reaches only peers whose
/// subscription is already known, so a node that just connected may miss the first copy: the
/// intent is published again (a new message) until the vendor lists one.
async fn publish_intent(c: &Node, v: &Node, intent: Value) -> anyhow::Result<String> {
    let start = Instant::now();
    loop {
        let request = SendRequest { relationship: None, to: None, body: intent.clone() };
        let sent: Value = c.client.post("/v1/send/intent", &request).await?;
        let id = text(&sent, "id");
        for _ in 0..20 {
            let public: Value = v.client.get("/v1/public").await?;
            if public.as_array().is_some_and(|a| a.iter().any(|m| m["id"] == id.as_str())) {
                return Ok(id);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if start.elapsed() > STEP_TIMEOUT {
            anyhow::bail!("the vendor never heard the customer's intent over gossip");
        }
    }
}
