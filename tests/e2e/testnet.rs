//! The local test network with real processes: `rapport testnet up --nodes 10` with mDNS off,
//! so that nodes know only the bootstrap node of `networks/testnet.toml`. Every node finds
//! every other by peer id through the DHT, keeps them as neighbours, hears the network's
//! gossip; `rapport testnet down` leaves no process behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../../node/tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{json, wait_for, BIN};
use serde_json::Value;

const NODES: usize = 10;

/// Stops the network even if the test fails half-way.
struct Network {
    dir: PathBuf,
    up: bool,
}

impl Network {
    fn down(&mut self) -> Value {
        self.up = false;
        let out = Command::new(BIN).arg("--json").args(["testnet", "down", "--dir"]).arg(&self.dir).output().unwrap();
        assert!(out.status.success(), "down: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if self.up {
            let _ = Command::new(BIN).args(["testnet", "down", "--dir"]).arg(&self.dir).output();
        }
    }
}

/// Processes whose command line names a path under `dir`.
fn processes_under(dir: &Path) -> Vec<u32> {
    let wanted = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmdline).contains(&wanted) {
            found.push(pid);
        }
    }
    found
}

fn peer_ids(v: &Value) -> BTreeSet<String> {
    v.as_array().unwrap().iter().map(|p| p["peer_id"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn ten_nodes_find_each_other_through_the_dht_hear_the_gossip_and_go_down_without_a_trace() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("testnet");
    let out = Command::new(BIN)
        .arg("--json")
        .args(["testnet", "up", "--nodes", &NODES.to_string(), "--mdns", "false", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let mut network = Network { dir: dir.clone(), up: true };
    assert!(out.status.success(), "up: {}", String::from_utf8_lossy(&out.stderr));
    let state: Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes = state["nodes"].as_array().unwrap().clone();
    assert_eq!(nodes.len(), NODES + 1, "the bootstrap node and {NODES} nodes: {state}");
    assert_eq!(nodes[0]["name"], "bootstrap");
    let profile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../networks/testnet.toml")).unwrap();
    assert!(profile.contains(nodes[0]["peer_id"].as_str().unwrap()), "the bootstrap node is the profile's");
    let dirs: Vec<PathBuf> = nodes.iter().map(|n| PathBuf::from(n["data_dir"].as_str().unwrap())).collect();
    let ids: Vec<String> = nodes.iter().map(|n| n["peer_id"].as_str().unwrap().to_owned()).collect();
    let all: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(all.len(), NODES + 1, "every node has its own key");
    for (n, d) in nodes.iter().zip(&dirs) {
        assert_eq!(json(d, &["id"])["peer_id"], n["peer_id"], "each API address answers for its node");
        assert_eq!(json(d, &["status"])["network"], "testnet");
    }

    // Each node looks up each other one by its peer id alone; the DHT answers with where it
    // listens, and the node connects.
    for (i, d) in dirs.iter().enumerate() {
        for (j, other) in ids.iter().enumerate() {
            if i == j {
                continue;
            }
            let found = json(d, &["find", other]);
            assert_eq!(found["peer_id"], other.as_str());
            let listens: Vec<String> = json(&dirs[j], &["id"])["listen"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| format!("{}/p2p/{other}", a.as_str().unwrap()))
                .collect();
            let addresses = found["addresses"].as_array().unwrap();
            assert!(
                addresses.iter().any(|a| listens.iter().any(|l| l == a.as_str().unwrap())),
                "node {i} found node {j} at {addresses:?}, where it listens: {listens:?}"
            );
        }
    }
    // A peer id that no node has is not found, and says so.
    let stranger = "12D3KooWLRPJAA5o6Z6bBxH6pCy4CfGvcc7txpHYGq5yZwJAL9YQ";
    let out = common::rapport(&dirs[1], &["find", stranger]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not know"), "{}", String::from_utf8_lossy(&out.stderr));

    // Every node keeps every other as a neighbour (fewer than its target of 32).
    for (d, me) in dirs.iter().zip(&ids) {
        let others: BTreeSet<String> = all.iter().filter(|p| *p != me).cloned().collect();
        wait_for("every other node among the peers", || (peer_ids(&json(d, &["peers"])) == others).then_some(()));
    }

    // The network's gossip reaches every node: an intent from one, a public offer from another.
    let intent = json(&dirs[1], &["intent", "--title", "Heat pump for a flat", "--tag", "heating"]);
    let offer = json(&dirs[2], &["offer", "--title", "Heat pumps, installed", "--amount", "450000"]);
    for (i, d) in dirs.iter().enumerate() {
        wait_for("the gossip", || {
            let heard: BTreeSet<String> =
                json(d, &["public"]).as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
            (heard.contains(intent["id"].as_str().unwrap()) && heard.contains(offer["id"].as_str().unwrap()))
                .then_some(())
        });
        let public = json(d, &["public"]);
        let from_one = public.as_array().unwrap().iter().find(|m| m["id"] == intent["id"]).unwrap();
        assert_eq!(from_one["kind"], "intent", "node {i}");
        assert_eq!(from_one["body"]["title"], "Heat pump for a flat", "node {i}");
    }

    // Down stops exactly those processes, and nothing is left running.
    let pids: Vec<u64> = nodes.iter().map(|n| n["pid"].as_u64().unwrap()).collect();
    assert_eq!(processes_under(&dir).len(), NODES + 1, "one process per node while up");
    let stopped = network.down();
    let stopped: Vec<u64> = stopped.as_array().unwrap().iter().map(|n| n["pid"].as_u64().unwrap()).collect();
    assert_eq!(stopped, pids);
    assert_eq!(processes_under(&dir), Vec::<u32>::new(), "no process left behind");
    assert!(!dir.join("testnet.json").exists());
    for d in &dirs {
        assert!(!d.join("api").exists(), "each node stopped cleanly: {}", d.display());
    }
    // Down again: nothing is up, and it says so.
    let again = Command::new(BIN).args(["testnet", "down", "--dir"]).arg(&dir).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no test network is up"));
}
