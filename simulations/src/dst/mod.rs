//! Deterministic simulation of delivery, outbox and state under partitions and crashes
//! (issue #6, item 6; spec/node.md §3 and §4).
//!
//! One seed fixes everything: the nodes (customers and vendors, each on the real `log` store
//! in a file, or the real memory store), the relationships they walk from offer to closure,
//! the network's delays, losses, duplicates and reordering, partitions that cut sets of nodes
//! off and heal, crashes of processes and power losses that tear the log's tail, and forged
//! or malformed messages thrown at the nodes. A discrete-event loop on a virtual clock runs
//! it; the same seed gives a bit-identical trace, and [`Report::trace`] is its hash.
//!
//! What runs is the node's real code: its state machine ([`rapport_engine::State`]: the
//! outbox, the group commit, the relationships, the quotas), the protocol core (signing,
//! strict verification, log verification), the node's stores ([`rapport_node::store::Log`]
//! on a real file, `Memory`) and the loading of a node from its store at start
//! ([`rapport_node::engine::load`]). `node.rs` drives the state as the daemon's tokio driver
//! does, over the simulated network and disk instead of libp2p and the runtime. See
//! `RELIABILITY.md` for what is modelled and how.
//!
//! Checked after every run, and where cheap at every step:
//! - durability: every message whose sender holds a receipt is stored at its recipient, and
//!   every message a node confirmed to its caller is stored at that node, checked at every
//!   restart and at the end;
//! - recovery: a store reopened after a crash holds exactly the records it must (its flushed
//!   frames, plus whatever whole frames the crash kept), nothing more;
//! - refusals: a forged or malformed message is answered with a problem report and changes
//!   nothing;
//! - nothing is stored twice, and every relationship's stored log verifies;
//! - the node's view equals what a restart rebuilds from its store;
//! - liveness: after the last fault heals, every outbox drains and every relationship reaches
//!   `closed` within [`DRAIN_BOUND_MS`] of virtual time;
//! - convergence: both parties hold the same chained messages.
//!
//! A violation names the seed and the command that replays it.

mod node;
mod store;
pub(crate) mod workload;
mod world;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use node::Faults;
pub use store::Backend;

/// After the last fault heals, everything must have settled within this much virtual time.
pub const DRAIN_BOUND_MS: u64 = 10 * 60 * 1000;

/// How a suite runs.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Deliberate defects in the simulated node.
    pub faults: Faults,
    /// Where the nodes' data directories go; the fastest temporary directory by default.
    pub dir: Option<PathBuf>,
    /// Print every event of the trace to stderr (for replaying one seed).
    pub verbose: bool,
}

impl Config {
    /// The default: the node as it is.
    pub fn new() -> Config {
        Config::default()
    }

    /// With deliberate defects.
    pub fn with_faults(mut self, faults: Faults) -> Config {
        self.faults = faults;
        self
    }

    /// Prints every event.
    pub fn with_verbose(mut self, verbose: bool) -> Config {
        self.verbose = verbose;
        self
    }

    /// The command that replays `seed` under this configuration.
    pub fn replay_command(&self, seed: u64) -> String {
        let mut env = format!("RAPPORT_DST_SEED={seed}");
        if self.faults.receipt_before_flush {
            env.push_str(" RAPPORT_DST_FAULT=receipt-before-flush");
        }
        format!("{env} cargo test -p rapport-simulations --test dst -- suite --nocapture")
    }

    fn base_dir(&self) -> PathBuf {
        if let Some(d) = &self.dir {
            return d.clone();
        }
        // A tmpfs, where a flush costs nothing: durability is modelled, not measured.
        let shm = PathBuf::from("/dev/shm");
        if shm.is_dir() && tempfile::tempdir_in(&shm).is_ok() {
            shm
        } else {
            std::env::temp_dir()
        }
    }
}

/// A broken invariant.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The seed that broke it.
    pub seed: u64,
    /// Which invariant.
    pub invariant: &'static str,
    /// What exactly went wrong.
    pub detail: String,
    /// How to replay it.
    pub replay: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seed {}: {}: {}\nreplay: {}", self.seed, self.invariant, self.detail, self.replay)
    }
}

impl std::error::Error for Violation {}

