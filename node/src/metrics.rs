//! Prometheus metrics (spec/node.md §5, `GET /metrics`): libp2p's own (connections, protocols,
//! bandwidth, identify, Kademlia, ping, gossipsub) and Rapport's, under the `rapport_` prefix.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use std::sync::Arc;

pub use rapport_engine::metrics::{CodeLabel, PhaseLabel};

/// The node's metrics: libp2p's, the state's, and the driver's own.
pub struct Metrics {
    /// libp2p's metrics.
    pub libp2p: libp2p::metrics::Metrics,
    /// The state's (messages, refusals, the outbox, group commits, quotas).
    pub engine: Arc<rapport_engine::Metrics>,
    /// Gossiped messages dropped unchecked because [`crate::engine::MAX_VERIFYING`] were being
    /// checked already: a gossip flood costs bounded memory and is counted here.
    pub gossip_dropped: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("engine", &self.engine).finish_non_exhaustive()
    }
}

impl std::ops::Deref for Metrics {
    type Target = rapport_engine::Metrics;

    fn deref(&self) -> &rapport_engine::Metrics {
        &self.engine
    }
}

impl Metrics {
    /// Registers every metric in `registry`.
    pub fn new(registry: &mut Registry) -> Metrics {
        let libp2p = libp2p::metrics::Metrics::new(registry);
        let r = registry.sub_registry_with_prefix("rapport");
        let engine = Arc::new(rapport_engine::Metrics::register(r));
        let gossip_dropped = Counter::default();
        r.register(
            "gossip_dropped",
            "Gossiped messages dropped unchecked because the verification workers were full",
            gossip_dropped.clone(),
        );
        Metrics { libp2p, engine, gossip_dropped }
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
    }
}
