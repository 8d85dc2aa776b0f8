//! End-to-end throughput and latency of signed messages between two nodes on loopback, with
//! durable receipts (issue #3). Prints a table; figures and targets are in BENCHMARKS.md.
//!
//! `cargo bench -p rapport-node --bench throughput` (set `RAPPORT_BENCH_MESSAGES` to change
//! the number of messages per measurement, and `RAPPORT_BENCH_STORE` to `sled` or `memory` to
//! measure another backend than the default log store). `RAPPORT_BENCH_ONLY=in-flight` runs
//! the node's 64-in-flight row alone, for a profiler.
//!
//! Two in-process nodes, each with its own store in a temporary directory and its own
//! swarm on 127.0.0.1, share this machine's two cores. The vendor sends `usage_report`s of
//! about 500 bytes to the customer, who verifies each, stores it, flushes (in groups) and
//! answers with a signed receipt, which the vendor verifies and stores. "Raw" is the same bytes
//! over the same transport (TCP, Noise, Yamux, request-response) echoed back by a peer that
//! neither verifies nor stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use futures::StreamExt as _;
use libp2p::core::upgrade::Version;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol};
use prometheus_client::registry::Registry;
use rapport_node::config::{Config, Network, Quota, StoreKind};
use rapport_node::engine::{self, Command, Draft, Engine, Handle};
use rapport_node::identity::Identity;
use rapport_node::metrics::Metrics;
use rapport_node::network::codec::{Codec, Envelope, Request};
use rapport_node::probe::Probe;
use rapport_node::store::{Memory, Store};
use rapport_protocol::*;
use tokio::sync::{mpsc, oneshot};

const IN_FLIGHT: usize = 64;

fn messages() -> usize {
    std::env::var("RAPPORT_BENCH_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(4_000)
}

struct Node {
    handle: Handle,
    metrics: Arc<Metrics>,
    key: KeyId,
    peer: PeerId,
    delivered: mpsc::Receiver<MessageId>,
}

fn config(dir: &std::path::Path) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        network: Network::named("local").unwrap(),
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        api: "127.0.0.1:0".parse().unwrap(),
        api_allow_remote: false,
        bootstrap: Vec::new(),
        mdns: false,
        max_connections: 64,
        max_connections_per_peer: 4,
        target_peers: 4,
        max_memory_fraction: 0.9,
        store: match std::env::var("RAPPORT_BENCH_STORE").as_deref() {
            Ok("sled") => StoreKind::Sled,
            _ => StoreKind::Log,
        },
        // The quotas are checked on every message, as in a daemon; the rate per relationship
        // is raised so that a long run into one relationship measures delivery, not the limit.
        quota: Quota { max_messages_per_minute: u32::MAX / 2, ..Quota::default() },
    }
}

async fn node(dir: &std::path::Path, seed: u8) -> Node {
    let identity = Identity::from_key(SigningKey::from_bytes(&[seed; 32])).unwrap();
    let config = config(dir);
    let store: Arc<dyn Store> = match std::env::var("RAPPORT_BENCH_STORE").as_deref() {
        Ok("memory") => Arc::new(Memory::new()),
        _ => rapport_node::daemon::open_store(&config).unwrap(),
    };
    let mut registry = Registry::default();
    let mut swarm = rapport_node::network::swarm(identity.keypair.clone(), &config, &mut registry).unwrap();
    engine::start(&mut swarm, store.as_ref(), &["/ip4/127.0.0.1/tcp/0".parse().unwrap()], &[]).unwrap();
    let metrics = Arc::new(Metrics::new(&mut registry));
    let (key, peer) = (identity.key_id(), identity.peer_id());
    let (mut engine, handle) = Engine::new(swarm, store, identity, &config, metrics.clone()).unwrap();
    let (tx, delivered) = mpsc::channel(100_000);
    engine.notify_delivered(tx);
    tokio::spawn(engine.run(futures::future::pending()));
    Node { handle, metrics, key, peer, delivered }
}

