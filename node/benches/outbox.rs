//! A vendor's outbox filling up (issue #23): offers to many distinct offline keys, sent through
//! the control API of one real daemon. Prints tables; figures and targets are in BENCHMARKS.md.
//!
//! `cargo bench -p rapport-node --bench outbox`. Knobs, all optional:
//! - `RAPPORT_BENCH_OFFERS`: offers sent (100,000), in ten blocks;
//! - `RAPPORT_BENCH_CONCURRENCY`: HTTP requests in flight at once (16);
//! - `RAPPORT_BENCH_TIMEOUT`: seconds any one request may take before it counts as failed (30);
//! - `RAPPORT_BENCH_BLOCK_LIMIT`: seconds a block may take; past it the sending stops and the
//!   table shows the partial block (120);
//! - `RAPPORT_BENCH_IDLE`: seconds the idle daemon is watched after the last offer (10).
//!
//! The daemon is the `rapport` binary of the same build (`rapport init` in a temporary data
//! directory, then `rapport run` on 127.0.0.1 with mDNS off; the `local` network has no
//! bootstrap peers). Each offer names a fresh random Ed25519 key that no node holds, so every
//! one stays in the outbox. The bench then watches the idle daemon, stops it with SIGTERM,
//! starts it again on the same directory and times how long its API takes to answer.
//! CPU figures are the daemon's own (`/proc/<pid>/stat`, all threads, user and system), in
//! percent of one core; this process, the client, shares the same two cores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use rapport_node::api::SendRequest;
use rapport_node::client::Client;
use rapport_node::config::{API_FILE, TOKEN_FILE};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_rapport");
/// The acceptance figures of issue #23.
const RATE_RATIO: f64 = 0.9;
const IDLE_CPU_PERCENT: f64 = 5.0;
const PEAK_RSS_MIB: f64 = 1024.0;
const RESTART_SECS: f64 = 2.0;
/// Longest wait for the daemon to start or to exit; a bound, not a measure.
const PATIENCE: Duration = Duration::from_secs(120);

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One `rapport run` process on a data directory.
struct Daemon {
    dir: PathBuf,
    child: Child,
}

