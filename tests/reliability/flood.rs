//! Reliability suite, flood (issue #6, scope 3), against a real daemon capped at
//! [`MAX_CONNECTIONS`] connections. While a legitimate peer sends it offers one at a time:
//!
//! - connection attempts from fresh identities, each completing TCP, Noise and Yamux, with the
//!   connections that get in held open, and TCP connections that never start the handshake;
//! - one connection opening far more request streams than the limit, holding them open;
//! - slow senders, one byte every quarter of a second;
//! - a 2 MiB message.
//!
//! The daemon must keep its established connections at the cap, its peak RSS under 512 MiB,
//! the legitimate peer's p99 latency under one second, and cut every slow and idle stream off.
//!
//! The quick version runs in CI. The long one:
//!
//! ```text
//! RAPPORT_FLOOD_CONNECTIONS=10000 RAPPORT_FLOOD_STREAMS=5000 RAPPORT_FLOOD_SLOW=256 \
//!     cargo test -p rapport-node --test reliability-flood -- --nocapture
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../../node/tests/common/mod.rs"]
mod common;

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use common::{json, key_of, now_ms, offer, verdict, Daemon, Wire};
use ed25519_dalek::SigningKey;
use futures::{AsyncReadExt as _, AsyncWriteExt as _, StreamExt as _};
use libp2p::core::muxing::{StreamMuxerBox, StreamMuxerExt as _, SubstreamBox};
use libp2p::core::transport::{DialOpts, PortUse, Transport as _};
use libp2p::core::upgrade::Version;
use libp2p::core::Endpoint;
use libp2p::identity::Keypair;
use libp2p::{noise, tcp, yamux, Multiaddr};
use rapport_node::network::codec::read_frame;
use rapport_protocol::{KeyId, RelationshipId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The victim's connection cap, set in its config.toml.
const MAX_CONNECTIONS: usize = 64;
/// Dials in flight at once.
const DIAL_CONCURRENCY: usize = 16;
/// What the daemon may use at its peak.
const RSS_LIMIT_KIB: u64 = 512 * 1024;
/// The legitimate peer's p99 latency bound.
const P99_LIMIT: Duration = Duration::from_secs(1);
/// How long a slow sender or an idle stream may wait to be cut off; the daemon's own request
/// timeout is 10 s.
const CUT_OFF: Duration = Duration::from_secs(40);
/// Stream openings a held connection queues before its callers wait.
const OPEN_QUEUE: usize = 1024;
/// How long the stream flood waits for each stream to be taken.
const OPEN_WAIT: Duration = Duration::from_secs(15);
const PROTOCOL: &str = "/rapport/local/msg/1";

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
        .unwrap_or(default)
}

/// Dials `addr` with a fresh identity: TCP, Noise, Yamux, as any libp2p peer does.
async fn dial(addr: Multiaddr) -> io::Result<StreamMuxerBox> {
    let key = Keypair::generate_ed25519();
    let mut transport = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .upgrade(Version::V1)
        .authenticate(noise::Config::new(&key).map_err(io::Error::other)?)
        .multiplex(yamux::Config::default())
        .map(|(_, muxer), _| StreamMuxerBox::new(muxer));
    let dial =
        transport.dial(addr, DialOpts { role: Endpoint::Dialer, port_use: PortUse::New }).map_err(io::Error::other)?;
    tokio::time::timeout(Duration::from_secs(20), dial).await.map_err(io::Error::other)?.map_err(io::Error::other)
}

/// A connection held open by a task that drives its muxer: it opens streams on request, drops
/// the streams the daemon opens, and ends when the daemon closes the connection.
struct Held {
    open: mpsc::Sender<oneshot::Sender<io::Result<SubstreamBox>>>,
    task: JoinHandle<()>,
}

