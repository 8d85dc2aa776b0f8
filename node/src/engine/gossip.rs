//! Public offers and intents heard on the gossip topics: each is checked on the worker pool,
//! within [`MAX_VERIFYING`](super::MAX_VERIFYING) at once, and gossipsub forwards only what the
//! check accepts (spec/node.md §2).

use libp2p::{gossipsub, PeerId};
use rapport_protocol::{Body, Message};
use tracing::debug;

use super::Engine;

/// The outcome of a signature check on the worker pool.
pub(super) enum Checked {
    /// A public message heard on a gossip topic: gossipsub holds it, unforwarded, until the
    /// engine reports on it.
    Public {
        opened: Result<Message, rapport_protocol::envelope::Error>,
        /// Gossipsub's id of it.
        id: gossipsub::MessageId,
        /// The peer it came from.
        source: PeerId,
    },
}

impl Engine {
    /// Checks `bytes` on the worker pool, if a worker is free; whether it will be checked.
    pub(super) fn check(
        &mut self,
        make: impl FnOnce(Result<Message, rapport_protocol::envelope::Error>) -> Checked + Send + 'static,
        bytes: Vec<u8>,
    ) -> bool {
        // The permit is taken before anything is spawned, so a flood holds at most
        // MAX_VERIFYING messages in memory; gossip is best effort, and what does not fit is
        // dropped and counted (gossipsub's own dedup and the publisher's later messages make up
        // for it).
        let Ok(permit) = self.verifying.clone().try_acquire_owned() else {
            self.metrics.gossip_dropped.inc();
            debug!("verification workers full; gossiped message dropped");
            return false;
        };
        let tx = self.checked_tx.clone();
        tokio::spawn(async move {
            let checked = tokio::task::spawn_blocking(move || make(Message::open(&bytes))).await;
            if let Ok(checked) = checked {
                let _ = tx.send(checked).await;
            }
            drop(permit);
        });
        true
    }

    /// Tells gossipsub what the check of a message it holds found: only accepted messages are
    /// forwarded to the mesh, so that a node never relays what it would refuse.
    pub(super) fn validated(
        &mut self,
        id: &gossipsub::MessageId,
        source: &PeerId,
        verdict: gossipsub::MessageAcceptance,
    ) {
        let _ = self.swarm.behaviour_mut().gossipsub.report_message_validation_result(id, source, verdict);
    }

    pub(super) fn on_checked(&mut self, checked: Checked) {
        match checked {
            Checked::Public { opened, id, source } => {
                use gossipsub::MessageAcceptance::{Accept, Ignore, Reject};
                let verdict = match opened {
                    Ok(m) if self.quotas.is_blocked(&m.header().from) => {
                        self.metrics.gossip_blocked.inc();
                        debug!(kind = %m.kind(), from = %m.header().from, "gossiped message from a blocked key; dropped");
                        Ignore
                    }
                    // Others' public messages are kept in memory only (the latest MAX_PUBLIC),
                    // never stored: what anyone may publish must not fill the disk.
                    Ok(m)
                        if m.header().relationship.is_none()
                            && matches!(m.body(), Body::Offer(_) | Body::Intent(_)) =>
                    {
                        self.remember_public(m);
                        Accept
                    }
                    Ok(m) => {
                        debug!(kind = %m.kind(), "gossiped message that is not public; refused");
                        Reject
                    }
                    Err(e) => {
                        debug!(error = %e, "invalid gossiped message; refused");
                        Reject
                    }
                };
                self.validated(&id, &source, verdict);
            }
        }
    }
}