impl Daemon {
    /// Starts the daemon without waiting for it.
    fn spawn(dir: &Path) -> Daemon {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("daemon.log")).unwrap();
        let child = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir)
            .args(["run", "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0", "--mdns", "false"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon { dir: dir.to_path_buf(), child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `GET /health` answers 200, and returns a client of the API.
    async fn ready(&mut self) -> Client {
        let start = Instant::now();
        let token = std::fs::read_to_string(self.dir.join(TOKEN_FILE)).unwrap().trim().to_owned();
        let http = reqwest::Client::new();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the daemon exited with {status}:\n{}", self.log_tail());
            }
            assert!(start.elapsed() < PATIENCE, "the daemon's API did not answer:\n{}", self.log_tail());
            // The `api` file appears once the API listens, and is removed at a clean exit.
            if let Ok(addr) = std::fs::read_to_string(self.dir.join(API_FILE)) {
                let health = http.get(format!("http://{}/health", addr.trim())).timeout(Duration::from_secs(1)).send();
                if health.await.is_ok_and(|r| r.status().is_success()) {
                    return Client::new(addr.trim(), token);
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// SIGTERM, then waits for the exit; a daemon that does not exit within [`PATIENCE`] is
    /// killed. Returns how long it took and whether it exited cleanly.
    async fn stop(mut self) -> (Duration, bool) {
        let start = Instant::now();
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        while start.elapsed() < PATIENCE {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (start.elapsed(), status.success());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        (start.elapsed(), false)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time of process `pid` so far, all threads, user and system (`/proc` counts in ticks of
/// USER_HZ, which is 100 on Linux).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`), as MiB.
fn memory_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    kib as f64 / 1024.0
}

fn percent(cpu: Duration, wall: Duration) -> f64 {
    100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9)
}

/// `count` distinct key ids (hex) of fresh random keys that no node holds.
fn offline_keys(count: usize) -> Vec<String> {
    let mut rng = rand::thread_rng();
    let mut seen = HashSet::with_capacity(count);
    let mut keys = Vec::with_capacity(count);
    while keys.len() < count {
        let key = SigningKey::generate(&mut rng).verifying_key().to_bytes();
        if seen.insert(key) {
            keys.push(hex::encode(key));
        }
    }
    keys
}

fn offer_body() -> Value {
    json!({
        "title": "Bike service",
        "description": "A yearly check of brakes, gears and chain, at your door.",
        "price": { "model": "upfront", "amount": { "currency": "EUR", "minor_units": 8900 } }
    })
}

/// One block of offers, as measured.
struct Block {
    sent: usize,
    accepted: usize,
    failed: usize,
    elapsed: Duration,
    cpu: Duration,
    rss_mib: f64,
    /// The block hit the time limit before all its offers were answered.
    cut: bool,
}

impl Block {
    fn rate(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Sends an offer to each of `keys`, `concurrency` at a time, each request bounded by
/// `timeout`; stops taking new ones at `limit` and abandons those in flight. `before` offers
/// were accepted by earlier blocks.
async fn block(
    client: &Client,
    pid: u32,
    before: usize,
    keys: Arc<[String]>,
    concurrency: usize,
    timeout: Duration,
    limit: Duration,
) -> (Block, Option<String>) {
    let next = Arc::new(AtomicUsize::new(0));
    let (start, cpu) = (Instant::now(), cpu_time(pid));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, keys, next) = (client.clone(), keys.clone(), next.clone());
        workers.spawn(async move {
            let (mut accepted, mut failed, mut error) = (0, 0, None);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(to) = keys.get(i) else { break };
                let req = SendRequest { relationship: None, to: Some(to.clone()), body: offer_body() };
                match tokio::time::timeout(timeout, client.post::<_, Value>("/v1/send/offer", &req)).await {
                    Ok(Ok(_)) => accepted += 1,
                    Ok(Err(e)) => {
                        failed += 1;
                        error.get_or_insert(e.to_string());
                    }
                    Err(_) => {
                        failed += 1;
                        error.get_or_insert(format!("no answer within {} s", timeout.as_secs()));
                    }
                }
            }
            (accepted, failed, error)
        });
    }
    let (mut accepted, mut failed, mut error, mut cut) = (0, 0, None, false);
    let deadline = tokio::time::Instant::from_std(start + limit);
    loop {
        match tokio::time::timeout_at(deadline, workers.join_next()).await {
            Ok(Some(done)) => {
                let (a, f, e) = done.unwrap();
                accepted += a;
                failed += f;
                error = error.or(e);
            }
            Ok(None) => break,
            Err(_) => {
                // The workers' counts are lost with them: what the daemon accepted is read
                // from its outbox below.
                cut = true;
                workers.abort_all();
                break;
            }
        }
    }
    let (elapsed, cpu) = (start.elapsed(), cpu_time(pid) - cpu);
    let sent = next.load(Ordering::Relaxed).min(keys.len());
    if cut {
        accepted = outbox(client).await.unwrap_or(before).saturating_sub(before);
        failed = 0;
    }
    let measured = Block { sent, accepted, failed, elapsed, cpu, rss_mib: memory_mib(pid, "VmRSS"), cut };
    (measured, error)
}

/// The outbox size the daemon reports in `GET /v1/status`.
async fn outbox(client: &Client) -> Option<usize> {
    let status = tokio::time::timeout(Duration::from_secs(30), client.get::<Value>("/v1/status")).await;
    status.ok()?.ok()?["outbox"].as_u64().map(|n| n as usize)
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "MISS"
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing. Either way,
    // run once.
    let offers = knob("RAPPORT_BENCH_OFFERS", 100_000).max(10) as usize;
    let concurrency = knob("RAPPORT_BENCH_CONCURRENCY", 16).max(1) as usize;
    let timeout = Duration::from_secs(knob("RAPPORT_BENCH_TIMEOUT", 30).max(1));
    let limit = Duration::from_secs(knob("RAPPORT_BENCH_BLOCK_LIMIT", 120).max(1));
    let idle = Duration::from_secs(knob("RAPPORT_BENCH_IDLE", 10).max(1));
    let per_block = offers / 10;
    // One thread for the client: the daemon gets the rest of the machine.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("vendor");
        let init = Command::new(BIN).arg("--data-dir").arg(&dir).arg("init").output().unwrap();
        assert!(init.status.success(), "rapport init: {}", String::from_utf8_lossy(&init.stderr));
        let keys = offline_keys(offers);

        let mut daemon = Daemon::spawn(&dir);
        let client = daemon.ready().await;
        let pid = daemon.pid();
        println!(
            "\n{offers} offers to distinct offline keys through POST /v1/send/offer, {concurrency} requests in flight, \
             one daemon on 127.0.0.1 ({BIN}), 2 cores shared with this client\n"
        );
        println!(
            "| {:>5} | {:>7} | {:>9} | {:>6} | {:>10} | {:>8} | {:>8} | {:>9} |",
            "block", "offers", "offers/s", "failed", "cumulative", "time", "CPU", "RSS"
        );
        println!("|{:->7}|{:->9}|{:->11}|{:->8}|{:->12}|{:->10}|{:->10}|{:->11}|", "", "", "", "", "", "", "", "");
        let mut blocks: Vec<Block> = Vec::new();
        let mut collapsed = None;
        for (b, chunk) in keys.chunks(per_block).enumerate() {
            let before = blocks.iter().map(|b| b.accepted).sum::<usize>();
            let (measured, error) = block(&client, pid, before, chunk.into(), concurrency, timeout, limit).await;
            let cumulative = before + measured.accepted;
            println!(
                "| {:>5} | {:>7} | {:>9.0} | {:>6} | {:>10} | {:>6.2} s | {:>6.0} % | {:>5.0} MiB |",
                format!("{}{}", b + 1, if measured.cut { "*" } else { "" }),
                measured.accepted,
                measured.rate(),
                measured.failed,
                cumulative,
                measured.elapsed.as_secs_f64(),
                percent(measured.cpu, measured.elapsed),
                measured.rss_mib
            );
            if let Some(e) = error {
                println!("  first failure in block {}: {e}", b + 1);
            }
            let cut = measured.cut;
            let sent = measured.sent;
            blocks.push(measured);
            if cut {
                collapsed = Some((b + 1, sent));
                break;
            }
        }
        let accepted: usize = blocks.iter().map(|b| b.accepted).sum();
        if let Some((b, sent)) = collapsed {
            println!(
                "\n* block {b} passed the limit of {} s ({sent} of its {per_block} offers taken; its accepted count \
                 is the outbox the daemon reports, less the earlier blocks): the sending stopped there",
                limit.as_secs()
            );
        }

        // The idle daemon, its outbox full.
        let (start, cpu) = (Instant::now(), cpu_time(pid));
        tokio::time::sleep(idle).await;
        let idle_cpu = percent(cpu_time(pid) - cpu, start.elapsed());
        let outbox_before = outbox(&client).await;
        let peak = memory_mib(pid, "VmHWM");
        let rss = memory_mib(pid, "VmRSS");
        let (stopping, clean) = daemon.stop().await;

        // The restart: from the new process to the first 200 of `GET /health`.
        let start = Instant::now();
        let mut daemon = Daemon::spawn(&dir);
        let client = daemon.ready().await;
        let restart = start.elapsed();
        let outbox_after = outbox(&client).await;
        let rss_after = memory_mib(daemon.pid(), "VmRSS");
        let (stopped_again, _) = daemon.stop().await;

        let shown = |n: Option<usize>| n.map_or("no answer".into(), |n| n.to_string());
        println!(
            "\nidle {} s after the last offer: {idle_cpu:.2} % of a core; outbox {}; RSS {rss:.0} MiB, peak (VmHWM) \
             {peak:.0} MiB",
            idle.as_secs(),
            shown(outbox_before)
        );
        println!(
            "SIGTERM: exited {} after {:.2} s; restarted: API answered after {:.3} s, outbox {} (accepted {accepted}), \
             RSS {rss_after:.0} MiB; stopped again in {:.2} s",
            if clean { "cleanly" } else { "NOT cleanly" },
            stopping.as_secs_f64(),
            restart.as_secs_f64(),
            shown(outbox_after),
            stopped_again.as_secs_f64()
        );

        let (first, last) = (blocks.first().map(Block::rate).unwrap_or(0.0), blocks.last().map(Block::rate));
        let ratio = last.unwrap_or(0.0) / first.max(1e-9);
        let complete = collapsed.is_none() && accepted == offers;
        println!(
            "\n| {:<44} | {:>18} | {:>10} | {:<6} |",
            "acceptance figure (issue #23)", "measured", "target", "status"
        );
        println!("|{:-<46}|{:->20}|{:->12}|{:-<8}|", "", "", "", "");
        let row = |name: &str, measured: String, target: &str, pass: bool| {
            println!("| {name:<44} | {measured:>18} | {target:>10} | {:<6} |", verdict(pass));
        };
        row(
            &format!("offers/s, block {} ÷ block 1", blocks.len()),
            format!("{ratio:.2} ({:.0}/{first:.0})", last.unwrap_or(0.0)),
            &format!(">= {RATE_RATIO:.2}"),
            complete && ratio >= RATE_RATIO,
        );
        row(
            "idle daemon, outbox full: CPU, % of a core",
            format!("{idle_cpu:.2} %"),
            "< 5 %",
            idle_cpu < IDLE_CPU_PERCENT,
        );
        row("peak RSS (VmHWM)", format!("{peak:.0} MiB"), "< 1024 MiB", peak < PEAK_RSS_MIB);
        row(
            "restart: API answers after",
            format!("{:.3} s", restart.as_secs_f64()),
            "< 2 s",
            restart.as_secs_f64() < RESTART_SECS,
        );
        println!(
            "\noutbox after the restart: {} of {accepted} accepted ({offers} offered){}",
            shown(outbox_after),
            if collapsed.is_some() {
                "; the run stopped early, so the rate figure is a MISS by definition"
            } else {
                ""
            }
        );
    });
}