async fn listen_addr(n: &Node) -> Multiaddr {
    loop {
        let status = n.handle.ask(Command::Status).await.unwrap();
        if let Some(a) = status.listen.first() {
            return format!("{a}/p2p/{}", n.peer).parse().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn send(h: &Handle, relationship: Option<RelationshipId>, to: Option<KeyId>, body: Body) -> MessageId {
    let draft = Draft { relationship, to, body };
    let s = h.ask(|tx| Command::Send(Box::new(draft), tx)).await.unwrap().unwrap();
    MessageId::from_hex(&s.id).unwrap()
}

async fn delivered(n: &mut Node, id: MessageId) {
    loop {
        if n.delivered.recv().await.unwrap() == id {
            return;
        }
    }
}

fn now() -> u64 {
    engine::now()
}

fn report() -> Body {
    Body::UsageReport(Report {
        metric: "kWh delivered from the rooftop array to the household battery, metered at the inverter, \
                 fifteen-minute resolution, net of self-consumption and of the battery's own losses"
            .into(),
        unit: "kWh".into(),
        start: now() - 3_600_000,
        end: now() - 1,
        value: 12,
    })
}

fn terms() -> Terms {
    Terms {
        duration: 365 * 86_400,
        renewal: Renewal::OptIn,
        notice_period: 30 * 86_400,
        price: Price {
            model: PriceModel::PerUsage,
            amount: Money::new("EUR", 25),
            metric: Some("kWh".into()),
            threshold: Some(100),
        },
        data: DataTerms {
            purposes: vec![Purpose::new("dpv:ServiceProvision").unwrap()],
            categories: vec![Category::new("pd:Location").unwrap()],
        },
        portability: Portability { format: "application/json".into(), deadline: 30 * 86_400 },
        deletion_deadline: 60 * 86_400,
        exit_fee: Money::new("EUR", 0),
    }
}

/// Opens `count` active relationships: offer, proposal, acceptance, consent.
async fn relationships(v: &mut Node, c: &mut Node, count: usize) -> Vec<RelationshipId> {
    let mut out = Vec::new();
    for _ in 0..count {
        let price = Price {
            model: PriceModel::PerUsage,
            amount: Money::new("EUR", 25),
            metric: Some("kWh".into()),
            threshold: None,
        };
        let offer = Body::Offer(Offer { title: "Solar lease".into(), description: String::new(), price, terms: None });
        let draft = Draft { relationship: None, to: Some(c.key), body: offer };
        let s = v.handle.ask(|tx| Command::Send(Box::new(draft), tx)).await.unwrap().unwrap();
        let rel = RelationshipId::from_hex(&s.relationship).unwrap();
        delivered(v, MessageId::from_hex(&s.id).unwrap()).await;
        let p = send(
            &c.handle,
            Some(rel),
            None,
            Body::TermsProposal(TermsProposal { role: Role::Customer, terms: terms() }),
        )
        .await;
        delivered(c, p).await;
        let a = send(&v.handle, Some(rel), None, Body::TermsAcceptance(TermsAcceptance { proposal: p })).await;
        delivered(v, a).await;
        let grant = Body::ConsentGrant(ConsentGrant {
            purposes: vec![Purpose::new("dpv:ServiceProvision").unwrap()],
            categories: vec![Category::new("pd:Location").unwrap()],
            third_party_sharing: false,
            retention: 90 * 86_400,
            expires: None,
        });
        let g = send(&c.handle, Some(rel), None, grant).await;
        delivered(c, g).await;
        out.push(rel);
    }
    out
}

struct Stats {
    p50: Duration,
    p99: Duration,
    rate: f64,
    /// CPU time of the whole process (both nodes, or both raw peers) per message.
    cpu: Duration,
}

/// CPU time used by this process so far, user and system, from `/proc/self/stat` (in clock
/// ticks of 10 ms: Linux reports them in USER_HZ, which is 100).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn stats(mut latencies: Vec<Duration>, elapsed: Duration, cpu: Duration) -> Stats {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let n = latencies.len();
    Stats { p50: at(0.50), p99: at(0.99), rate: n as f64 / elapsed.as_secs_f64(), cpu: cpu / n as u32 }
}

/// One at a time: submit, wait for the receipt, repeat.
async fn rapport_serial(v: &mut Node, rel: RelationshipId, n: usize) -> Stats {
    let mut lat = Vec::with_capacity(n);
    let (start, cpu) = (Instant::now(), cpu_time());
    for _ in 0..n {
        let t = Instant::now();
        let id = send(&v.handle, Some(rel), None, report()).await;
        delivered(v, id).await;
        lat.push(t.elapsed());
    }
    stats(lat, start.elapsed(), cpu_time() - cpu)
}

/// `IN_FLIGHT` at once, one per relationship, until `n` are receipted.
async fn rapport_parallel(v: &mut Node, rels: &[RelationshipId], n: usize) -> Stats {
    let waiting: Arc<Mutex<HashMap<MessageId, oneshot::Sender<()>>>> = Arc::default();
    let early: Arc<Mutex<HashSet<MessageId>>> = Arc::default();
    let (mut rx, w, e) = (std::mem::replace(&mut v.delivered, mpsc::channel(1).1), waiting.clone(), early.clone());
    let dispatcher = tokio::spawn(async move {
        while let Some(id) = rx.recv().await {
            match w.lock().unwrap().remove(&id) {
                Some(tx) => {
                    let _ = tx.send(());
                }
                None => {
                    e.lock().unwrap().insert(id);
                }
            }
        }
        rx
    });
    let per = n / rels.len();
    let (start, cpu) = (Instant::now(), cpu_time());
    let mut tasks = Vec::new();
    for &rel in rels {
        let (h, waiting, early) = (v.handle.clone(), waiting.clone(), early.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for _ in 0..per {
                let t = Instant::now();
                let id = send(&h, Some(rel), None, report()).await;
                let (tx, rx) = oneshot::channel();
                let already = {
                    let mut w = waiting.lock().unwrap();
                    let already = early.lock().unwrap().remove(&id);
                    if !already {
                        w.insert(id, tx);
                    }
                    already
                };
                if !already {
                    rx.await.unwrap();
                }
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let (elapsed, cpu) = (start.elapsed(), cpu_time() - cpu);
    dispatcher.abort();
    stats(lat, elapsed, cpu)
}

/// What a peer answers each frame with.
type Answer = Box<dyn FnMut(Vec<u8>) -> Vec<u8> + Send>;

/// A peer that answers every frame with `answer(frame)` on its swarm's own task.
async fn answering_peer(mut answer: Answer) -> (PeerId, Multiaddr) {
    let protocol = StreamProtocol::new("/rapport/local/msg/1");
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::<Codec>::with_codec(
                Codec::raw(),
                [(protocol, ProtocolSupport::Full)],
                request_response::Config::default().with_max_concurrent_streams(256),
            )
        })
        .unwrap()
        .with_swarm_config(|c| {
            c.with_substream_upgrade_protocol_override(Version::V1Lazy)
                .with_idle_connection_timeout(Duration::from_secs(60))
        })
        .build();
    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap()).unwrap();
    let peer = *swarm.local_peer_id();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(request_response::Event::Message {
                message: request_response::Message::Request { request: Request::Envelope(envelope), channel, .. },
                ..
            }) = swarm.select_next_some().await
            {
                let answer = Envelope::Raw(answer(envelope.into_bytes()));
                let _ = swarm.behaviour_mut().send_response(channel, answer);
            }
        }
    });
    (peer, addr.with(libp2p::multiaddr::Protocol::P2p(peer)))
}

