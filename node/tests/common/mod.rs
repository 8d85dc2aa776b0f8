//! The harness shared by the daemon tests: real `rapport` processes in temporary data
//! directories on 127.0.0.1.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use libp2p::PeerId;
use rapport_node::probe::Probe;
use rapport_protocol::{
    Body, Header, KeyId, Message, MessageId, Money, Offer, Payload, Price, PriceModel, RelationshipId, Timestamp,
};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_rapport");
/// Longest wait for anything the daemons do.
const PATIENCE: Duration = Duration::from_secs(30);

pub fn rapport(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN).arg("--data-dir").arg(dir).args(args).output().unwrap()
}

/// Runs a CLI command with `--json`, asserting success, and parses its output.
pub fn json(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = rapport(dir, &all);
    assert!(out.status.success(), "rapport {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Time between two polls of [`wait_for`].
const POLL: Duration = Duration::from_millis(50);

/// Polls `check` until it returns `Some`, at most [`PATIENCE`] ÷ [`POLL`] times; a bound on
/// waiting, not a measure of speed.
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    for _ in 0..PATIENCE.as_millis() / POLL.as_millis() {
        if let Some(v) = check() {
            return v;
        }
        std::thread::sleep(POLL);
    }
    panic!("gave up waiting for {what}");
}

pub struct Daemon {
    pub dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl Daemon {
    pub fn init(root: &Path, name: &str) -> Daemon {
        let dir = root.join(name);
        let out = rapport(&dir, &["init"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Daemon { dir, port, child: None }
    }

    pub fn start(&mut self) {
        self.start_with(&[]);
    }

    /// Starts the daemon with `extra` arguments after `run`'s usual ones, and waits until its
    /// API answers.
    pub fn start_with(&mut self, extra: &[&str]) {
        self.spawn_with(extra);
        self.wait_ready();
    }

    /// Starts the daemon without waiting for it: it may still be opening its store.
    pub fn spawn_with(&mut self, extra: &[&str]) {
        let listen = format!("/ip4/127.0.0.1/tcp/{}", self.port);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("daemon.log")).unwrap();
        // A test that names its own API address replaces the loopback default.
        let api: &[&str] = if extra.contains(&"--api") { &[] } else { &["--api", "127.0.0.1:0"] };
        let child = Command::new(BIN)
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["run", "--listen", &listen, "--mdns", "false"])
            .args(api)
            .args(extra)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or("info".into()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Waits until the daemon's API answers. After a SIGKILL the `api` file of the killed
    /// process is still there, naming a dead port, until the new process replaces it.
    pub fn wait_ready(&mut self) {
        let api = self.dir.join("api");
        wait_for("the api file", || api.exists().then_some(()));
        wait_for("the API", || {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited with {status}; see {}", self.dir.join("daemon.log").display());
            }
            rapport(&self.dir, &["status"]).status.success().then_some(())
        });
    }

    /// Waits for a daemon that should refuse to run to exit, and returns its status and what it
    /// wrote to its log. A daemon that keeps running fails the wait (and is killed on drop).
    pub fn wait_exit(&mut self) -> (std::process::ExitStatus, String) {
        let child = self.child.as_mut().unwrap();
        let status = wait_for("the daemon to exit", || child.try_wait().unwrap());
        self.child = None;
        (status, std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default())
    }

    /// The running daemon's process id.
    /// Appends `settings` (TOML lines) to the node's `config.toml`, for its next start.
    pub fn configure(&self, settings: &str) {
        let path = self.dir.join("config.toml");
        let text = std::fs::read_to_string(&path).unwrap() + "\n" + settings + "\n";
        std::fs::write(&path, text).unwrap();
    }

    /// The running daemon's peak resident set (VmHWM), KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL: the process ends wherever it is, with no chance to flush or clean up.
    pub fn kill(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(&mut self) {
        self.stop_with("TERM");
    }

    /// `signal` (TERM or INT), then wait for a clean exit: status 0, `api` file removed.
    pub fn stop_with(&mut self, signal: &str) {
        let mut child = self.child.take().unwrap();
        Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().unwrap();
        let status = wait_for("the daemon to exit", || child.try_wait().unwrap());
        assert!(status.success(), "daemon exited with {status} after SIG{signal}");
        assert!(!self.dir.join("api").exists(), "the api file is removed on exit");
    }

    pub fn addr(&self) -> String {
        let id = json(&self.dir, &["id"]);
        format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", self.port, id["peer_id"].as_str().unwrap())
    }

    pub fn key(&self) -> String {
        json(&self.dir, &["id"])["key_id"].as_str().unwrap().to_owned()
    }

    pub fn log_ids(&self, rel: &str) -> Vec<String> {
        let log = json(&self.dir, &["log", rel]);
        log.as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
    }
}

/// A vendor and a customer, both running, the vendor connected to the customer.
pub fn pair(root: &Path) -> (Daemon, Daemon) {
    let mut vendor = Daemon::init(root, "vendor");
    let mut customer = Daemon::init(root, "customer");
    vendor.start();
    customer.start();
    json(&vendor.dir, &["connect", &customer.addr()]);
    wait_for("the connection", || (json(&vendor.dir, &["peers"]).as_array().unwrap().len() == 1).then_some(()));
    (vendor, customer)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `args` on `node` and waits until its outbox is empty, i.e. the other side holds the
/// message and its receipt came back. Returns the new message's id.
pub fn act(node: &Daemon, args: &[&str]) -> String {
    let v = json(&node.dir, args);
    wait_for("the receipt", || (json(&node.dir, &["status"])["outbox"] == 0).then_some(()));
    v["id"].as_str().unwrap().to_owned()
}

/// Wall-clock time, Unix ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Opens a daemon's answer on the wire, checks who signed it, and returns its verdict:
/// `Ok(id)` for a receipt naming `id`, `Err(code)` for a problem report.
pub fn verdict(answer: &[u8], daemon: KeyId) -> Result<MessageId, String> {
    let m = Message::open(answer).expect("every answer is a valid signed envelope");
    assert_eq!(m.header().from, daemon, "signed by the daemon");
    match m.body() {
        Body::Receipt(r) => Ok(r.message),
        Body::ProblemReport(p) => Err(p.code.clone()),
        other => panic!("unexpected answer {}", other.kind()),
    }
}

/// An upfront offer of `key` to `to`, opening `rel`, created at `created_at`.
pub fn offer(key: &SigningKey, to: KeyId, rel: RelationshipId, created_at: Timestamp) -> Message {
    let header = Header::opening(rel, KeyId::from_bytes(key.verifying_key().to_bytes()), to, created_at);
    let price = Price { model: PriceModel::Upfront, amount: Money::new("EUR", 100), metric: None, threshold: None };
    let body = Body::Offer(Offer { title: "Bike service".into(), description: String::new(), price, terms: None });
    Message::seal(Payload { header, body }, key).unwrap()
}

/// The signing key in a node's data directory.
pub fn key_of(node: &Daemon) -> SigningKey {
    let hex_key = std::fs::read_to_string(node.dir.join("key")).unwrap();
    SigningKey::from_bytes(&hex::decode(hex_key.trim()).unwrap().try_into().unwrap())
}

/// A raw peer with `key`'s identity, speaking only the message protocol, connected to a
/// running daemon.
pub struct Wire {
    pub runtime: tokio::runtime::Runtime,
    pub probe: Probe,
    /// The daemon's peer id.
    pub peer: PeerId,
    /// The daemon's key id: every answer must be signed with it.
    pub daemon: KeyId,
}

impl Wire {
    pub fn connect(node: &Daemon, key: &SigningKey) -> Wire {
        let id = json(&node.dir, &["id"]);
        let daemon = KeyId::from_hex(id["key_id"].as_str().unwrap()).unwrap();
        let peer: PeerId = id["peer_id"].as_str().unwrap().parse().unwrap();
        let keypair = libp2p::identity::Keypair::ed25519_from_bytes(key.to_bytes()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut probe = Probe::new(keypair, "/rapport/local/msg/1").unwrap();
        runtime.block_on(probe.connect(node.addr().parse().unwrap(), peer)).unwrap();
        Wire { runtime, probe, peer, daemon }
    }

    /// Sends one frame and returns the daemon's answer.
    pub fn send(&mut self, frame: Vec<u8>) -> Vec<u8> {
        self.runtime.block_on(self.probe.send(self.peer, frame)).unwrap()
    }

    /// Sends one frame and returns the [`verdict`] of the answer.
    pub fn ask(&mut self, frame: Vec<u8>) -> Result<MessageId, String> {
        let answer = self.send(frame);
        verdict(&answer, self.daemon)
    }
}
