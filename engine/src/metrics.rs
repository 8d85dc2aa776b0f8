//! The state's metrics (spec/node.md §5), under the `rapport_` prefix of `GET /metrics`. They
//! are counters and gauges in memory, read when the registry is encoded: nothing here does IO.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use rapport_protocol::Phase;

/// Labels of a refusal: the problem code.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// Problem code of spec §8.
    pub code: String,
}

/// Labels of a relationship count: its phase, as spec §7.1 names it.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    /// Phase name.
    pub phase: String,
}

/// The state's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Messages this node signed and queued for a peer.
    pub sent: Counter,
    /// Messages from peers accepted and stored.
    pub received: Counter,
    /// Messages from peers refused, by problem code; each was answered with a signed problem
    /// report and changed nothing stored.
    pub rejected: Family<CodeLabel, Counter>,
    /// Messages waiting for a receipt.
    pub outbox: Gauge,
    /// Seconds from queueing a message to holding its receipt.
    pub receipt_latency: Histogram,
    /// Relationships by phase.
    pub relationships: Family<PhaseLabel, Gauge>,
    /// Group commits: flushes of the store that made a group of writes durable.
    pub flushes: Counter,
    /// Work each group commit answered: peers' messages receipted and our own messages
    /// confirmed to their callers.
    pub group_size: Histogram,
    /// Receipts and problem reports a peer sent as requests: neither stored nor answered
    /// (spec §11.2).
    pub unsolicited_acks: Counter,
    /// Keys the owner has blocked.
    pub blocked_keys: Gauge,
    /// Relationships strangers opened that await the owner's first answer (spec/node.md §3.1).
    pub unanswered: Gauge,
    /// Gossiped public messages from blocked keys, dropped.
    pub gossip_blocked: Counter,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            sent: Counter::default(),
            received: Counter::default(),
            rejected: Family::default(),
            outbox: Gauge::default(),
            receipt_latency: Histogram::new(exponential_buckets(0.0005, 2.0, 20)),
            relationships: Family::default(),
            flushes: Counter::default(),
            group_size: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
            unsolicited_acks: Counter::default(),
            blocked_keys: Gauge::default(),
            unanswered: Gauge::default(),
            gossip_blocked: Counter::default(),
        }
    }
}

impl Metrics {
    /// Fresh metrics, registered in `r` (the registry's `rapport` sub-registry).
    pub fn register(r: &mut Registry) -> Metrics {
        let m = Metrics::default();
        r.register("messages_sent", "Messages signed and queued for a peer", m.sent.clone());
        r.register("messages_received", "Messages from peers accepted and stored", m.received.clone());
        r.register("messages_rejected", "Messages from peers refused, by problem code", m.rejected.clone());
        r.register("outbox_depth", "Messages waiting for a receipt", m.outbox.clone());
        r.register(
            "receipt_latency_seconds",
            "From queueing a message to holding its receipt",
            m.receipt_latency.clone(),
        );
        r.register("relationships", "Relationships by phase", m.relationships.clone());
        r.register("store_flushes", "Group commits: flushes that made a group of writes durable", m.flushes.clone());
        r.register(
            "group_commit_size",
            "Messages receipted or confirmed to their callers by one group commit",
            m.group_size.clone(),
        );
        r.register(
            "unsolicited_acknowledgements",
            "Receipts and problem reports sent as requests: neither stored nor answered",
            m.unsolicited_acks.clone(),
        );
        r.register("blocked_keys", "Keys the owner has blocked: nothing they send is stored", m.blocked_keys.clone());
        r.register(
            "unanswered_relationships",
            "Relationships strangers opened that await the owner's first answer",
            m.unanswered.clone(),
        );
        r.register(
            "gossip_blocked",
            "Gossiped offers and intents from blocked keys, dropped",
            m.gossip_blocked.clone(),
        );
        m
    }

    /// Sets the relationship gauges from counts by phase name; phases not counted are 0.
    pub fn set_relationships(&self, by_phase: &std::collections::HashMap<&'static str, usize>) {
        for phase in Phase::ALL {
            let n = by_phase.get(phase.as_str()).copied().unwrap_or(0);
            self.relationships.get_or_create(&PhaseLabel { phase: phase.as_str().into() }).set(n as i64);
        }
    }

    /// Counts a refusal of a peer's message.
    pub fn rejected(&self, code: rapport_protocol::Code) {
        self.rejected.get_or_create(&CodeLabel { code: code.as_str().into() }).inc();
    }
}
