//! The market simulation end to end: the shipped `small` scenario (20 real nodes over the
//! in-memory transport, a scenario year with churn, a partition and loss) runs to completion
//! with every relationship closed and every message delivered, and writes its report; and a
//! shortened scenario run twice gives the same outcomes.
//!
//! `cargo test -p rapport-simulations --test market -- --nocapture`
// The helpers below are test code too: a failure should stop the test with its message.
#![allow(clippy::panic)]

use std::path::Path;

use rapport_simulations::market::{self, render, report::Report, scenario::Scenario};

fn shipped(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(format!("{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn run(s: &Scenario) -> Report {
    market::run(s, &market::Options::default()).unwrap_or_else(|e| panic!("{}: {e}", s.name))
}

#[test]
fn small_closes_every_relationship_and_delivers_every_message() {
    let s = shipped("small");
    let report = run(&s);
    let o = &report.outcomes;
    let d = &report.delivery;
    println!(
        "small: {} relationships, {} messages, latency p50/p99 {:.1}/{:.1} ms, {} resets, {} retries, \
         peak RSS {} MiB, {:.1} s",
        o.relationships,
        d.sent,
        report.latency_ms.p50,
        report.latency_ms.p99,
        report.faults.resets,
        d.retries,
        report.memory.peak_rss >> 20,
        report.wall.total
    );
    assert!(o.relationships >= 20, "{o:?}");
    assert_eq!(o.by_phase, vec![("closed".to_owned(), o.relationships)], "every relationship ends closed");
    assert!(o.refused.is_empty(), "no step refused: {:?}", o.refused);
    assert!(o.intents > 0 && o.intent_offers >= o.intents, "{o:?}");
    assert_eq!((d.delivered, d.undelivered, d.refused), (d.sent, 0, 0), "{d:?}");
    assert_eq!(d.ratio, 1.0);
    assert_eq!(report.faults.stalled_ticks, 0, "every tick settled");
    assert!(report.faults.churn > 0 && report.faults.partitions == 1, "{:?}", report.faults);
    // Every message sent is in the relationship records: counted from the stores.
    let stored: f64 = report.messages_per_relationship.mean * o.relationships as f64;
    assert_eq!(stored.round() as u64, d.sent);
    assert_eq!(report.closure_days.count, o.relationships);
    assert!(report.latency_ms.count > 0 && report.latency_ms.p50 > 0.0);
    assert!(report.series.len() as u32 > s.days && report.memory.peak_rss > 0);

    let dir = tempfile::tempdir().unwrap();
    render::write(&report, dir.path(), &[]).unwrap();
    for file in ["report.json", "summary.md", "plots/delivery.svg", "plots/latency.svg", "plots/outbox.svg"] {
        assert!(dir.path().join(file).is_file(), "{file}");
    }
}

#[test]
fn the_same_seed_gives_the_same_outcomes() {
    let mut s = shipped("small");
    s.name = "short".into();
    s.customers = 10;
    s.days = 100;
    let r = &mut s.relationships;
    (r.start_days, r.early_from, r.early_to, r.stand_notice_day) = (20, 20, 50, 60);
    s.check().unwrap();
    let (a, b) = (run(&s), run(&s));
    assert_eq!(a.outcomes, b.outcomes);
    assert_eq!((a.delivery.sent, a.delivery.delivered), (b.delivery.sent, b.delivery.delivered));
    let other = run(&Scenario { seed: s.seed + 1, ..s });
    assert_ne!(a.outcomes.digest, other.outcomes.digest, "another seed, another market");
}
