//! Many-node market simulations (issue #5): seeded scenarios of customers and vendors, each a
//! real Rapport node (the engine, its store and a libp2p swarm with Noise and Yamux over the
//! in-memory transport, with Kademlia, gossipsub and identify), all in one process.
//!
//! - [`scenario`]: the scenario files and their distributions;
//! - [`plan`]: what a seed draws from them: relationships' scripts, intents and faults;
//! - [`fleet`] and [`net`]: the nodes and the network they share;
//! - [`driver`]: the simulated clock, ticks that settle, and why the same seed gives the same
//!   outcomes;
//! - [`report`] and [`render`]: the figures, as JSON, Markdown and SVG plots.
//!
//! `rapport-sim run small` (the binary in `src/bin/rapport-sim.rs`) runs a shipped scenario.

mod bodies;
pub mod driver;
pub mod fleet;
pub mod net;
pub mod plan;
pub mod render;
pub mod report;
pub mod scenario;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rapport_node::store::Store as _;
use sha2::{Digest as _, Sha256};

use driver::Driver;
use fleet::Fleet;
use net::Net;
use plan::Plan;
use report::{Delivery, FaultSummary, Memory, Outcomes, Percentiles, Report, Sample, ScenarioSummary, Wall};
use scenario::Scenario;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A node could not start.
    #[error("node: {0}")]
    Node(#[from] fleet::Error),
    /// A node's store could not be read back for the report.
    #[error("reading node {node}'s store: {detail}")]
    Store {
        /// Which node.
        node: usize,
        /// Why.
        detail: String,
    },
    /// The runtime could not be built.
    #[error("runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// Nodes started at once, and the pause between batches.
pub const START_BATCH: usize = 50;
/// See [`START_BATCH`].
pub const START_PAUSE: Duration = Duration::from_millis(500);

/// Wall-clock time the nodes are given to connect and form the gossip mesh before day 0.
pub const WARM_UP: Duration = Duration::from_secs(3);

/// Runs `scenario` on a runtime of its own (two worker threads: this machine's cores) and
/// returns its report.
pub fn run(scenario: &Scenario, options: &Options) -> Result<Report, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run_async(scenario, options))
}