/// The least a durable, signed exchange can do on the same transport, with no node: the
/// recipient opens each message (strict signature check), writes it to a file zeroed ahead
/// (as the log store keeps it), flushes it, and answers with a signed receipt, all on its
/// swarm's task; the sender signs each message and verifies each receipt.
fn durable_receipts(file: std::fs::File) -> Answer {
    use std::os::unix::fs::FileExt as _;
    let key = SigningKey::from_bytes(&[3; 32]);
    let me = KeyId::from_bytes(key.verifying_key().to_bytes());
    let mut at = 0;
    Box::new(move |bytes| {
        let m = Message::open(&bytes).unwrap();
        file.write_all_at(m.bytes(), at).unwrap();
        at += m.bytes().len() as u64;
        file.sync_data().unwrap();
        let header = Header::ack(m.header().relationship, me, m.header().from, now());
        let receipt = Payload { header, body: Body::Receipt(Receipt { message: m.id() }) };
        Message::seal(receipt, &key).unwrap().bytes().to_vec()
    })
}

/// One at a time through [`durable_receipts`]: the floor under the node's latency.
async fn floor(dir: &std::path::Path, rel: RelationshipId, n: usize) -> Stats {
    let file =
        std::fs::File::options().create(true).truncate(true).read(true).write(true).open(dir.join("floor")).unwrap();
    std::io::Write::write_all(&mut &file, &vec![0; n * 1024 + (1 << 20)]).unwrap();
    file.sync_all().unwrap();
    let (peer, addr) = answering_peer(durable_receipts(file)).await;
    let mut probe = Probe::new(libp2p::identity::Keypair::generate_ed25519(), "/rapport/local/msg/1").unwrap();
    probe.connect(addr, peer).await.unwrap();
    let key = SigningKey::from_bytes(&[1; 32]);
    let from = KeyId::from_bytes(key.verifying_key().to_bytes());
    let to = KeyId::from_bytes(SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes());
    let mut lat = Vec::with_capacity(n);
    let (start, cpu) = (Instant::now(), cpu_time());
    for _ in 0..n {
        let t = Instant::now();
        let m = Message::seal(Payload { header: Header::opening(rel, from, to, now()), body: report() }, &key).unwrap();
        let answer = probe.send(peer, m.bytes().to_vec()).await.unwrap();
        let receipt = Message::open(&answer).unwrap();
        assert!(matches!(receipt.body(), Body::Receipt(r) if r.message == m.id()));
        lat.push(t.elapsed());
    }
    stats(lat, start.elapsed(), cpu_time() - cpu)
}

