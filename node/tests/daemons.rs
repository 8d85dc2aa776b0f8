//! Real `rapport` processes on 127.0.0.1: init, run, connect, deliver with receipts, survive a
//! restart of either side, refuse requests without the token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{act, json, now_ms, pair, rapport, wait_for, Daemon};
use rapport_node::client::{self, Client};
use serde_json::Value;

fn offer(vendor: &Daemon, to: &str, title: &str) -> Value {
    json(&vendor.dir, &["offer", "--to", to, "--title", title, "--amount", "2500"])
}

#[test]
fn offer_is_delivered_with_a_receipt_and_both_sides_hold_the_same_record() {
    let root = tempfile::tempdir().unwrap();
    let (mut vendor, mut customer) = pair(root.path());

    let peers = json(&vendor.dir, &["peers"]);
    assert_eq!(peers[0]["address"], customer.addr(), "the address the vendor dialled: {peers}");
    assert_eq!(peers[0]["peer_id"], json(&customer.dir, &["id"])["peer_id"]);

    let sent = offer(&vendor, &customer.key(), "Solar panel lease");
    let rel = sent["relationship"].as_str().unwrap().to_owned();
    wait_for("the receipt", || (json(&vendor.dir, &["status"])["outbox"] == 0).then_some(()));
    let (v, c) = (vendor.log_ids(&rel), customer.log_ids(&rel));
    assert_eq!(v.len(), 2, "the offer and the customer's receipt");
    assert_eq!(v[0], sent["id"].as_str().unwrap());
    assert_eq!(v, c, "both sides hold the same messages");
    let rels = json(&customer.dir, &["relationships"]);
    assert_eq!(rels[0]["phase"], "proposed");
    assert_eq!(rels[0]["role"], "customer");

    // She reads what she is offered, in words, and the JSON carries the decoded body.
    let out = rapport(&customer.dir, &["show", &rel]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("opened with    offer \u{201c}Solar panel lease\u{201d}, 25.00 EUR upfront"), "{text}");
    assert!(text.contains("receipt for "), "the timeline lists the receipt: {text}");
    let log = json(&customer.dir, &["log", &rel]);
    assert_eq!(log[0]["body"]["title"], "Solar panel lease");
    assert_eq!(log[0]["body"]["price"]["amount"]["minor_units"], 2500);

    vendor.stop();
    customer.stop();
}

