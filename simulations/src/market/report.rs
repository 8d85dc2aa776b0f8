//! What a market run measured: the [`Report`] written as `report.json`, from which the Markdown
//! summary and the plots are drawn ([`super::render`]).
//!
//! Two kinds of figures sit side by side. [`Outcomes`] are protocol-level results that depend on
//! the seed alone (the same seed gives the same outcomes, and their digest says so at a glance);
//! everything else (latencies, memory, wall time, resets) is a measurement of this run on this
//! machine.

use serde::{Deserialize, Serialize};

/// Everything one run of a scenario measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The scenario as run.
    pub scenario: ScenarioSummary,
    /// Results fixed by the seed.
    pub outcomes: Outcomes,
    /// Delivery of the relationship messages the parties sent.
    pub delivery: Delivery,
    /// Time from a message being queued to its signed receipt, in wall-clock milliseconds, for
    /// messages whose recipient was online and reachable when they were queued.
    pub latency_ms: Percentiles,
    /// Scenario days from a relationship's first message to its closure receipt, for every
    /// relationship that closed.
    pub closure_days: Percentiles,
    /// Closure times, one per closed relationship, in scenario days (for the histogram).
    pub closure_days_all: Vec<f64>,
    /// Chained messages per relationship, as counted from both parties' stores.
    pub messages_per_relationship: Percentiles,
    /// Histogram of chained messages per relationship: `(messages, relationships)`.
    pub messages_histogram: Vec<(u64, u64)>,
    /// Memory of the whole process, and per node.
    pub memory: Memory,
    /// Samples taken once per scenario day.
    pub series: Vec<Sample>,
    /// Faults injected and what they did.
    pub faults: FaultSummary,
    /// Wall-clock seconds: setting up the nodes, the scenario, and in all.
    pub wall: Wall,
}

/// The scenario's identity and size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioSummary {
    /// Its name (`small`, `medium`, `large`).
    pub name: String,
    /// The seed.
    pub seed: u64,
    /// Nodes in all.
    pub nodes: usize,
    /// Customers' nodes.
    pub customers: usize,
    /// Vendors' nodes.
    pub vendors: usize,
    /// Scenario days before the drain.
    pub days: u32,
    /// Length of one tick of the simulated clock, in hours.
    pub tick_hours: u32,
    /// The scenario file's text, so that a report says exactly what produced it.
    pub file: String,
}

/// Protocol-level results: the same seed gives the same values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcomes {
    /// Relationships opened (one per offer).
    pub relationships: u64,
    /// Relationships by final phase (`proposed` … `closed`), sorted by phase name.
    pub by_phase: Vec<(String, u64)>,
    /// How relationships went, by script (`one-year stand`, `early separation`, `declined offer`),
    /// sorted by name.
    pub by_script: Vec<(String, u64)>,
    /// Relationship messages by kind, sorted by kind.
    pub by_kind: Vec<(String, u64)>,
    /// Intents published.
    pub intents: u64,
    /// Offers sent in answer to an intent.
    pub intent_offers: u64,
    /// Consent revocations.
    pub revocations: u64,
    /// Usage reports countersigned.
    pub countersigned: u64,
    /// Steps a party's own node refused, by problem code (none in a correct run).
    pub refused: Vec<(String, u64)>,
    /// SHA-256, hex, over every relationship's final phase and message count, in order.
    pub digest: String,
}

/// Delivery of relationship messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    /// Messages the parties asked their nodes to send.
    pub sent: u64,
    /// Messages whose sender holds the recipient's signed receipt.
    pub delivered: u64,
    /// Messages the recipient refused with a signed problem report.
    pub refused: u64,
    /// Messages still in an outbox at the end.
    pub undelivered: u64,
    /// Of those, messages to a node that left the network for good.
    pub undelivered_departed: u64,
    /// delivered / (sent − undelivered to departed nodes): 1.0 means every message whose
    /// recipient came back within the scenario was delivered.
    pub ratio: f64,
    /// One line per cause of any message not delivered, for the summary.
    pub explained: Vec<String>,
    /// Delivery attempts that failed and were retried (from the senders' outboxes), in all.
    pub retries: u64,
}

/// Percentiles of a set of samples; all zero when there were none.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Percentiles {
    /// How many samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// Memory, from the kernel's view of the process (`/proc/self/status`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Memory {
    /// Resident set before any node started, bytes.
    pub baseline_rss: u64,
    /// Resident set once every node was up and connected, bytes.
    pub started_rss: u64,
    /// Peak resident set of the run (VmHWM), bytes.
    pub peak_rss: u64,
    /// (started − baseline) / nodes, bytes.
    pub per_node_started: u64,
    /// (peak − baseline) / nodes, bytes.
    pub per_node_peak: u64,
}

/// One sample, taken at the start of a scenario day.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    /// Scenario day.
    pub day: f64,
    /// Messages in every outbox together.
    pub outbox_total: u64,
    /// The deepest single outbox.
    pub outbox_max: u64,
    /// Nodes online.
    pub online: u64,
    /// Resident set of the process, bytes.
    pub rss: u64,
    /// Messages sent so far.
    pub sent: u64,
    /// Messages delivered so far.
    pub delivered: u64,
    /// Whether a partition was in force.
    pub partitioned: bool,
}

/// Faults injected.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FaultSummary {
    /// Times a node went offline (its engine stopped, its store kept) and came back.
    pub churn: u64,
    /// Node-days spent offline.
    pub offline_node_days: f64,
    /// Nodes that left the network for good.
    pub departed: u64,
    /// Partitions.
    pub partitions: u64,
    /// Connections reset by injected loss.
    pub resets: u64,
    /// Ticks whose traffic did not settle within the wait bound (their deliveries may fall in a
    /// later tick than the seed alone decides).
    pub stalled_ticks: u64,
}

/// Wall-clock time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Wall {
    /// Starting and connecting the nodes, seconds.
    pub setup: f64,
    /// The scenario's days, seconds.
    pub scenario: f64,
    /// The drain after the last day, seconds.
    pub drain: f64,
    /// Everything, seconds.
    pub total: f64,
}

impl Percentiles {
    /// The percentiles of `samples` (nearest rank).
    pub fn of(samples: &[f64]) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let rank = |p: f64| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        Percentiles {
            count: s.len() as u64,
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
            max: s[s.len() - 1],
            mean: s.iter().sum::<f64>() / s.len() as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&samples);
        assert_eq!((p.count, p.p50, p.p95, p.p99, p.max), (100, 50.0, 95.0, 99.0, 100.0));
        assert_eq!(p.mean, 50.5);
        assert_eq!(Percentiles::of(&[]).count, 0);
        assert_eq!(Percentiles::of(&[7.0]).p99, 7.0);
    }
}
