//! `rapport testnet up|down` (spec/node.md §6): the local test network on this machine.
//!
//! `up` runs the test network's bootstrap node (with the published key and the address of
//! `networks/testnet.toml`) and N nodes, each a separate `rapport run` process with its own
//! data directory and ports on 127.0.0.1, and writes what it started to `testnet.json` in
//! the network's directory. `down` stops exactly the processes that file names, SIGTERM first
//! and SIGKILL for any that linger, and removes it. The data directories and their
//! `daemon.log` stay until the next `up`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::config::{Network, API_FILE};

/// The file in the network's directory naming the processes of a running test network.
pub const STATE_FILE: &str = "testnet.json";
/// Name of the bootstrap node's data directory.
pub const BOOTSTRAP: &str = "bootstrap";
/// Longest wait for a node to start, or to stop after SIGTERM.
pub const PATIENCE: Duration = Duration::from_secs(30);
/// Most nodes `up` starts besides the bootstrap node.
pub const MAX_NODES: usize = 100;

/// One process of the test network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// `bootstrap`, or `node-1` … `node-N`.
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// Its data directory: `rapport --data-dir DIR …` talks to it.
    pub data_dir: PathBuf,
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Its control API address, once it is up.
    pub api: Option<String>,
}

/// What `testnet.json` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// The processes, the bootstrap node first.
    pub nodes: Vec<Node>,
}

impl State {
    fn load(dir: &Path) -> anyhow::Result<Option<State>> {
        let path = dir.join(STATE_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| format!("invalid {}", path.display()))?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow!("{}: {e}", path.display())),
        }
    }

    /// Written after every process started, so that `down` can stop a network that `up`
    /// left half-way.
    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?).with_context(|| tmp.display().to_string())?;
        std::fs::rename(&tmp, &path).with_context(|| path.display().to_string())
    }
}

/// What `up` is asked for.
#[derive(Debug, Clone)]
pub struct Up {
    /// The network's directory.
    pub dir: PathBuf,
    /// Nodes besides the bootstrap node.
    pub nodes: usize,
    /// mDNS on every node; off, nodes find each other through the DHT alone.
    pub mdns: bool,
    /// The `rapport` binary the processes run.
    pub bin: PathBuf,
}

/// The default directory of the local test network.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join("rapport-testnet")
}

/// Whether `pid` is a live (not zombie) process whose command line names `data_dir`: a pid
/// recycled by another program is never signalled.
fn running(pid: u32, data_dir: &Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the parenthesised command name.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, Some("Z" | "X") | None) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let wanted = data_dir.as_os_str().as_encoded_bytes();
    cmdline.split(|b| *b == 0).any(|arg| arg == wanted)
}

