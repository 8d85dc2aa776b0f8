//! Reliability suite, access (issue #6, scope 4), with a real daemon: the control API answers
//! 401 on every documented route without the right token, it binds to loopback unless told
//! otherwise, and the daemon refuses to start while its key or its token file is open to
//! others. `cargo test -p rapport-node --test reliability-access -- --nocapture` prints the
//! figures; RELIABILITY.md records them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../../node/tests/common/mod.rs"]
mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use common::{wait_for, Daemon, BIN};
use rapport_node::client::{self, Client};
use serde_json::Value;

/// `rapport run` on `dir` with the default API address; returns its exit status and stderr if
/// it exits, or `None` once its `api` file appears (it is then stopped).
fn run_default(dir: &std::path::Path) -> (bool, String, Option<String>) {
    let log = dir.join("run.log");
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(["run", "--listen", "/ip4/127.0.0.1/tcp/0", "--mdns", "false"])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let api = dir.join("api");
    let outcome = wait_for("the daemon to start or to refuse", || {
        if let Some(status) = child.try_wait().unwrap() {
            return Some((status.success(), None));
        }
        std::fs::read_to_string(&api).ok().filter(|a| !a.trim().is_empty()).map(|a| (true, Some(a.trim().to_owned())))
    });
    if outcome.1.is_some() {
        Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
        child.wait().unwrap();
    }
    (outcome.0, std::fs::read_to_string(&log).unwrap(), outcome.1)
}

#[test]
fn the_api_wants_its_token_listens_on_loopback_and_secrets_must_be_private() {
    let root = tempfile::tempdir().unwrap();
    let mut rows: Vec<(String, usize, String)> = Vec::new();

    // Secrets open to others: the daemon refuses to start, and says which file and what to do.
    let node = Daemon::init(root.path(), "node");
    for (file, mode) in [("key", 0o644), ("key", 0o640), ("key", 0o604), ("api-token", 0o644), ("api-token", 0o660)] {
        let path = node.dir.join(file);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let (ok, stderr, api) = run_default(&node.dir);
        assert!(!ok && api.is_none(), "started with {file} at {mode:o}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(file) && stderr.contains("chmod 600"), "{stderr}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    rows.push((
        "start with key or token open to group or others".into(),
        5,
        "refused, one line naming the file".into(),
    ));

    // With private secrets and no --api, the API listens on loopback.
    let (ok, _, api) = run_default(&node.dir);
    let api = api.expect("the daemon started");
    assert!(ok);
    let addr: std::net::SocketAddr = api.parse().unwrap();
    assert!(addr.ip().is_loopback(), "the API listens on {addr}");
    rows.push(("start with no --api".into(), 1, format!("API on {addr}")));

    // Every documented route, with no token and with a wrong one: 401.
    let mut node = node;
    node.start();
    let api = std::fs::read_to_string(node.dir.join("api")).unwrap();
    let token = std::fs::read_to_string(node.dir.join("api-token")).unwrap().trim().to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let doc: Value = serde_json::from_str(rapport_node::api::OPENAPI).unwrap();
    let mut wrong_tokens = vec![String::new(), "0".repeat(64), token[..63].to_owned(), format!("{token}0")];
    // The right token with one digit changed.
    let flipped = if token.starts_with('0') { "1" } else { "0" };
    wrong_tokens.push(format!("{flipped}{}", &token[1..]));
    let mut attempts = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let path = path.replace("{id}", &"ab".repeat(16)).replace("{kind}", "offer").replace("{key}", &"cd".repeat(32));
        for (method, op) in ops.as_object().unwrap() {
            // A route documented without security (`/health`) asks for no token, and says only
            // that the node is alive.
            if op["security"] == serde_json::json!([]) {
                let r = runtime.block_on(Client::new(api.trim(), String::new()).get::<Value>(&path));
                assert_eq!(r.unwrap(), serde_json::json!({ "status": "ok" }), "{path}");
                continue;
            }
            for wrong in &wrong_tokens {
                let client = Client::new(api.trim(), wrong.clone());
                let r = match method.as_str() {
                    "get" => runtime.block_on(client.get::<Value>(&path)),
                    "put" => runtime.block_on(client.put::<Value>(&path)),
                    "delete" => runtime.block_on(client.delete::<Value>(&path)),
                    _ => runtime.block_on(client.post::<_, Value>(&path, &serde_json::json!({}))),
                };
                assert!(matches!(r, Err(client::Error::Refused { status: 401, .. })), "{method} {path}: {r:?}");
                attempts += 1;
            }
        }
    }
    let right = Client::new(api.trim(), token);
    assert!(runtime.block_on(right.get::<Value>("/v1/status")).is_ok(), "the right token is let in");
    rows.push((
        format!(
            "every documented route × {} wrong tokens (none, zeros, short, long, one digit off)",
            wrong_tokens.len()
        ),
        attempts,
        "401".into(),
    ));
    node.stop();

    println!("\n| case | attempts | outcome |\n|---|---:|---|");
    for (case, n, outcome) in &rows {
        println!("| {case} | {n} | {outcome} |");
    }
}
