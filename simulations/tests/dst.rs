//! The deterministic simulation suite (issue #6, item 6): delivery, outbox and relationship
//! state under partitions, crashes and torn logs, over many seeds.
//!
//! ```sh
//! cargo test -p rapport-simulations --test dst -- --nocapture                  # quick: 200 seeds (CI)
//! RAPPORT_DST_SEEDS=10000 cargo test --release -p rapport-simulations --test dst -- suite --nocapture
//! RAPPORT_DST_SEED=42 cargo test -p rapport-simulations --test dst -- suite --nocapture   # one seed
//! ```
//!
//! `RAPPORT_DST_FIRST` moves the first seed; `RAPPORT_DST_FAULT=receipt-before-flush` runs a
//! node that answers before its flush; `RAPPORT_DST_VERBOSE=1` prints every event. A violation
//! prints its seed and the command that replays it.

use std::time::Instant;

use rapport_simulations::dst::{self, Config, Faults, Figures};

/// Seeds of the quick run, in CI.
const QUICK: u64 = 200;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn env_config() -> Config {
    let faults = Faults {
        receipt_before_flush: std::env::var("RAPPORT_DST_FAULT").is_ok_and(|v| v.contains("receipt-before-flush")),
    };
    Config::new().with_faults(faults).with_verbose(env_u64("RAPPORT_DST_VERBOSE") == Some(1))
}

#[test]
fn suite() {
    let config = env_config();
    let seeds: Vec<u64> = match env_u64("RAPPORT_DST_SEED") {
        Some(seed) => vec![seed],
        None => {
            let first = env_u64("RAPPORT_DST_FIRST").unwrap_or(0);
            (first..first + env_u64("RAPPORT_DST_SEEDS").unwrap_or(QUICK)).collect()
        }
    };
    let start = Instant::now();
    let mut figures = Figures::default();
    for &seed in &seeds {
        match dst::run(seed, &config) {
            Ok(report) => {
                if seeds.len() == 1 {
                    let hex: String = report.trace.iter().map(|b| format!("{b:02x}")).collect();
                    println!("seed {seed}: trace sha256 {hex}");
                }
                figures.add(&report.figures);
            }
            Err(v) => {
                println!("{}", figures.table(start.elapsed()));
                panic!("{v}");
            }
        }
    }
    println!("deterministic simulation, seeds {}..={}", seeds[0], seeds[seeds.len() - 1]);
    println!("{}", figures.table(start.elapsed()));
    assert_eq!(figures.seeds, seeds.len() as u64);
}

#[test]
fn a_seed_replays_exactly() {
    let config = Config::new();
    for seed in [7, 1_000_003] {
        let a = dst::run(seed, &config).unwrap_or_else(|v| panic!("{v}"));
        let b = dst::run(seed, &config).unwrap_or_else(|v| panic!("{v}"));
        assert_eq!(a.trace, b.trace, "seed {seed}: two runs traced differently");
        assert_eq!(a.figures, b.figures, "seed {seed}");
        assert!(a.figures.events > 100, "seed {seed} did next to nothing: {:?}", a.figures);
    }
    let other = dst::run(8, &config).unwrap_or_else(|v| panic!("{v}"));
    let first = dst::run(7, &config).unwrap_or_else(|v| panic!("{v}"));
    assert_ne!(first.trace, other.trace, "two seeds gave the same trace");
}

/// A node that answers with a receipt before its flush loses acknowledged messages when the
/// power fails: some seed must show it, or the durability check could not fail.
#[test]
fn a_receipt_before_the_flush_is_caught() {
    let config = Config::new().with_faults(Faults { receipt_before_flush: true });
    let caught = (0..300u64).find_map(|seed| dst::run(seed, &config).err());
    let v = caught.expect("no seed in 0..300 caught receipts sent before the flush");
    println!("caught: {v}");
    assert_eq!(v.invariant, "durability", "{v}");
    assert!(v.replay.contains(&format!("RAPPORT_DST_SEED={}", v.seed)) && v.replay.contains("receipt-before-flush"));
}
