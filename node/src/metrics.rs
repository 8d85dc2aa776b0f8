//! Prometheus metrics (spec/node.md §5, `GET /metrics`): libp2p's own (connections, protocols,
//! bandwidth, identify, Kademlia, ping, gossipsub) and Rapport's, under the `rapport_` prefix.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of a refusal: the problem code.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// Problem code of spec §8.
    pub code: String,
}

/// Labels of a relationship count: its phase.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    /// Phase of spec §7.1.
    pub phase: Phase,
}

/// The phases, as label values.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, missing_docs)]
pub enum Phase {
    proposed,
    negotiating,
    active,
    separating,
    closed,
}

impl Phase {
    /// Every phase.
    pub const ALL: [Phase; 5] = [Phase::proposed, Phase::negotiating, Phase::active, Phase::separating, Phase::closed];

    /// The phase named `name`.
    pub fn named(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| format!("{p:?}") == name)
    }
}

/// Rapport's metrics.
pub struct Metrics {
    /// libp2p's metrics.
    pub libp2p: libp2p::metrics::Metrics,
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
    /// Gossiped messages dropped unchecked because [`crate::engine::MAX_VERIFYING`] were being
    /// checked already: a gossip flood costs bounded memory and is counted here.
    pub gossip_dropped: Counter,
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

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("sent", &self.sent.get())
            .field("received", &self.received.get())
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Registers every metric in `registry`.
    pub fn new(registry: &mut Registry) -> Metrics {
        let libp2p = libp2p::metrics::Metrics::new(registry);
        let r = registry.sub_registry_with_prefix("rapport");
        let m = Metrics {
            libp2p,
            sent: Counter::default(),
            received: Counter::default(),
            rejected: Family::default(),
            outbox: Gauge::default(),
            receipt_latency: Histogram::new(exponential_buckets(0.0005, 2.0, 20)),
            relationships: Family::default(),
            flushes: Counter::default(),
            group_size: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
            gossip_dropped: Counter::default(),
            unsolicited_acks: Counter::default(),
            blocked_keys: Gauge::default(),
            unanswered: Gauge::default(),
            gossip_blocked: Counter::default(),
        };
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
            "gossip_dropped",
            "Gossiped messages dropped unchecked because the verification workers were full",
            m.gossip_dropped.clone(),
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

    /// Sets the relationship gauges from counts by phase name.
    pub fn set_relationships(&self, by_phase: &std::collections::HashMap<&'static str, usize>) {
        for phase in Phase::ALL {
            let n = by_phase.get(format!("{phase:?}").as_str()).copied().unwrap_or(0);
            self.relationships.get_or_create(&PhaseLabel { phase }).set(n as i64);
        }
    }
}

/// The registry as Prometheus text.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exported_with_their_labels() {
        let mut registry = Registry::default();
        let m = Metrics::new(&mut registry);
        m.sent.inc();
        m.rejected.get_or_create(&CodeLabel { code: "bad-signature".into() }).inc_by(2);
        m.set_relationships(&[("active", 3usize)].into_iter().collect());
        m.receipt_latency.observe(0.01);
        m.flushes.inc();
        m.group_size.observe(3.0);
        let text = encode(&registry);
        assert!(text.contains("rapport_messages_sent_total 1"), "{text}");
        assert!(text.contains("rapport_messages_rejected_total{code=\"bad-signature\"} 2"), "{text}");
        assert!(text.contains("rapport_relationships{phase=\"active\"} 3"), "{text}");
        assert!(text.contains("rapport_relationships{phase=\"closed\"} 0"), "{text}");
        assert!(text.contains("rapport_receipt_latency_seconds_count 1"), "{text}");
        assert!(text.contains("rapport_store_flushes_total 1"), "{text}");
        assert!(text.contains("rapport_group_commit_size_bucket{le=\"4.0\"} 1"), "{text}");
        assert!(text.contains("libp2p_"), "libp2p's metrics are registered too");
        assert_eq!(Phase::named("separating"), Some(Phase::separating));
    }
}