#[test]
fn messages_for_a_stopped_node_are_delivered_once_it_returns_even_across_a_sender_restart() {
    let root = tempfile::tempdir().unwrap();
    let (mut vendor, mut customer) = pair(root.path());
    let customer_key = customer.key();
    customer.stop();

    let first = offer(&vendor, &customer_key, "Sent while the customer is down");
    let second = offer(&vendor, &customer_key, "Also sent while it is down");
    assert_eq!(json(&vendor.dir, &["status"])["outbox"], 2);
    // The sender restarts too (stopped with SIGINT, as Ctrl-C would): its outbox is on disk.
    vendor.stop_with("INT");
    vendor.start();
    assert_eq!(json(&vendor.dir, &["status"])["outbox"], 2);
    // Asked to retry now, it says what waits (the customer is still down, so both do).
    assert_eq!(json(&vendor.dir, &["retry"])["waiting"], 2);
    let out = rapport(&vendor.dir, &["retry"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 waiting messages are due now"), "{out:?}");
    // No `connect`: the vendor remembers where the customer listens, and its outbox finds her.
    customer.start();
    wait_for("both receipts", || (json(&vendor.dir, &["status"])["outbox"] == 0).then_some(()));

    for sent in [first, second] {
        let rel = sent["relationship"].as_str().unwrap();
        let ids = customer.log_ids(rel);
        assert_eq!(ids.iter().filter(|id| *id == sent["id"].as_str().unwrap()).count(), 1, "delivered exactly once");
        assert_eq!(ids, vendor.log_ids(rel));
    }
    vendor.stop();
    customer.stop();
}

#[test]
fn the_api_wants_the_token_and_the_cli_explains_failures_in_one_line() {
    let root = tempfile::tempdir().unwrap();
    let mut node = Daemon::init(root.path(), "node");
    // No daemon yet: a one-line reason and a non-zero exit.
    let out = rapport(&node.dir, &["status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("no running node"), "{err}");

    node.start();
    let api = std::fs::read_to_string(node.dir.join("api")).unwrap();
    let token = std::fs::read_to_string(node.dir.join("api-token")).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let status = |token: &str| -> u16 {
        let client = Client::new(api.trim(), token.to_owned());
        match runtime.block_on(client.get::<Value>("/v1/status")) {
            Ok(_) => 200,
            Err(client::Error::Refused { status, .. }) => status,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(status(""), 401);
    assert_eq!(status(&"0".repeat(64)), 401);
    assert_eq!(status(token.trim()), 200);

    // Bad input: a malformed key id is refused with a reason, and nothing is queued.
    let out = rapport(&node.dir, &["offer", "--to", "zz", "--title", "x", "--amount", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a 64-digit hex key id"));
    // A currency the protocol refuses: the typed problem code comes back.
    let to = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let out = rapport(&node.dir, &["offer", "--to", to, "--title", "x", "--amount", "1", "--currency", "euro"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("schema-violation"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&node.dir, &["status"])["outbox"], 0);

    // A second daemon on the same data directory would write the same store: refused, in one
    // line naming the first one's pid, and the first one runs on.
    let out = rapport(&node.dir, &["run", "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("another rapport daemon (pid ") && err.contains("is running on"), "{err}");
    assert_eq!(std::fs::read_to_string(node.dir.join("api")).unwrap(), api, "the api file is the first one's");
    assert_eq!(status(token.trim()), 200);
    node.stop();
}

#[test]
fn a_relationship_walks_from_offer_to_closure_and_both_exports_verify() {
    let root = tempfile::tempdir().unwrap();
    let (mut vendor, mut customer) = pair(root.path());
    let (v, c) = (&vendor, &customer);

    let sent = offer(v, &c.key(), "Solar panel lease");
    let rel = sent["relationship"].as_str().unwrap().to_owned();
    wait_for("the offer's receipt", || (json(&v.dir, &["status"])["outbox"] == 0).then_some(()));
    let terms = r#"{"duration": 31536000, "renewal": "opt_in", "notice_period": 1,
        "price": {"model": "per_usage", "amount": {"currency": "EUR", "minor_units": 25}, "metric": "kWh", "threshold": 100},
        "data": {"purposes": ["dpv:ServiceProvision"], "categories": ["pd:Location"]},
        "portability": {"format": "application/json", "deadline": 2592000},
        "deletion_deadline": 5184000, "exit_fee": {"currency": "EUR", "minor_units": 0}}"#;
    let proposal = act(c, &["terms", "propose", "--rel", &rel, "--role", "customer", "--terms", terms]);
    act(v, &["terms", "accept", &rel, &proposal]);
    let grant = act(c, &["consent", "grant", &rel, "--purpose", "dpv:ServiceProvision", "--category", "pd:Location"]);
    let (start, end) = ((now_ms() - 3_600_000).to_string(), (now_ms() - 1).to_string());
    let report = act(
        v,
        &[
            "report", "usage", &rel, "--metric", "kWh", "--unit", "kWh", "--start", &start, "--end", &end, "--value",
            "12",
        ],
    );
    act(c, &["countersign", &rel, &report]);
    // Five reports queued while the customer is away go out together when she returns, and
    // arrive in order, all of them.
    customer.stop();
    for value in 1..=5 {
        let value = value.to_string();
        json(
            &v.dir,
            &[
                "report", "usage", &rel, "--metric", "kWh", "--unit", "kWh", "--start", &start, "--end", &end,
                "--value", &value,
            ],
        );
    }
    customer.start();
    let c = &customer;
    wait_for("five receipts", || (json(&v.dir, &["status"])["outbox"] == 0).then_some(()));
    let file = root.path().join("insight.json");
    std::fs::write(&file, br#"{"saving": "12%"}"#).unwrap();
    let file = file.to_str().unwrap();
    act(
        v,
        &[
            "share",
            &rel,
            "--file",
            file,
            "--content",
            "insight",
            "--purpose",
            "dpv:ServiceProvision",
            "--category",
            "pd:Location",
        ],
    );
    // The salt stays with the sender, so the commitment in the log can be opened later.
    let kept: Vec<_> = std::fs::read_dir(v.dir.join("shares")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(kept.len(), 1);
    let record: Value = serde_json::from_str(&std::fs::read_to_string(&kept[0]).unwrap()).unwrap();
    let salt: [u8; rapport_protocol::SALT_LEN] =
        hex::decode(record["salt"].as_str().unwrap()).unwrap().try_into().unwrap();
    let commitment = rapport_protocol::Digest32::commit(&salt, &std::fs::read(file).unwrap());
    assert_eq!(kept[0].file_stem().unwrap().to_str().unwrap(), commitment.to_hex());
    act(
        v,
        &[
            "introduce",
            &rel,
            "--body",
            r#"{"party": {"name": "Battery recyclers"}, "offering": "Battery recycling", "commission": {"basis": "none"}}"#,
        ],
    );
    let shown = json(&v.dir, &["show", &rel]);
    assert_eq!(shown["consents"][0]["grant"], grant.as_str());
    assert_eq!(shown["consents"][0]["scope"]["purposes"], serde_json::json!(["dpv:ServiceProvision"]));
    assert!(shown["consents"][0]["revoked_by"].is_null(), "in force: {shown}");
    let revocation = act(c, &["consent", "revoke", &rel, &grant]);
    // The vendor's view changes as soon as it holds the revocation.
    assert_eq!(json(&v.dir, &["show", &rel])["consents"][0]["revoked_by"], revocation.as_str());
    let effective = (now_ms() + 2_000).to_string();
    let notice = act(
        c,
        &[
            "separate",
            &rel,
            "--body",
            &format!(
                r#"{{"effective": {effective}, "disposition": [{{"category": "pd:Location", "action": "delete"}}]}}"#
            ),
        ],
    );
    let statement = act(
        v,
        &[
            "dispose",
            &rel,
            "--body",
            &format!(r#"{{"notice": "{notice}", "items": [{{"category": "pd:Location", "outcome": "deleted"}}]}}"#),
        ],
    );
    act(c, &["close", &rel, &statement]);

    let mut reports = Vec::new();
    for (name, node) in [("vendor", v), ("customer", c)] {
        // Beside the data directories: export refuses to write inside one.
        let out = root.path().join(format!("{name}-export.json"));
        json(&node.dir, &["export", &rel, "--out", out.to_str().unwrap()]);
        let verified = rapport(&node.dir, &["--json", "verify", out.to_str().unwrap()]);
        assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
        reports.push(serde_json::from_slice::<Value>(&verified.stdout).unwrap());
    }
    assert_eq!(reports[0]["phase"], "closed");
    assert_eq!(reports[0]["chained"], 17);
    assert_eq!(reports[0]["ids"], reports[1]["ids"], "both exports hold the same messages");

    // Metrics: every message received and receipted; nothing refused on the wire.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for node in [v, c] {
        let text = runtime.block_on(Client::for_data_dir(&node.dir).unwrap().get_text("/metrics")).unwrap();
        // The customer's counters start again at her restart: since then she sent the
        // revocation, the notice and the closure, and received five reports, the share, the
        // introduction and the statement.
        let (sent, received) = if node.dir == v.dir { (11, 6) } else { (3, 8) };
        let lines = [
            format!("rapport_messages_sent_total {sent}"),
            format!("rapport_messages_received_total {received}"),
            "rapport_outbox_depth 0".to_string(),
        ];
        for line in lines {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(text.contains("rapport_relationships{phase=\"closed\"} 1"), "{text}");
        let latency = format!("rapport_receipt_latency_seconds_count {sent}");
        assert!(text.lines().any(|l| l == latency), "{latency} in\n{text}");
        assert!(!text.contains("rapport_messages_rejected_total{"), "{text}");
    }

    // A tampered export fails verification with a reason.
    let out = root.path().join("customer-export.json");
    let text = std::fs::read_to_string(&out).unwrap().replacen("\"closed\"", "\"active\"", 1);
    std::fs::write(&out, text).unwrap();
    let bad = rapport(&c.dir, &["verify", out.to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("manifest"), "{}", String::from_utf8_lossy(&bad.stderr));

    // After closure the vendor may not contact the customer in this relationship.
    let late = rapport(
        &v.dir,
        &[
            "report", "usage", &rel, "--metric", "kWh", "--unit", "kWh", "--start", &start, "--end", &end, "--value",
            "1",
        ],
    );
    assert!(!late.status.success());
    assert!(String::from_utf8_lossy(&late.stderr).contains("closed"), "{}", String::from_utf8_lossy(&late.stderr));
    vendor.stop();
    customer.stop();
}

#[test]
fn a_recipient_whose_address_the_sender_never_had_is_found_through_the_dht() {
    let root = tempfile::tempdir().unwrap();
    let mut hub = Daemon::init(root.path(), "hub");
    let mut vendor = Daemon::init(root.path(), "vendor");
    let mut customer = Daemon::init(root.path(), "customer");
    hub.start();
    // One connection each, to the hub: they do not go looking for more neighbours, so the
    // customer is reached only when the offer needs her.
    for d in [&mut vendor, &mut customer] {
        d.start_with(&["--target-peers", "1"]);
    }
    // Vendor and customer know only the hub.
    let hub_addr = hub.addr();
    for d in [&vendor, &customer] {
        json(&d.dir, &["connect", &hub_addr]);
    }
    wait_for("both at the hub", || (json(&hub.dir, &["peers"]).as_array().unwrap().len() == 2).then_some(()));
    assert_eq!(json(&vendor.dir, &["peers"]).as_array().unwrap().len(), 1, "the vendor knows only the hub");

    let sent = offer(&vendor, &customer.key(), "Found by key alone");
    wait_for("the receipt", || (json(&vendor.dir, &["status"])["outbox"] == 0).then_some(()));
    let rel = sent["relationship"].as_str().unwrap();
    assert_eq!(customer.log_ids(rel), vendor.log_ids(rel));
    for d in [&mut hub, &mut vendor, &mut customer] {
        d.stop();
    }
}

#[test]
fn export_refuses_existing_files_without_force_and_the_data_directory_always() {
    use std::os::unix::fs::PermissionsExt as _;
    let root = tempfile::tempdir().unwrap();
    let mut node = Daemon::init(root.path(), "node");
    node.start();
    // An offer to a key nobody runs: it waits in the outbox, and the relationship exists.
    let to = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let rel = offer(&node, to, "Export me")["relationship"].as_str().unwrap().to_owned();
    let export = |out: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["export", &rel, "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        rapport(&node.dir, &args)
    };
    let one_line_error = |out: &std::process::Output, needle: &str| {
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    };

    // A new file: written, mode 0600, and it verifies.
    let file = root.path().join("bundle.json");
    assert!(export(&file, &[]).status.success());
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(rapport(&node.dir, &["verify", file.to_str().unwrap()]).status.success());

    // An existing file: refused and unchanged without --force, replaced with it.
    std::fs::write(&file, "precious").unwrap();
    one_line_error(&export(&file, &[]), "pass --force");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious");
    assert!(export(&file, &["--force"]).status.success());
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(bundle["format"], "rapport-export/2");

    // The node's own key, and anything else in its data directory, even through `..` and
    // even with --force.
    let key = std::fs::read(node.dir.join("key")).unwrap();
    let sideways = node.dir.join("..").join("node").join("key");
    for (out, extra) in
        [(node.dir.join("key"), &[][..]), (node.dir.join("key"), &["--force"]), (sideways, &["--force"])]
    {
        one_line_error(&export(&out, extra), "data directory");
    }
    one_line_error(&export(&node.dir.join("new.json"), &["--force"]), "data directory");
    assert_eq!(std::fs::read(node.dir.join("key")).unwrap(), key, "the key is unchanged");
    assert!(!node.dir.join("new.json").exists());

    // `-`: the bundle on standard output, and no file named `-`.
    let out = rapport(&node.dir, &["export", &rel, "--out", "-"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["format"], "rapport-export/2");
    assert_eq!(printed["messages"], bundle["messages"]);
    assert!(!std::path::Path::new("-").exists() && !node.dir.join("-").exists());
    node.stop();
}

/// Issue #22, point 5: the export seal. A bundle cut short (its last message dropped, with its
/// id), padded, with its exporter or time edited, sealed by a stranger, or without its seal is
/// refused by `rapport verify` with a one-line reason and a non-zero exit. Before the seal, the
/// cut, edited and unsealed bundles verified: what was left is a valid log.
#[test]
fn export_seal_refuses_truncated_edited_and_unsigned_bundles() {
    use ed25519_dalek::SigningKey;
    use rapport_node::bundle::Bundle;
    use rapport_protocol::RelationshipId;

    let root = tempfile::tempdir().unwrap();
    let (mut vendor, mut customer) = pair(root.path());
    let rel = offer(&vendor, &customer.key(), "Seal me")["relationship"].as_str().unwrap().to_owned();
    wait_for("the receipt", || (json(&vendor.dir, &["status"])["outbox"] == 0).then_some(()));
    let file = root.path().join("vendor-export.json");
    json(&vendor.dir, &["export", &rel, "--out", file.to_str().unwrap()]);
    let good: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(good["format"], "rapport-export/2");
    assert_eq!(good["messages"].as_array().unwrap().len(), 2, "the offer and the customer's receipt");
    assert_eq!(good["manifest"]["exported_by"], vendor.key());

    // Verify a bundle from a file; (success, the one line printed).
    let n = std::cell::Cell::new(0);
    let verify = |bundle: &Value, extra: &[&str]| {
        n.set(n.get() + 1);
        let path = root.path().join(format!("bundle-{}.json", n.get()));
        std::fs::write(&path, serde_json::to_string_pretty(bundle).unwrap()).unwrap();
        let mut args = vec!["verify"];
        args.extend_from_slice(extra);
        args.push(path.to_str().unwrap());
        let out = rapport(&vendor.dir, &args);
        let text = String::from_utf8_lossy(if out.status.success() { &out.stdout } else { &out.stderr }).into_owned();
        assert_eq!(text.trim().lines().count(), 1, "one line: {text}");
        (out.status.success(), text.trim().to_owned())
    };
    let refused = |bundle: &Value, line: &str| {
        let (ok, text) = verify(bundle, &[]);
        assert!(!ok, "verified, but should be refused with {line:?}: {text}");
        assert!(text.starts_with(&format!("rapport: {line}")), "expected {line:?}, got {text:?}");
    };

    let (ok, text) = verify(&good, &[]);
    assert!(ok, "{text}");
    assert!(text.contains(&format!("sealed by the vendor {}", vendor.key())), "{text}");

    // The last message dropped, with its id: a valid log of the offer alone.
    let mut truncated = good.clone();
    truncated["messages"].as_array_mut().unwrap().pop();
    truncated["manifest"]["ids"].as_array_mut().unwrap().pop();
    refused(&truncated, "truncated: the seal covers 2 messages, the bundle holds 1");

    let mut padded = good.clone();
    let first = padded["messages"][0].clone();
    padded["messages"].as_array_mut().unwrap().push(first);
    refused(&padded, "messages-altered: the seal covers 2 messages, the bundle holds 3");

    let mut by = good.clone();
    by["manifest"]["exported_by"] = Value::from(customer.key());
    refused(&by, "manifest-edited: exported_by is");

    let mut at = good.clone();
    at["manifest"]["exported_at"] = Value::from(good["manifest"]["exported_at"].as_u64().unwrap() - 86_400_000);
    refused(&at, "manifest-edited: exported_at is");

    // The customer's own export verifies, sealed by her; her seal in the vendor's bundle does not.
    let theirs = root.path().join("customer-export.json");
    json(&customer.dir, &["export", &rel, "--out", theirs.to_str().unwrap()]);
    let theirs: Value = serde_json::from_str(&std::fs::read_to_string(&theirs).unwrap()).unwrap();
    let (ok, text) = verify(&theirs, &[]);
    assert!(ok && text.contains("sealed by the customer"), "{text}");
    let mut swapped = good.clone();
    swapped["seal"] = theirs["seal"].clone();
    refused(&swapped, "manifest-edited: exported_by is");

    // Sealed, consistently, by a key that is neither party.
    let envelopes: Vec<Vec<u8>> =
        good["messages"].as_array().unwrap().iter().map(|m| hex::decode(m.as_str().unwrap()).unwrap()).collect();
    let stranger = SigningKey::from_bytes(&[0x5a; 32]);
    let rel_id = RelationshipId::from_hex(&rel).unwrap();
    let forged = Bundle::new(rel_id, &stranger, now_ms(), "proposed", &envelopes).unwrap();
    refused(&serde_json::to_value(&forged).unwrap(), "seal-not-by-party: ");

    // No seal: refused by default; allowed, the envelopes verify and the report says unsigned.
    let mut unsealed = good.clone();
    unsealed.as_object_mut().unwrap().remove("seal");
    refused(&unsealed, "unsigned: the bundle's seal is missing");
    let mut first_version = unsealed.clone();
    first_version["format"] = Value::from("rapport-export/1");
    refused(&first_version, "unsigned: a rapport-export/1 bundle carries no seal");
    let (ok, text) = verify(&first_version, &["--allow-unsigned"]);
    assert!(ok && text.contains("UNSIGNED"), "{text}");
    // Allowing unsigned bundles does not let a sealed one be cut.
    let (ok, text) = verify(&truncated, &["--allow-unsigned"]);
    assert!(!ok && text.starts_with("rapport: truncated"), "{text}");

    vendor.stop();
    customer.stop();
}

/// The local-exposure checks of the daemon and the CLI (issue #22, point 6): an API beyond
/// loopback needs `--api-allow-remote`; a data directory or `api` file others can write is
/// refused by both; a second node on a taken TCP port fails instead of sharing it; a foreign
/// `Host` is refused.
#[test]
fn local_exposure_is_refused() {
    use std::io::{Read as _, Write as _};
    use std::os::unix::fs::PermissionsExt as _;
    let root = tempfile::tempdir().unwrap();
    let mut node = Daemon::init(root.path(), "node");
    let chmod = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let refused = |node: &mut Daemon, needle: &str| {
        let (status, log) = node.wait_exit();
        assert!(!status.success(), "{log}");
        assert!(log.contains(needle), "{log}");
    };

    node.spawn_with(&["--api", "0.0.0.0:0"]);
    refused(&mut node, "api_allow_remote");
    chmod(&node.dir, 0o777);
    node.spawn_with(&[]);
    refused(&mut node, "chmod go-w");
    chmod(&node.dir, 0o700);
    node.start();

    // A second node told to listen on the first one's port.
    let mut second = Daemon::init(root.path(), "second");
    second.port = node.port;
    second.spawn_with(&[]);
    refused(&mut second, "already in use");

    // The CLI will not send its token where a rewritten `api` file points.
    let api = node.dir.join("api");
    assert_eq!(std::fs::metadata(&api).unwrap().permissions().mode() & 0o777, 0o600);
    chmod(&api, 0o666);
    let out = rapport(&node.dir, &["status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.trim().lines().count() == 1 && err.contains("chmod go-w"), "{err}");
    chmod(&api, 0o600);
    assert!(rapport(&node.dir, &["status"]).status.success());

    // DNS rebinding: the port answers, but not to a foreign name.
    let addr = std::fs::read_to_string(&api).unwrap();
    let ask = |host: &str| {
        let mut stream = std::net::TcpStream::connect(addr.trim()).unwrap();
        write!(stream, "GET /v1/status HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    assert!(ask("rebound.example").starts_with("HTTP/1.1 421"));
    assert!(ask(addr.trim()).starts_with("HTTP/1.1 401"), "a loopback Host reaches the token check");
    node.stop();
}

/// `rapport connect` waits for the connection: a dead address fails, in one line and with a
/// non-zero exit, and a live one names the peer that answered. `GET /health` needs no token.
#[test]
fn connect_waits_for_the_connection_and_health_needs_no_token() {
    use std::io::{Read as _, Write as _};
    let root = tempfile::tempdir().unwrap();
    let (mut a, mut b) = (Daemon::init(root.path(), "a"), Daemon::init(root.path(), "b"));
    a.start();
    b.start();
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let out = rapport(&a.dir, &["connect", &format!("/ip4/127.0.0.1/tcp/{dead}")]);
    assert!(!out.status.success(), "a dead port is not a connection");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    let v = json(&a.dir, &["connect", &b.addr()]);
    assert_eq!(v["connected"], json(&b.dir, &["id"])["peer_id"]);

    let api = std::fs::read_to_string(a.dir.join("api")).unwrap();
    let mut stream = std::net::TcpStream::connect(api.trim()).unwrap();
    write!(stream, "GET /health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", api.trim()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"status":"ok"}"#), "{answer}");
    a.stop();
    b.stop();
}

/// Requests to a peer take its connections in turn. A connection that stays open but never
/// answers (the peer's old process, stopped, its TCP session alive) took every other attempt,
/// each for the whole 10 s timeout, and backoff made the wait grow: the vendor closes a
/// connection at its first timeout when the peer has another, and the messages go by that one
/// (issue #24, gap 12).
#[test]
fn a_dead_connection_beside_a_live_one_does_not_hold_messages_back() {
    let root = tempfile::tempdir().unwrap();
    let (mut vendor, mut customer) = pair(root.path());
    let key = customer.key();
    // The customer's old process stops answering, its connection left open.
    let pid = customer.pid().to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    // The same key, in a new process, connects to the vendor: two connections to one peer id.
    let mut twin = Daemon::init(root.path(), "twin");
    std::fs::copy(customer.dir.join("key"), twin.dir.join("key")).unwrap();
    twin.start();
    assert_eq!(json(&twin.dir, &["id"])["key_id"], key.as_str());
    json(&twin.dir, &["connect", &vendor.addr()]);
    // Four relationships at once: their first requests alternate between the connections.
    for n in 0..4 {
        offer(&vendor, &key, &format!("Offer {n}"));
    }
    let started = std::time::Instant::now();
    wait_for("every offer's receipt", || (json(&vendor.dir, &["status"])["outbox"] == 0).then_some(()));
    let waited = started.elapsed();
    assert_eq!(json(&twin.dir, &["relationships"]).as_array().unwrap().len(), 4, "the twin holds all four");
    let log = std::fs::read_to_string(vendor.dir.join("daemon.log")).unwrap();
    assert!(log.contains("closing that one"), "the vendor closed the connection that did not answer");
    println!("delivered in {waited:?}");
    assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    customer.stop();
    twin.stop();
    vendor.stop();
}

/// Issue #22, point 7, on a real daemon: a byte flipped in the middle of its log no longer
/// stops it. It starts, serves the other relationships, and names the damage in `status`;
/// stopped, `rapport repair` salvages every whole frame (and refuses while the daemon runs);
/// started again, it is clean.
#[test]
fn a_damaged_log_is_served_around_and_repaired() {
    use common::{offer as signed_offer, Wire};
    let root = tempfile::tempdir().unwrap();
    let mut node = Daemon::init(root.path(), "node");
    node.start();
    let vendor = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let mut wire = Wire::connect(&node, &vendor);
    let offers: Vec<_> = (1..=3u8)
        .map(|n| {
            let m = signed_offer(&vendor, wire.daemon, rapport_protocol::RelationshipId::from_bytes([n; 16]), now_ms());
            assert_eq!(wire.ask(m.bytes().to_vec()), Ok(m.id()));
            m
        })
        .collect();
    drop(wire);
    let out = rapport(&node.dir, &["repair"]);
    assert!(!out.status.success(), "repair refuses while the daemon holds the store");
    node.stop();

    // One byte in the middle of the second offer's envelope, as a disk might flip it.
    let file = node.dir.join("log/records");
    let mut data = std::fs::read(&file).unwrap();
    let needle = offers[1].bytes();
    let at = data.windows(needle.len()).position(|w| w == needle).expect("the offer is in the log");
    data[at + needle.len() / 2] ^= 0x10;
    std::fs::write(&file, &data).unwrap();

    node.start();
    let status = json(&node.dir, &["status"]);
    let damaged = rapport_protocol::RelationshipId::from_bytes([2; 16]).to_hex();
    assert_eq!(status["damage"][0]["relationships"][0], damaged.as_str(), "{status}");
    assert_eq!(status["damaged"][0]["relationship"], damaged.as_str(), "{status}");
    let ids: Vec<String> = json(&node.dir, &["relationships"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    for n in [1u8, 3] {
        assert!(ids.contains(&rapport_protocol::RelationshipId::from_bytes([n; 16]).to_hex()), "{ids:?}");
    }
    assert!(!ids.contains(&damaged), "the damaged one is set aside, not shown as if whole");
    node.stop();

    let out = rapport(&node.dir, &["repair"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("repaired: kept ") && text.contains(&damaged), "{text}");
    let kept = std::fs::read_dir(node.dir.join("log"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("records.damaged-"));
    assert_eq!(kept.count(), 1, "the damaged file is kept");
    node.start();
    let status = json(&node.dir, &["status"]);
    assert!(status.get("damage").is_none() && status.get("damaged").is_none(), "{status}");
    assert_eq!(json(&node.dir, &["relationships"]).as_array().unwrap().len(), 2);
    let out = rapport(&node.dir, &["repair"]);
    assert!(!out.status.success(), "refused while running");
    node.stop();
    let out = rapport(&node.dir, &["repair"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("nothing to repair"));
}