/// Reads a field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`); 0 where there is none.
pub fn proc_status(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

async fn run_async(scenario: &Scenario, options: &Options) -> Result<Report, Error> {
    let began = Instant::now();
    let baseline_rss = proc_status("VmRSS");
    let plan = Plan::new(scenario);
    let net = Arc::new(Net::new(scenario.seed, scenario.loss.reset_per_write));
    let (fleet, notices) = Fleet::new(&plan.keys, scenario.target_peers, net, driver::EPOCH)?;
    let mut d = Driver::new(scenario.clone(), plan, fleet, notices);
    d.introduce_counterparties();
    // In batches: a thousand nodes joining the DHT in the same instant would all look each
    // other up at once, which no real network sees.
    for n in 0..d.plan.nodes {
        let boot = d.bootstrap(n);
        d.fleet.start(n, &boot)?;
        if n % START_BATCH == START_BATCH - 1 {
            tokio::time::sleep(START_PAUSE).await;
        }
    }
    tracing::info!(nodes = d.plan.nodes, secs = began.elapsed().as_secs_f64(), "nodes started");
    tokio::time::sleep(WARM_UP).await;
    tracing::info!(connections = d.fleet.net.connections(), secs = began.elapsed().as_secs_f64(), "warmed up");
    let started_rss = proc_status("VmRSS");
    let setup = began.elapsed().as_secs_f64();

    let bar = progress(options, d.scenario_ticks());
    let per_day = 24 / u64::from(scenario.tick_hours);
    let max_ticks = d.scenario_ticks() + u64::from(driver::MAX_DRAIN_DAYS) * per_day;
    let mut series = Vec::new();
    let scenario_began = Instant::now();
    let mut drain_began = None;
    while !d.finished() && d.tick < max_ticks {
        if d.tick % per_day == 0 {
            let sample = sample(&d);
            let mut peers = 0;
            if tracing::enabled!(tracing::Level::DEBUG) {
                for i in 0..d.plan.nodes {
                    if let Some(h) = d.fleet.handle(i) {
                        peers += h.ask(rapport_node::engine::Command::Status).await.map_or(0, |s| s.peers);
                    }
                }
            }
            tracing::info!(
                peers,
                connections = d.fleet.net.connections(),
                day = sample.day,
                sent = sample.sent,
                delivered = sample.delivered,
                outbox = sample.outbox_total,
                online = sample.online,
                rss_mib = sample.rss >> 20,
                "day"
            );
            series.push(sample);
        }
        if d.tick == d.scenario_ticks() {
            drain_began = Some(Instant::now());
        }
        d.step().await?;
        if let Some(bar) = &bar {
            bar.set_position(d.tick.min(d.scenario_ticks()));
            bar.set_message(format!(
                "day {:.0} · {} sent · {} delivered · {} on their way",
                d.day_of(d.tick),
                d.tally.sent,
                d.tally.delivered,
                d.flights.len()
            ));
        }
    }
    series.push(sample(&d));
    let drain_began = drain_began.unwrap_or_else(Instant::now);
    let scenario_secs = drain_began.duration_since(scenario_began).as_secs_f64();
    let drain = drain_began.elapsed().as_secs_f64();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    d.fleet.stop_all().await;
    let peak_rss = proc_status("VmHWM");
    let mut report = assemble(&d, series)?;
    let nodes = d.plan.nodes as u64;
    report.memory = Memory {
        baseline_rss,
        started_rss,
        peak_rss,
        per_node_started: started_rss.saturating_sub(baseline_rss) / nodes.max(1),
        per_node_peak: peak_rss.saturating_sub(baseline_rss) / nodes.max(1),
    };
    report.wall = Wall { setup, scenario: scenario_secs, drain, total: began.elapsed().as_secs_f64() };
    Ok(report)
}

fn progress(options: &Options, ticks: u64) -> Option<indicatif::ProgressBar> {
    if !options.progress {
        return None;
    }
    let bar = indicatif::ProgressBar::new(ticks);
    let style = indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {percent:>3}% {msg}")
        .map(|s| s.progress_chars("=> "));
    if let Ok(style) = style {
        bar.set_style(style);
    }
    Some(bar)
}

fn sample(d: &Driver) -> Sample {
    let v = d.view();
    let depths: Vec<u64> = d.fleet.nodes.iter().map(|n| n.store.outbox().map_or(0, |o| o.len() as u64)).collect();
    Sample {
        day: v.day,
        outbox_total: depths.iter().sum(),
        outbox_max: depths.iter().copied().max().unwrap_or(0),
        online: v.online,
        rss: proc_status("VmRSS"),
        sent: v.sent,
        delivered: v.delivered,
        partitioned: v.partitioned,
    }
}

fn sorted<K: ToString>(map: impl IntoIterator<Item = (K, u64)>) -> Vec<(String, u64)> {
    let mut m = BTreeMap::new();
    for (k, v) in map {
        *m.entry(k.to_string()).or_insert(0) += v;
    }
    m.into_iter().collect()
}

/// The report's figures, from the driver's tally and every node's store.
fn assemble(d: &Driver, series: Vec<Sample>) -> Result<Report, Error> {
    let s = &d.scenario;
    let mut views = Vec::with_capacity(d.plan.nodes);
    for (i, node) in d.fleet.nodes.iter().enumerate() {
        let store: &dyn rapport_node::store::Store = node.store.as_ref();
        views.push(
            rapport_node::engine::load_relationships(store)
                .map_err(|e| Error::Store { node: i, detail: e.to_string() })?,
        );
    }
    let mut digest = Sha256::new();
    let mut by_phase = Vec::new();
    let mut lengths = Vec::new();
    let mut closure_days = Vec::new();
    let mut countersigned = 0;
    let mut revocations = 0;
    for (i, r) in d.rels.iter().enumerate() {
        // Her record: the customer holds the relationship.
        let view = r.id.and_then(|id| views[r.customer].get(&id));
        let phase = view.map_or("never opened", |v| v.phase().as_str());
        let len = view.map_or(0, |v| v.log().len() as u64);
        if let Some(v) = view {
            countersigned += v.log().iter().filter(|m| m.kind().as_str() == "countersignature").count() as u64;
            revocations += v.log().iter().filter(|m| m.kind().as_str() == "consent_revocation").count() as u64;
        }
        digest.update(format!("{i} {} {phase} {len}\n", r.kind.as_str()));
        by_phase.push((phase, 1));
        lengths.push(len as f64);
        if let Some(closed) = r.closed {
            closure_days.push(d.day_of(closed) - d.day_of(r.start));
        }
    }
    let mut histogram = BTreeMap::new();
    for l in &lengths {
        *histogram.entry(*l as u64).or_insert(0u64) += 1;
    }
    let t = &d.tally;
    let outcomes = Outcomes {
        relationships: d.rels.len() as u64,
        by_phase: sorted(by_phase),
        by_script: sorted(d.rels.iter().map(|r| (r.kind.as_str(), 1))),
        by_kind: sorted(t.by_kind.iter().map(|(k, v)| (*k, *v))),
        intents: t.intents,
        intent_offers: t.intent_offers,
        revocations,
        countersigned,
        refused: sorted(t.refused.iter().map(|(k, v)| (k.clone(), *v))),
        digest: String::new(),
    };
    digest.update(format!("{:?} {:?} {} {}\n", outcomes.by_kind, outcomes.refused, t.intents, t.intent_offers));
    let outcomes = Outcomes { digest: hex::encode(digest.finalize()), ..outcomes };
    Ok(Report {
        scenario: ScenarioSummary {
            name: s.name.clone(),
            seed: s.seed,
            nodes: s.nodes(),
            customers: s.customers,
            vendors: s.vendors,
            days: s.days,
            tick_hours: s.tick_hours,
            file: toml::to_string(s).unwrap_or_default(),
        },
        outcomes,
        delivery: delivery(d),
        latency_ms: Percentiles::of(&t.latencies),
        closure_days: Percentiles::of(&closure_days),
        closure_days_all: closure_days,
        messages_per_relationship: Percentiles::of(&lengths),
        messages_histogram: histogram.into_iter().collect(),
        memory: Memory::default(),
        series,
        faults: FaultSummary {
            churn: t.churn,
            offline_node_days: t.offline_ticks as f64 * f64::from(s.tick_hours) / 24.0,
            departed: t.departed,
            partitions: t.partitions,
            resets: d.fleet.net.resets(),
            stalled_ticks: t.stalled,
        },
        wall: Wall::default(),
    })
}

fn delivery(d: &Driver) -> Delivery {
    let t = &d.tally;
    let undelivered = d.flights.len() as u64;
    let departed = d.flights.values().filter(|f| d.departed[f.to]).count() as u64;
    let owed = t.sent - departed;
    let mut explained = Vec::new();
    if departed > 0 {
        explained.push(format!(
            "{departed} message(s) to nodes that left the network for good stay in their senders' outboxes; \
             they are not counted against the ratio"
        ));
    }
    if undelivered > departed {
        explained.push(format!(
            "{} message(s) to nodes still in the network were not delivered by the end of the run",
            undelivered - departed
        ));
    }
    if t.refused_by_recipient > 0 {
        explained.push(format!("{} message(s) were refused by their recipient", t.refused_by_recipient));
    }
    let stranded = d.rels.iter().filter(|r| !r.ended() && d.blocked(r)).count();
    if stranded > 0 {
        explained.push(format!(
            "{stranded} relationship(s) stayed open: a party left the network for good before its script ended"
        ));
    }
    if t.intent_missed > 0 {
        explained.push(format!(
            "{} vendor(s) online and reachable did not hear an intent in time to answer it",
            t.intent_missed
        ));
    }
    Delivery {
        sent: t.sent,
        delivered: t.delivered,
        refused: t.refused_by_recipient,
        undelivered,
        undelivered_departed: departed,
        ratio: if owed == 0 { 1.0 } else { t.delivered as f64 / owed as f64 },
        explained,
        retries: d.fleet.nodes.iter().map(|n| n.store.retries()).sum(),
    }
}