/// What runs did, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    /// Seeds run.
    pub seeds: u64,
    /// Nodes simulated.
    pub nodes: u64,
    /// Of them on the log store.
    pub log_nodes: u64,
    /// Relationships scripted.
    pub relationships: u64,
    /// Relationships that reached `closed` at both parties.
    pub closed: u64,
    /// Chained messages the nodes signed and stored.
    pub messages: u64,
    /// Requests put on the network (attempts, repeats included).
    pub requests: u64,
    /// Requests and answers lost.
    pub lost: u64,
    /// Extra copies the network delivered.
    pub duplicated: u64,
    /// Receipts received by senders: deliveries.
    pub deliveries: u64,
    /// Repeated messages answered with a receipt and stored once.
    pub repeats: u64,
    /// Messages answered with a problem report.
    pub refused: u64,
    /// Of them forged or malformed messages the simulation injected.
    pub injected: u64,
    /// Steps a party's own node refused (a race the protocol allows, e.g. a share after
    /// her revocation reached him).
    pub refused_own: u64,
    /// Node crashes.
    pub crashes: u64,
    /// Of them power losses (unflushed writes lost).
    pub power_losses: u64,
    /// Power losses that left a torn frame, garbage or extra whole frames after the flushed end.
    pub torn_tails: u64,
    /// Stores reopened and compared with their model.
    pub recoveries: u64,
    /// Partitions.
    pub partitions: u64,
    /// Relationships forked by the window spec/node.md §3 ¶2 documents: a message sent before
    /// its flush, received, then lost by its sender's power loss.
    pub forked_by_power_loss: u64,
    /// Relationships whose parties hold different receipts.
    pub receipt_mismatches: u64,
    /// Events processed.
    pub events: u64,
    /// Virtual time simulated, ms.
    pub virtual_ms: u64,
    /// The longest time from the last heal to a settled network, ms.
    pub max_drain_ms: u64,
    /// Sum of drain times, ms (for the mean).
    pub total_drain_ms: u64,
}

impl Figures {
    /// Adds `other` to these.
    pub fn add(&mut self, o: &Figures) {
        macro_rules! sum { ($($f:ident),*) => { $(self.$f += o.$f;)* } }
        sum!(
            seeds,
            nodes,
            log_nodes,
            relationships,
            closed,
            messages,
            requests,
            lost,
            duplicated,
            deliveries,
            repeats,
            refused,
            injected,
            refused_own,
            crashes,
            power_losses,
            torn_tails,
            recoveries,
            partitions,
            forked_by_power_loss,
            receipt_mismatches,
            events,
            virtual_ms,
            total_drain_ms
        );
        self.max_drain_ms = self.max_drain_ms.max(o.max_drain_ms);
    }

    /// The figures as a table, with the wall time they took.
    pub fn table(&self, wall: Duration) -> String {
        let mean = self.total_drain_ms.checked_div(self.seeds).unwrap_or(0);
        let rows: Vec<(&str, String)> = vec![
            ("seeds run", self.seeds.to_string()),
            ("nodes (on the log store)", format!("{} ({})", self.nodes, self.log_nodes)),
            ("relationships (closed at both parties)", format!("{} ({})", self.relationships, self.closed)),
            ("chained messages signed and stored", self.messages.to_string()),
            ("requests sent (lost, duplicated)", format!("{} ({}, {})", self.requests, self.lost, self.duplicated)),
            ("deliveries (receipts held by senders)", self.deliveries.to_string()),
            ("repeats answered and stored once", self.repeats.to_string()),
            ("problem reports (for injected messages)", format!("{} ({})", self.refused, self.injected)),
            ("steps refused by the sender's own node", self.refused_own.to_string()),
            ("crashes (power losses)", format!("{} ({})", self.crashes, self.power_losses)),
            ("torn tails (stores recovered and checked)", format!("{} ({})", self.torn_tails, self.recoveries)),
            ("partitions", self.partitions.to_string()),
            ("relationships forked by a power loss (§3 ¶2)", self.forked_by_power_loss.to_string()),
            ("relationships with differing receipts", self.receipt_mismatches.to_string()),
            ("events", self.events.to_string()),
            ("virtual time", format!("{:.1} h", self.virtual_ms as f64 / 3_600_000.0)),
            (
                "drain after the last heal: max (mean)",
                format!("{:.1} s ({:.1} s)", secs(self.max_drain_ms), secs(mean)),
            ),
            ("wall time", format!("{:.1} s", wall.as_secs_f64())),
        ];
        let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
        rows.iter().map(|(k, v)| format!("{k:<width$}  {v}\n")).collect()
    }
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// One run's outcome.
#[derive(Debug, Clone)]
pub struct Report {
    /// What it did.
    pub figures: Figures,
    /// SHA-256 of its full event trace.
    pub trace: [u8; 32],
}

/// Runs seed `seed`: the whole simulation, then every check.
pub fn run(seed: u64, config: &Config) -> Result<Report, Violation> {
    world::World::run(seed, config)
}