async fn raw(frame: &[u8], n: usize) -> (Stats, Stats) {
    let (peer, addr) = answering_peer(Box::new(|frame| frame)).await;
    let mut probe = Probe::new(libp2p::identity::Keypair::generate_ed25519(), "/rapport/local/msg/1").unwrap();
    probe.connect(addr, peer).await.unwrap();
    let mut lat = Vec::with_capacity(n);
    let (start, cpu) = (Instant::now(), cpu_time());
    for _ in 0..n {
        let t = Instant::now();
        probe.send(peer, frame.to_vec()).await.unwrap();
        lat.push(t.elapsed());
    }
    let serial = stats(lat, start.elapsed(), cpu_time() - cpu);
    let (start, cpu) = (Instant::now(), cpu_time());
    let answers = probe.send_all(peer, vec![frame.to_vec(); n], IN_FLIGHT).await;
    let (elapsed, cpu) = (start.elapsed(), cpu_time() - cpu);
    assert!(answers.iter().all(Result::is_ok));
    // Per-message latency is not tracked in the pipelined run; report the mean.
    let mean = elapsed / n as u32 * IN_FLIGHT as u32;
    let parallel = Stats { p50: mean, p99: mean, rate: n as f64 / elapsed.as_secs_f64(), cpu: cpu / n as u32 };
    (serial, parallel)
}

fn row(name: &str, s: &Stats) {
    println!(
        "| {name:<44} | {:>9.0} | {:>8.2} ms | {:>8.2} ms | {:>7.0} µs |",
        s.rate,
        s.p50.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3,
        s.cpu.as_secs_f64() * 1e6
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing. Either way,
    // run once.
    let n = messages();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut v = node(&dir.path().join("vendor"), 1).await;
        let mut c = node(&dir.path().join("customer"), 2).await;
        let addr = listen_addr(&c).await;
        v.handle.ask(|tx| Command::Connect(addr, tx)).await.unwrap().unwrap();
        let rels = relationships(&mut v, &mut c, IN_FLIGHT).await;
        if std::env::var("RAPPORT_BENCH_ONLY").as_deref() == Ok("in-flight") {
            row(
                &format!("rapport, durable receipts, {IN_FLIGHT} in flight"),
                &rapport_parallel(&mut v, &rels, n).await,
            );
            return;
        }
        // A real envelope of the size measured, for the raw transport.
        let sample = {
            let key = SigningKey::from_bytes(&[1; 32]);
            let header = Header::opening(rels[0], v.key, c.key, now());
            Message::seal(Payload { header, body: report() }, &key).unwrap().bytes().to_vec()
        };
        let (raw_serial, raw_parallel) = raw(&sample, n).await;
        let floor = floor(dir.path(), rels[0], n / 4).await;
        // Flushes of both nodes' stores, per message.
        let flushes = |v: &Node, c: &Node| v.metrics.flushes.get() + c.metrics.flushes.get();
        let before = flushes(&v, &c);
        let serial = rapport_serial(&mut v, rels[0], n / 4).await;
        let between = flushes(&v, &c);
        let parallel = rapport_parallel(&mut v, &rels, n).await;
        let per = |from: u64, to: u64, count: usize| (to - from) as f64 / count as f64;
        let flushed = (per(before, between, n / 4), per(between, flushes(&v, &c), n));
        println!(
            "\n{n} messages of {} bytes (one at a time: {}), two nodes on 127.0.0.1, 2 cores\n",
            sample.len(),
            n / 4
        );
        println!("| {:<44} | {:>9} | {:>11} | {:>11} | {:>10} |", "measurement", "msgs/s", "p50", "p99", "CPU/msg");
        println!("|{:-<46}|{:->11}|{:->13}|{:->13}|{:->12}|", "", "", "", "", "");
        row("raw request-response, one at a time", &raw_serial);
        row(&format!("raw request-response, {IN_FLIGHT} in flight (mean)"), &raw_parallel);
        row("floor: sign, verify, fdatasync, sign, verify", &floor);
        row("rapport, durable receipt, one at a time", &serial);
        row(&format!("rapport, durable receipts, {IN_FLIGHT} in flight"), &parallel);
        let ratio = |s: &Stats| s.p99.as_secs_f64() / raw_serial.p99.as_secs_f64();
        println!(
            "\np99 one at a time: {:.2}x raw (target <= 2.5x; the floor: {:.2}x); {IN_FLIGHT} in flight: {:.0} msgs/s \
             (target >= 5000)",
            ratio(&serial),
            ratio(&floor),
            parallel.rate
        );
        println!(
            "flushes per message, both nodes: {:.2} one at a time, {:.2} with {IN_FLIGHT} in flight",
            flushed.0, flushed.1
        );
    });
}