fn signal(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        // It may have exited since it was seen running; then there is nothing to stop.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}

/// Waits until none of `nodes` runs, at most `patience`; returns those still running.
fn wait_gone(nodes: &[Node], patience: Duration) -> Vec<Node> {
    let start = Instant::now();
    loop {
        let left: Vec<Node> = nodes.iter().filter(|n| running(n.pid, &n.data_dir)).cloned().collect();
        if left.is_empty() || start.elapsed() >= patience {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops `nodes`: SIGTERM, then SIGKILL for any still running after [`PATIENCE`].
fn stop(nodes: &[Node]) -> anyhow::Result<()> {
    let live: Vec<Node> = nodes.iter().filter(|n| running(n.pid, &n.data_dir)).cloned().collect();
    for n in &live {
        signal(n.pid, Signal::SIGTERM);
    }
    let stubborn = wait_gone(&live, PATIENCE);
    for n in &stubborn {
        tracing::warn!(name = %n.name, pid = n.pid, "still running after SIGTERM; killing it");
        signal(n.pid, Signal::SIGKILL);
    }
    let left = wait_gone(&stubborn, Duration::from_secs(5));
    if let Some(n) = left.first() {
        bail!("{} (pid {}) does not stop", n.name, n.pid);
    }
    Ok(())
}

/// The TCP port of the first TCP listen address among `listen`.
fn tcp_port(listen: &[String]) -> Option<u16> {
    listen.iter().filter_map(|a| a.parse::<Multiaddr>().ok()).find_map(|a| {
        a.iter().find_map(|p| match p {
            Protocol::Tcp(port) => Some(port),
            _ => None,
        })
    })
}

/// The last line of a node's log, to say why it did not start.
fn last_log_line(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("daemon.log"))
        .ok()
        .and_then(|log| log.lines().rev().find(|l| !l.trim().is_empty()).map(str::to_owned))
        .unwrap_or_else(|| "no log".into())
}

/// Starts one node: `rapport --data-dir DIR run …`, in its own process group so that a
/// Ctrl-C meant for the shell does not reach it, logging to `DIR/daemon.log`.
fn spawn(up: &Up, name: &str, data_dir: &Path, listen: &[String]) -> anyhow::Result<Node> {
    let identity = crate::identity::load(data_dir)?;
    let log = std::fs::File::create(data_dir.join("daemon.log"))?;
    let mut command = Command::new(&up.bin);
    command
        .arg("--data-dir")
        .arg(data_dir)
        .arg("run")
        .arg("--listen")
        .arg(listen.join(","))
        .args(["--api", "127.0.0.1:0", "--mdns", if up.mdns { "true" } else { "false" }])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command.spawn().with_context(|| format!("cannot start {}", up.bin.display()))?;
    Ok(Node {
        name: name.into(),
        pid: child.id(),
        data_dir: data_dir.into(),
        peer_id: identity.peer_id().to_string(),
        api: None,
    })
}

/// Waits for `node` to write its `api` file, and returns the address in it.
fn wait_api(node: &Node) -> anyhow::Result<String> {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(node.data_dir.join(API_FILE)) {
            if !text.trim().is_empty() {
                return Ok(text.trim().to_owned());
            }
        }
        if !running(node.pid, &node.data_dir) {
            bail!("{} exited at start: {}", node.name, last_log_line(&node.data_dir));
        }
        if start.elapsed() >= PATIENCE {
            bail!("{} did not start within {} s: {}", node.name, PATIENCE.as_secs(), last_log_line(&node.data_dir));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `rapport testnet up`: starts the bootstrap node and `up.nodes` nodes and returns them,
/// each with its API address. On any failure it stops what it started.
pub fn up(up: &Up) -> anyhow::Result<State> {
    if up.nodes == 0 || up.nodes > MAX_NODES {
        bail!("--nodes must be between 1 and {MAX_NODES}");
    }
    let dir = &up.dir;
    if let Some(old) = State::load(dir)? {
        let live: Vec<String> =
            old.nodes.iter().filter(|n| running(n.pid, &n.data_dir)).map(|n| n.pid.to_string()).collect();
        if !live.is_empty() {
            bail!(
                "a test network is already up in {} (pids {}); run `rapport testnet down` first",
                dir.display(),
                live.join(" ")
            );
        }
    }
    let network = Network::named("testnet")?;
    let bootstrap =
        network.bootstrap_node.clone().ok_or_else(|| anyhow!("the testnet profile has no bootstrap node"))?;
    if let Some(port) = tcp_port(&bootstrap.listen) {
        TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
            anyhow!("the bootstrap node's port {port} is taken ({e}); is another test network up elsewhere?")
        })?;
    }
    // A fresh network each time: the directories of the last one go (only those `up` makes).
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == BOOTSTRAP || name.starts_with("node-") || name.starts_with(STATE_FILE) {
            let path = entry.path();
            let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            removed.with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    let key: [u8; 32] = hex::decode(&bootstrap.key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow!("the testnet bootstrap key is not 64 hex digits"))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&key);
    crate::identity::init_with(&dir.join(BOOTSTRAP), &network.name, false, Some(key))?;
    let names: Vec<String> = (1..=up.nodes).map(|i| format!("node-{i}")).collect();
    for name in &names {
        crate::identity::init(&dir.join(name), &network.name, false)?;
    }

    let mut state = State::default();
    let started = (|| -> anyhow::Result<()> {
        // The bootstrap node first, so that the others find it when they start.
        state.nodes.push(spawn(up, BOOTSTRAP, &dir.join(BOOTSTRAP), &bootstrap.listen)?);
        state.save(dir)?;
        state.nodes[0].api = Some(wait_api(&state.nodes[0])?);
        let listen = ["/ip4/127.0.0.1/tcp/0".to_owned(), "/ip4/127.0.0.1/udp/0/quic-v1".to_owned()];
        for name in &names {
            state.nodes.push(spawn(up, name, &dir.join(name), &listen)?);
            state.save(dir)?;
        }
        for node in &mut state.nodes[1..] {
            node.api = Some(wait_api(node)?);
        }
        state.save(dir)
    })();
    if let Err(e) = started {
        let _ = stop(&state.nodes);
        let _ = std::fs::remove_file(dir.join(STATE_FILE));
        return Err(e);
    }
    Ok(state)
}

/// `rapport testnet down`: stops exactly the processes `up` started in `dir` and returns
/// them.
pub fn down(dir: &Path) -> anyhow::Result<Vec<Node>> {
    let state = State::load(dir)?.ok_or_else(|| anyhow!("no test network is up in {}", dir.display()))?;
    stop(&state.nodes)?;
    let path = dir.join(STATE_FILE);
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    Ok(state.nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_live_process_naming_the_data_dir_counts_as_running() {
        let dir = tempfile::tempdir().unwrap();
        // A shell that waits, with the directory among its arguments (`$0`); the second
        // command keeps it from replacing itself with `sleep`.
        let mut child = Command::new("sh").args(["-c", "sleep 30; true"]).arg(dir.path()).spawn().unwrap();
        // Until the child has exec'd, its command line is still ours.
        let start = Instant::now();
        while !running(child.id(), dir.path()) && start.elapsed() < PATIENCE {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(running(child.id(), dir.path()));
        assert!(!running(child.id(), &dir.path().join("other")), "another data dir: not ours");
        signal(child.id(), Signal::SIGKILL);
        // Not yet reaped: a zombie, which counts as stopped.
        let node =
            Node { name: "n".into(), pid: child.id(), data_dir: dir.path().into(), peer_id: String::new(), api: None };
        assert!(wait_gone(std::slice::from_ref(&node), PATIENCE).is_empty());
        child.wait().unwrap();
        assert!(!running(child.id(), dir.path()));
    }

    #[test]
    fn down_without_a_network_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let e = down(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no test network is up"), "{e}");
    }

    #[test]
    fn the_bootstrap_port_comes_from_the_profile() {
        let node = Network::named("testnet").unwrap().bootstrap_node.unwrap();
        assert_eq!(tcp_port(&node.listen), Some(4801));
        assert_eq!(tcp_port(&["/ip4/127.0.0.1/udp/9/quic-v1".into()]), None);
    }
}
