//! The simulated network: libp2p's in-memory transport under the node's own upgrades (Noise,
//! Yamux), with partitions and loss injected at the multiplexer.
//!
//! - A **partition** gives each node a side; a connection whose ends are on different sides
//!   fails at its next use, as a path that stops carrying packets does, and a new one across
//!   the cut fails once its handshake names the remote peer.
//! - **Loss** fails a write on a message stream (`/…/msg/1`) with the scenario's probability,
//!   which resets that stream: the request or its receipt is lost and the outbox retries. The
//!   other protocols (gossip, DHT, identify, ping) are spared, so that the mesh stays up and the
//!   figures are about delivery. A Rapport connection runs over a reliable stream, so this is
//!   what loss looks like from the node: a stream that breaks, never a message silently dropped.
//!
//! Nodes that go offline need nothing here: their swarm is dropped, which closes their
//! connections and their listening port.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerBox, StreamMuxerEvent, StreamMuxerExt as _, SubstreamBox};
use libp2p::core::transport::{Boxed, DialOpts, ListenerId, MemoryTransport, TransportError, TransportEvent};
use libp2p::core::upgrade::Version;
use libp2p::core::Transport as _;
use libp2p::identity::Keypair;
use libp2p::{noise, yamux, Multiaddr, PeerId};
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

/// The fault state all nodes' transports share.
#[derive(Debug)]
pub struct Net {
    /// Node index of each peer id.
    index: RwLock<HashMap<PeerId, usize>>,
    /// Side of each node while a partition is in force.
    sides: RwLock<Option<Vec<bool>>>,
    /// Probability that a write on a message stream fails.
    loss: f64,
    seed: u64,
    streams: AtomicU64,
    resets: AtomicU64,
    connections: AtomicU64,
}

impl Net {
    /// A network without faults yet, losing writes with probability `loss`.
    pub fn new(seed: u64, loss: f64) -> Net {
        Net {
            index: RwLock::default(),
            sides: RwLock::default(),
            loss,
            seed,
            streams: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        }
    }

    /// Registers node `index` under `peer`.
    pub fn add(&self, peer: PeerId, index: usize) {
        if let Ok(mut map) = self.index.write() {
            map.insert(peer, index);
        }
    }

    /// Starts a partition (`Some(side of each node)`) or heals it (`None`).
    pub fn partition(&self, sides: Option<Vec<bool>>) {
        if let Ok(mut s) = self.sides.write() {
            *s = sides;
        }
    }

    /// Whether `a` and `b` can reach each other.
    pub fn reachable(&self, a: usize, b: usize) -> bool {
        match self.sides.read().as_deref() {
            Ok(Some(sides)) => sides.get(a) == sides.get(b),
            _ => true,
        }
    }

    /// Connections established so far (both ends count).
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Streams reset by injected loss so far.
    pub fn resets(&self) -> u64 {
        self.resets.load(Ordering::Relaxed)
    }

    fn index_of(&self, peer: &PeerId) -> Option<usize> {
        self.index.read().ok().and_then(|m| m.get(peer).copied())
    }
}

/// Node `me`'s transport: memory, Noise, Yamux, and the faults of `net`.
pub fn transport(key: &Keypair, me: usize, net: Arc<Net>) -> Result<Boxed<(PeerId, StreamMuxerBox)>, noise::Error> {
    Ok(Releasing::default()
        .upgrade(Version::V1)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .map(move |(peer, muxer), _| {
            let remote = net.index_of(&peer);
            net.connections.fetch_add(1, Ordering::Relaxed);
            let faulty = Faulty { inner: StreamMuxerBox::new(muxer), net: net.clone(), me, remote };
            (peer, StreamMuxerBox::new(faulty))
        })
        .boxed())
}

/// The memory transport, giving its ports back when it is dropped. `MemoryTransport` frees a
/// port only on `remove_listener`, so a node stopped with its swarm would otherwise hold its
/// port for ever and could not come back on the same address.
#[derive(Default)]
struct Releasing {
    inner: MemoryTransport,
    listeners: Vec<ListenerId>,
}

impl Drop for Releasing {
    fn drop(&mut self) {
        for id in std::mem::take(&mut self.listeners) {
            self.inner.remove_listener(id);
        }
    }
}

impl libp2p::core::Transport for Releasing {
    type Output = <MemoryTransport as libp2p::core::Transport>::Output;
    type Error = <MemoryTransport as libp2p::core::Transport>::Error;
    type ListenerUpgrade = <MemoryTransport as libp2p::core::Transport>::ListenerUpgrade;
    type Dial = <MemoryTransport as libp2p::core::Transport>::Dial;

    fn listen_on(&mut self, id: ListenerId, addr: Multiaddr) -> Result<(), TransportError<Self::Error>> {
        self.inner.listen_on(id, addr)?;
        self.listeners.push(id);
        Ok(())
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.listeners.retain(|l| *l != id);
        self.inner.remove_listener(id)
    }

    fn dial(&mut self, addr: Multiaddr, opts: DialOpts) -> Result<Self::Dial, TransportError<Self::Error>> {
        self.inner.dial(addr, opts)
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

fn reset(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, format!("simulated {what}"))
}

/// A connection of node `me` to node `remote`, failing while they are on different sides.
struct Faulty {
    inner: StreamMuxerBox,
    net: Arc<Net>,
    me: usize,
    remote: Option<usize>,
}

impl Faulty {
    fn cut(&self) -> bool {
        self.remote.is_some_and(|r| !self.net.reachable(self.me, r))
    }

    fn substream(&self, inner: SubstreamBox) -> Lossy {
        let n = self.net.streams.fetch_add(1, Ordering::Relaxed);
        let rng = ChaCha8Rng::seed_from_u64(self.net.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        Lossy { inner, net: self.net.clone(), rng, message: None }
    }
}

impl StreamMuxer for Faulty {
    type Substream = Lossy;
    type Error = io::Error;

    fn poll_inbound(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Lossy, io::Error>> {
        if self.cut() {
            return Poll::Ready(Err(reset("partition")));
        }
        let s = std::task::ready!(self.inner.poll_inbound_unpin(cx))?;
        Poll::Ready(Ok(self.substream(s)))
    }

    fn poll_outbound(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Lossy, io::Error>> {
        if self.cut() {
            return Poll::Ready(Err(reset("partition")));
        }
        let s = std::task::ready!(self.inner.poll_outbound_unpin(cx))?;
        Poll::Ready(Ok(self.substream(s)))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        self.inner.poll_close_unpin(cx)
    }

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<StreamMuxerEvent, io::Error>> {
        if self.cut() {
            return Poll::Ready(Err(reset("partition")));
        }
        self.inner.poll_unpin(cx)
    }
}

/// A substream; a message stream loses writes. Whether it is one shows in its first write:
/// multistream-select's header and the protocol name, from either end.
struct Lossy {
    inner: SubstreamBox,
    net: Arc<Net>,
    rng: ChaCha8Rng,
    message: Option<bool>,
}

impl AsyncRead for Lossy {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Lossy {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let message = *self.message.get_or_insert_with(|| buf.windows(5).any(|w| w == b"/msg/"));
        if message && self.net.loss > 0.0 {
            let loss = self.net.loss;
            if self.rng.gen_bool(loss) {
                self.net.resets.fetch_add(1, Ordering::Relaxed);
                return Poll::Ready(Err(reset("loss")));
            }
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
