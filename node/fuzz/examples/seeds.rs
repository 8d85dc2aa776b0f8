//! Writes the checked-in seeds of the node's fuzz targets, `node/fuzz/seeds/<target>/`, from the
//! spec's vectors and the node's own files:
//!
//! - `bundle`: a bundle of each sequence and log vector (`spec/vectors/{sequences,logs}`),
//!   as `rapport export` writes it, sealed by the first message's sender (its key derived from
//!   the generator's labels, spec/protocol.md §12); those whose log verifies carry its true
//!   phase. And each export seal vector's bundle (`spec/vectors/seals`).
//! - `api`: a `send/<kind>` request of each kind vector's body, as the CLI sends it; `find` and
//!   `connect` requests of the test network's bootstrap peer and addresses.
//! - `config`: the file `rapport init` writes for each network, and one setting everything.
//!
//! Run from the repository: `cargo run --manifest-path node/fuzz/Cargo.toml --example seeds`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fs;
use std::path::Path;

use ed25519_dalek::SigningKey;
use rapport_node::bundle::Bundle;
use rapport_node::config::{self, Network};
use rapport_protocol::{log, Digest32, KeyId, Message, Payload, RelationshipId};
use serde_json::{json, Value};

/// When the seed bundles say they were exported.
const EXPORTED_AT: u64 = 1_800_000_000_000;

/// The key the vector generator derives from `label`: SHA-256 of `rapport-vectors:key:<label>`.
fn vector_key(label: &str) -> SigningKey {
    SigningKey::from_bytes(Digest32::of(format!("rapport-vectors:key:{label}").as_bytes()).as_bytes())
}

fn main() {
    let vectors = Path::new("spec/vectors");
    let seeds = Path::new("node/fuzz/seeds");
    assert!(vectors.is_dir(), "run from the repository's root");
    for target in ["bundle", "api", "config"] {
        let dir = seeds.join(target);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
    }
    let write = |target: &str, name: &str, bytes: &[u8]| fs::write(seeds.join(target).join(name), bytes).unwrap();

    for set in ["sequences", "logs"] {
        for (name, vector) in read_dir(&vectors.join(set)) {
            let Some(messages) = vector["messages"].as_array() else { continue };
            let envelopes: Vec<Vec<u8>> =
                messages.iter().filter_map(|m| hex::decode(m["cose_hex"].as_str()?).ok()).collect();
            let Some(first) = envelopes.first().and_then(|e| Message::open(e).ok()) else { continue };
            let (rel, phase) = match log::verify(&envelopes) {
                Ok(v) => (v.id(), v.phase().as_str().to_owned()),
                Err(_) => {
                    (first.header().relationship.unwrap_or(RelationshipId::from_bytes([0; 16])), "proposed".into())
                }
            };
            let from = first.header().from;
            let key = ["customer", "vendor", "outsider"]
                .into_iter()
                .map(vector_key)
                .find(|k| KeyId::from_bytes(k.verifying_key().to_bytes()) == from)
                .unwrap_or_else(|| vector_key("outsider"));
            let bundle = Bundle::new(rel, &key, EXPORTED_AT, &phase, &envelopes).unwrap();
            write("bundle", &format!("{set}-{name}.json"), serde_json::to_string_pretty(&bundle).unwrap().as_bytes());
        }
    }
    for (name, vector) in read_dir(&vectors.join("seals")) {
        let bundle = serde_json::to_string_pretty(&vector["bundle"]).unwrap();
        write("bundle", &format!("seals-{name}.json"), bundle.as_bytes());
    }

    for (name, vector) in read_dir(&vectors.join("kinds")) {
        let Some(payload) = vector["payload_hex"].as_str().and_then(|h| hex::decode(h).ok()) else { continue };
        let Ok(payload) = Payload::decode(&payload) else { continue };
        let h = &payload.header;
        let mut request = json!({ "body": serde_json::to_value(&payload.body).unwrap() });
        // As the CLI sends them: the first message names the recipient, later ones the relationship.
        match (h.relationship, h.to, h.seq) {
            (_, Some(to), 1) => request["to"] = json!(to.to_hex()),
            (Some(rel), ..) => request["relationship"] = json!(rel.to_hex()),
            _ => {}
        }
        let text = format!("send/{}\n{}", payload.kind().as_str(), serde_json::to_string_pretty(&request).unwrap());
        write("api", &format!("send-{name}"), text.as_bytes());
    }
    let testnet = Network::named("testnet").unwrap();
    let mut addresses = testnet.bootstrap.clone();
    addresses.extend(testnet.bootstrap_node.iter().flat_map(|n| n.listen.clone()));
    for (i, address) in addresses.iter().enumerate() {
        write("api", &format!("connect-{i}"), format!("connect\n{}", json!({ "address": address })).as_bytes());
        if let Some((_, peer)) = address.split_once("/p2p/") {
            write("api", &format!("find-{i}"), format!("find\n{}", json!({ "peer_id": peer })).as_bytes());
        }
    }

    for network in ["local", "testnet"] {
        write("config", &format!("init-{network}.toml"), config::initial_file(network).as_bytes());
    }
    // The initial file with every setting uncommented.
    let everything: String = config::initial_file("testnet")
        .lines()
        .map(|l| l.strip_prefix("# ").filter(|setting| setting.contains(" = ")).unwrap_or(l))
        .flat_map(|l| [l, "\n"])
        .collect();
    write("config", "everything.toml", everything.as_bytes());
}

/// The JSON files of `dir`, by name without `.json`, sorted.
fn read_dir(dir: &Path) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?.strip_suffix(".json")?.to_owned();
            Some((name, serde_json::from_str(&fs::read_to_string(&path).ok()?).ok()?))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
