//! A minimal peer that speaks only the message protocol (spec §11.2): it sends raw frames and
//! returns the raw answers. Tests use it to send what a well-behaved node never would, and the
//! benchmark to drive a daemon at a chosen number of messages in flight.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt as _;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};

use crate::network::codec::{Codec, Envelope, Request};
use crate::network::{MAX_CONCURRENT_STREAMS, REQUEST_TIMEOUT};

/// Why the probe failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The swarm could not be built or could not dial.
    #[error("transport: {0}")]
    Transport(String),
    /// The peer gave no answer (stream refused, reset, or timed out).
    #[error("no answer: {0}")]
    NoAnswer(String),
}

/// A peer that sends frames and collects answers.
pub struct Probe {
    swarm: Swarm<request_response::Behaviour<Codec>>,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe").field("peer_id", self.swarm.local_peer_id()).finish()
    }
}

impl Probe {
    /// A probe with identity `keypair` speaking `protocol` (e.g. `/rapport/local/msg/1`).
    pub fn new(keypair: Keypair, protocol: &str) -> Result<Probe, Error> {
        let protocol =
            StreamProtocol::try_from_owned(protocol.to_owned()).map_err(|e| Error::Transport(e.to_string()))?;
        let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
            .map_err(|e| Error::Transport(e.to_string()))?
            .with_behaviour(|_| {
                request_response::Behaviour::with_codec(
                    Codec::raw(),
                    [(protocol, ProtocolSupport::Outbound)],
                    request_response::Config::default()
                        .with_request_timeout(REQUEST_TIMEOUT)
                        .with_max_concurrent_streams(MAX_CONCURRENT_STREAMS),
                )
            })
            .map_err(|e| Error::Transport(e.to_string()))?
            // As the node does (spec §11.2): the frame follows the protocol proposal at once.
            .with_swarm_config(|c| {
                c.with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
                    .with_idle_connection_timeout(Duration::from_secs(60))
            })
            .build();
        Ok(Probe { swarm })
    }

    /// Dials `addr` (which names the peer with `/p2p/…`) and waits for the connection.
    pub async fn connect(&mut self, addr: Multiaddr, peer: PeerId) -> Result<(), Error> {
        self.swarm.dial(addr).map_err(|e| Error::Transport(e.to_string()))?;
        loop {
            match self.swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == peer => return Ok(()),
                SwarmEvent::OutgoingConnectionError { error, .. } => return Err(Error::Transport(error.to_string())),
                _ => {}
            }
        }
    }

    /// Sends each frame to `peer`, at most `in_flight` at a time, and returns the answers in
    /// the order of `frames`.
    pub async fn send_all(
        &mut self,
        peer: PeerId,
        frames: Vec<Vec<u8>>,
        in_flight: usize,
    ) -> Vec<Result<Vec<u8>, Error>> {
        let total = frames.len();
        let mut answers: Vec<Option<Result<Vec<u8>, Error>>> = (0..total).map(|_| None).collect();
        let mut pending: HashMap<OutboundRequestId, usize> = HashMap::new();
        let mut next = frames.into_iter().enumerate();
        let mut done = 0;
        while done < total {
            while pending.len() < in_flight.max(1) {
                let Some((i, frame)) = next.next() else { break };
                let id = self.swarm.behaviour_mut().send_request(&peer, Request::Envelope(Envelope::Raw(frame)));
                pending.insert(id, i);
            }
            let (id, answer) = match self.swarm.select_next_some().await {
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { request_id, response },
                    ..
                }) => (request_id, Ok(response.into_bytes())),
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure { request_id, error, .. }) => {
                    (request_id, Err(Error::NoAnswer(error.to_string())))
                }
                _ => continue,
            };
            if let Some(i) = pending.remove(&id) {
                answers[i] = Some(answer);
                done += 1;
            }
        }
        answers.into_iter().map(|a| a.unwrap_or_else(|| Err(Error::NoAnswer("lost".into())))).collect()
    }

    /// Announces a frame of `len` bytes without sending it, and returns the answer.
    pub async fn announce(&mut self, peer: PeerId, len: usize) -> Result<Vec<u8>, Error> {
        let id = self.swarm.behaviour_mut().send_request(&peer, Request::TooLarge(len));
        loop {
            match self.swarm.select_next_some().await {
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { request_id, response },
                    ..
                }) if request_id == id => return Ok(response.into_bytes()),
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure { request_id, error, .. })
                    if request_id == id =>
                {
                    return Err(Error::NoAnswer(error.to_string()))
                }
                _ => {}
            }
        }
    }

    /// Sends one frame and returns the answer.
    pub async fn send(&mut self, peer: PeerId, frame: Vec<u8>) -> Result<Vec<u8>, Error> {
        self.send_all(peer, vec![frame], 1).await.pop().unwrap_or_else(|| Err(Error::NoAnswer("lost".into())))
    }
}