impl Held {
    fn new(mut muxer: StreamMuxerBox) -> Held {
        let (open, mut requests) = mpsc::channel::<oneshot::Sender<io::Result<SubstreamBox>>>(OPEN_QUEUE);
        let task = tokio::spawn(async move {
            let mut waiting = VecDeque::new();
            futures::future::poll_fn(|cx| {
                while let Poll::Ready(Some(request)) = requests.poll_recv(cx) {
                    waiting.push_back(request);
                }
                while !waiting.is_empty() {
                    let Poll::Ready(stream) = muxer.poll_outbound_unpin(cx) else { break };
                    let _ = waiting.pop_front().unwrap().send(stream);
                }
                loop {
                    match muxer.poll_inbound_unpin(cx) {
                        Poll::Ready(Ok(stream)) => drop(stream),
                        Poll::Ready(Err(_)) => return Poll::Ready(()),
                        Poll::Pending => break,
                    }
                }
                loop {
                    match muxer.poll_unpin(cx) {
                        Poll::Ready(Ok(_)) => {}
                        Poll::Ready(Err(_)) => return Poll::Ready(()),
                        Poll::Pending => return Poll::Pending,
                    }
                }
            })
            .await;
        });
        Held { open, task }
    }

    /// Whether the daemon still keeps the connection.
    fn open(&self) -> bool {
        !self.task.is_finished()
    }

    /// A new stream with the message protocol negotiated (multistream-select 1.0).
    async fn stream(&self) -> io::Result<SubstreamBox> {
        let (tx, rx) = oneshot::channel();
        self.open.send(tx).await.map_err(|_| io::Error::other("connection closed"))?;
        let mut stream = rx.await.map_err(|_| io::Error::other("connection closed"))??;
        let lines = ["/multistream/1.0.0\n".to_owned(), format!("{PROTOCOL}\n")];
        let mut out = Vec::new();
        for line in &lines {
            out.push(line.len() as u8);
            out.extend_from_slice(line.as_bytes());
        }
        stream.write_all(&out).await?;
        stream.flush().await?;
        for line in &lines {
            let mut len = [0u8; 1];
            stream.read_exact(&mut len).await?;
            let mut echo = vec![0u8; usize::from(len[0])];
            stream.read_exact(&mut echo).await?;
            if echo != line.as_bytes() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "protocol refused"));
            }
        }
        Ok(stream)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits until the daemon ends `stream` (end of file, reset or close), reading whatever comes.
async fn ended(mut stream: SubstreamBox) -> Instant {
    let mut buf = [0u8; 256];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
    Instant::now()
}

/// Latencies of the legitimate peer's offers, sent one at a time until `stop`.
fn legitimate(victim: &Daemon, key: SigningKey, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Duration>> {
    let mut wire = Wire::connect(victim, &key);
    let daemon: KeyId = wire.daemon;
    std::thread::spawn(move || {
        let mut latencies = Vec::new();
        let mut n: u64 = 0;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let mut rel = [0u8; 16];
            rel[..8].copy_from_slice(&n.to_be_bytes());
            let message = offer(&key, daemon, RelationshipId::from_bytes(rel), now_ms());
            let sent = Instant::now();
            let answer = wire.ask(message.bytes().to_vec());
            latencies.push(sent.elapsed());
            assert_eq!(answer, Ok(message.id()), "the legitimate peer's offer {n} is stored");
            std::thread::sleep(Duration::from_millis(20));
        }
        latencies
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[test]
fn a_flooded_daemon_keeps_its_limits_and_serves_its_peers() {
    let connections = setting("RAPPORT_FLOOD_CONNECTIONS", 1_000);
    let half_open = setting("RAPPORT_FLOOD_HALF_OPEN", 200);
    let streams = setting("RAPPORT_FLOOD_STREAMS", 1_000);
    let slow = setting("RAPPORT_FLOOD_SLOW", 32);
    let started = Instant::now();

    let root = tempfile::tempdir().unwrap();
    let mut victim = Daemon::init(root.path(), "victim");
    victim.configure(&format!("max_connections = {MAX_CONNECTIONS}"));
    // The legitimate peer opens a relationship every 20 ms and the victim never answers: a
    // stranger's quotas (tested in the hostile suite) would refuse it after 16.
    victim.configure("max_unanswered_per_key = 1000000\nmax_unanswered_per_peer = 1000000");
    victim.start();
    let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", victim.port).parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    let peer = Daemon::init(root.path(), "peer");
    let stop = Arc::new(AtomicBool::new(false));
    let legit = legitimate(&victim, key_of(&peer), Arc::clone(&stop));

    // Peers the daemon counts as connected, sampled while it is flooded.
    let most_peers = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sampler = {
        let (dir, most, stop) = (victim.dir.clone(), Arc::clone(&most_peers), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let status = json(&dir, &["status"]);
                most.fetch_max(status["peers"].as_u64().unwrap() as usize, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    eprintln!("flood: phase 1: connection attempts");
    // 1. Connection attempts, the connections that get in held open.
    let (held, refused) = runtime.block_on(async {
        let results: Vec<io::Result<StreamMuxerBox>> = futures::stream::iter(0..connections)
            .map(|_| dial(addr.clone()))
            .buffer_unordered(DIAL_CONCURRENCY)
            .collect()
            .await;
        let refused = results.iter().filter(|r| r.is_err()).count();
        let held: Vec<Held> = results.into_iter().filter_map(Result::ok).map(Held::new).collect();
        (held, refused)
    });
    std::thread::sleep(Duration::from_secs(1));
    let kept = held.iter().filter(|h| h.open()).count();
    assert!(kept < MAX_CONNECTIONS, "{kept} flood connections kept beside the legitimate one; cap {MAX_CONNECTIONS}");
    drop(held);

    eprintln!("flood: phase 2: half-open, streams, slow senders, 2 MiB");
    // 2. TCP connections that never start the handshake, a stream flood, slow senders and a
    //    2 MiB message, all at once.
    let report = runtime.block_on(async {
        let mut sockets = Vec::new();
        // From another loopback address than the peers that follow: the daemon gives each
        // address a few handshake slots only, so that these cannot lock the others out.
        for _ in 0..half_open {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
            sockets.push(socket.connect(([127, 0, 0, 1], victim.port).into()).await.unwrap());
        }
        let half_open_cut = tokio::spawn(async move {
            let t0 = Instant::now();
            let mut last = Duration::ZERO;
            for mut socket in sockets {
                let mut buf = [0u8; 64];
                loop {
                    match tokio::time::timeout(CUT_OFF, tokio::io::AsyncReadExt::read(&mut socket, &mut buf)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => break,
                        Ok(Ok(_)) => {}
                        Err(_) => panic!("a half-open connection was left open for {CUT_OFF:?}"),
                    }
                }
                last = last.max(t0.elapsed());
            }
            last
        });

        eprintln!("flood: stream flood");
        // The stream flood, on one connection.
        let flooder = Held::new(dial(addr.clone()).await.unwrap());
        let t0 = Instant::now();
        let open = || async {
            match tokio::time::timeout(OPEN_WAIT, flooder.stream()).await {
                Ok(result) => result,
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "the daemon never took the stream")),
            }
        };
        let opened: Vec<io::Result<SubstreamBox>> =
            futures::stream::iter(0..streams).map(|_| open()).buffer_unordered(streams).collect().await;
        let accepted = opened.iter().filter(|s| s.is_ok()).count();
        let idle_cut = tokio::spawn(async move {
            let ends = futures::future::join_all(opened.into_iter().filter_map(Result::ok).map(ended));
            tokio::time::timeout(CUT_OFF, ends).await.expect("idle streams cut off").into_iter().max()
        });

        eprintln!("flood: slow senders");
        // Slow senders, on a connection of their own: a frame head announcing 500 bytes, then
        // one byte every 250 ms until the daemon cuts the stream off.
        let slowpoke = Held::new(dial(addr.clone()).await.unwrap());
        let mut slow_streams = Vec::new();
        for _ in 0..slow {
            slow_streams.push(slowpoke.stream().await.unwrap());
        }
        let slow_cut = tokio::spawn(async move {
            let trickles = slow_streams.into_iter().map(|mut s| async move {
                let started = Instant::now();
                if s.write_all(&[0xf4, 0x03]).await.is_err() {
                    return started.elapsed();
                }
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let wrote = s.write_all(&[0]).await.and(s.flush().await);
                    if wrote.is_err() || started.elapsed() > CUT_OFF {
                        return started.elapsed();
                    }
                }
            });
            futures::future::join_all(trickles).await.into_iter().max().unwrap_or_default()
        });

        eprintln!("flood: 2 MiB message");
        // A 2 MiB message: the daemon reads the frame's head, answers, and reads no further.
        let big = Held::new(dial(addr.clone()).await.unwrap());
        let stream = big.stream().await.unwrap();
        let (mut reader, mut writer) = stream.split();
        let payload = vec![0xa5u8; 2 << 20];
        let write = async {
            let mut head = Vec::new();
            let mut n = payload.len();
            while n >= 0x80 {
                head.push((n as u8 & 0x7f) | 0x80);
                n >>= 7;
            }
            head.push(n as u8);
            let _ = writer.write_all(&head).await;
            let _ = writer.write_all(&payload).await;
        };
        // Once answered, the writer stops: the daemon reads no more of the payload.
        let exchange = async {
            let reading = Box::pin(read_frame(&mut reader));
            match futures::future::select(Box::pin(write), reading).await {
                futures::future::Either::Left((_, reading)) => reading.await,
                futures::future::Either::Right((answer, _)) => answer,
            }
        };
        let answer = tokio::time::timeout(CUT_OFF, exchange).await.expect("an answer in time");
        let answer = answer.expect("the daemon answers a 2 MiB message");

        eprintln!("flood: waiting for the cut-offs");
        let idle_cut = idle_cut.await.unwrap().map(|at| at - t0).unwrap_or_default();
        // Past the multiplexer's stream limit the daemon closes the whole connection.
        let flooder_closed = !flooder.open();
        (accepted, flooder_closed, idle_cut, slow_cut.await.unwrap(), half_open_cut.await.unwrap(), answer)
    });
    let (accepted, flooder_closed, idle_cut, slow_cut, half_open_cut, big_answer) = report;
    let daemon_key = KeyId::from_hex(&victim.key()).unwrap();
    assert_eq!(verdict(&big_answer, daemon_key), Err("too-large".to_owned()));
    assert!(slow_cut < CUT_OFF, "slow senders were cut off after {slow_cut:?}");

    stop.store(true, Ordering::SeqCst);
    let mut latencies = legit.join().unwrap();
    sampler.join().unwrap();
    latencies.sort();
    let (p50, p99, max) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99), latencies[latencies.len() - 1]);
    assert!(p99 < P99_LIMIT, "the legitimate peer's p99 latency was {p99:?}");
    let most = most_peers.load(Ordering::SeqCst);
    assert!(most <= MAX_CONNECTIONS, "{most} peers connected at once; cap {MAX_CONNECTIONS}");
    let peak = victim.peak_rss_kib();
    assert!(peak < RSS_LIMIT_KIB, "peak RSS {peak} KiB");
    // Nothing from the flood was stored: only the legitimate peer's offers.
    let stored = json(&victim.dir, &["relationships"]).as_array().unwrap().len();
    assert_eq!(stored, latencies.len(), "one relationship per legitimate offer, none from the flood");
    victim.stop();

    println!("flood, cap {MAX_CONNECTIONS} connections:");
    println!("| figure | value |");
    println!("|---|---:|");
    println!("| connection attempts (fresh identity, TCP + Noise + Yamux) | {connections} |");
    println!("| … refused during the handshake (8 at once per address, 64 in all) | {refused} |");
    println!("| … still open 1 s later (held by the flood) | {kept} |");
    println!("| most peers connected at once (sampled every 100 ms) | {most} |");
    println!("| half-open TCP connections, all closed by the daemon within | {:.1} s |", half_open_cut.as_secs_f64());
    println!("| streams opened on one connection / protocol negotiated | {streams} / {accepted} |");
    println!("| … the daemon closed that connection | {} |", if flooder_closed { "yes" } else { "no" });
    println!("| idle streams, all ended by the daemon within | {:.1} s |", idle_cut.as_secs_f64());
    println!("| slow senders (1 byte / 250 ms), all cut off within | {:.1} s |", slow_cut.as_secs_f64());
    println!("| 2 MiB message | too-large |");
    println!("| legitimate offers during the flood | {} |", latencies.len());
    println!(
        "| legitimate latency p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    println!("| daemon peak RSS | {:.1} MiB |", peak as f64 / 1024.0);
    println!("| wall time | {:.1} s |", started.elapsed().as_secs_f64());
}
