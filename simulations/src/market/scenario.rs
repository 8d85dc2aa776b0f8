//! Scenario files (`simulations/scenarios/*.toml`): the size of the market, the distributions
//! relationships are drawn from, and the faults. Every number a run depends on is here or in
//! the seed; [`Scenario::check`] refuses a file whose numbers cannot make a valid run.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Why a scenario file was refused: the node's configuration error, since a scenario file is
/// read as the node reads its own (the line and key of a parse error; the key of a value out of
/// range).
pub use rapport_node::config::Error;

/// A scenario, as its file gives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Its name, used for the report folder.
    pub name: String,
    /// The seed every random draw derives from.
    pub seed: u64,
    /// Customers' nodes.
    pub customers: usize,
    /// Vendors' nodes.
    pub vendors: usize,
    /// Scenario days; relationships start within them and the drain follows.
    pub days: u32,
    /// Resolution of the simulated clock, hours: every tick, the faults and steps due are applied
    /// and the network is given time to carry the traffic they cause.
    pub tick_hours: u32,
    /// Connections each node keeps open to others (the gossip mesh rides on them).
    pub target_peers: u32,
    /// Relationship lifecycles.
    pub relationships: Relationships,
    /// Nodes going offline and coming back, or leaving.
    pub churn: Churn,
    /// Network partitions.
    pub partitions: Partitions,
    /// Message loss.
    pub loss: Loss,
}

/// How relationships are drawn. A customer starts `per_customer` relationships, each with a
/// vendor drawn uniformly, starting on a day uniform in `[0, start_days)`; a share of them start
/// from an intent instead.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relationships {
    /// Relationships a customer starts: uniform in `[min, max]`.
    pub per_customer: Range,
    /// Starts spread uniformly over the first this-many days.
    pub start_days: u32,
    /// Probability that a customer opens with an intent, gossiped to every vendor; the
    /// vendors that answer (uniform in `answers`) each send an offer, she takes the first and
    /// declines the others with a friendly separation.
    pub intent: f64,
    /// Vendors answering an intent.
    pub answers: Range,
    /// Probability that a relationship ends early: her separation notice on a day uniform in
    /// `[early_from, early_to)` of the relationship. Otherwise it is a one-year stand, ended
    /// by her notice on day `stand_notice_day`.
    pub early: f64,
    /// Earliest day of an early separation.
    pub early_from: u32,
    /// Day before which an early separation comes.
    pub early_to: u32,
    /// Day of a one-year stand's separation notice; the notice period (`notice_days`) runs
    /// from there, so it must end before the 365-day term does.
    pub stand_notice_day: u32,
    /// The agreed notice period, days.
    pub notice_days: u32,
    /// Probability that she revokes her consent, on a day uniform over the active period.
    pub revocation: f64,
    /// Probability that the terms are priced per usage: the vendor then sends a usage report
    /// every `report_days`, which she countersigns. Otherwise the price is upfront.
    pub usage_priced: f64,
    /// Days between usage reports.
    pub report_days: u32,
    /// Days between the vendor's insights (data shares under her consent).
    pub insight_days: u32,
    /// Probability that the vendor introduces a third party once.
    pub introduction: f64,
}

/// Nodes offline and back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// Offline periods per node per scenario year: a Poisson process.
    pub per_year: f64,
    /// Mean length of an offline period, hours (exponential).
    pub mean_hours: f64,
    /// No offline period is longer, days.
    pub max_days: u32,
    /// Probability that a customer's node leaves for good, on a day uniform over the scenario.
    pub departures: f64,
}

/// Network partitions: the nodes are split in two, and no connection crosses the cut.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partitions {
    /// How many, each starting on a day uniform over the scenario.
    pub count: u32,
    /// Share of the nodes on the small side.
    pub fraction: f64,
    /// Length, days: uniform in `[1, max_days]`.
    pub max_days: u32,
}

/// Message loss. A Rapport connection runs over a reliable stream, so a lossy path shows as a
/// connection reset, taking every stream on it down: each write fails with this probability.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Loss {
    /// Probability that a write on a connection resets it.
    pub reset_per_write: f64,
}

/// An inclusive range of counts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// Least.
    pub min: u32,
    /// Most.
    pub max: u32,
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.into(), source })?;
        Scenario::parse(&text, path)
    }

    /// Parses and checks the text of a scenario file.
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, Error> {
        let scenario: Scenario = rapport_node::config::from_toml(text, path)?;
        scenario.check()?;
        Ok(scenario)
    }

    /// Nodes in all.
    pub fn nodes(&self) -> usize {
        self.customers + self.vendors
    }

    /// Refuses numbers that cannot make a valid run.
    pub fn check(&self) -> Result<(), Error> {
        let invalid = |name, detail: String| Err(Error::Invalid { name, detail });
        let r = &self.relationships;
        if self.customers == 0 || self.vendors == 0 {
            return invalid("customers", "a market needs at least one customer and one vendor".into());
        }
        if self.nodes() > 10_000 {
            return invalid("customers", format!("{} nodes is more than the 10,000 one process runs", self.nodes()));
        }
        if !(1..=24).contains(&self.tick_hours) {
            return invalid("tick_hours", format!("{} is not in 1..=24", self.tick_hours));
        }
        if self.days == 0 || self.days > 3650 {
            return invalid("days", format!("{} is not in 1..=3650", self.days));
        }
        for (key, p) in [
            ("relationships.intent", r.intent),
            ("relationships.early", r.early),
            ("relationships.revocation", r.revocation),
            ("relationships.usage_priced", r.usage_priced),
            ("relationships.introduction", r.introduction),
            ("churn.departures", self.churn.departures),
            ("partitions.fraction", self.partitions.fraction),
            ("loss.reset_per_write", self.loss.reset_per_write),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return invalid(key, format!("{p} is not a probability"));
            }
        }
        if self.loss.reset_per_write > 0.05 {
            return invalid("loss.reset_per_write", "above 0.05 hardly any message gets through".into());
        }
        for (key, range) in [("relationships.per_customer", r.per_customer), ("relationships.answers", r.answers)] {
            if range.min > range.max {
                return invalid(key, format!("min {} is above max {}", range.min, range.max));
            }
        }
        if r.answers.max as usize > self.vendors {
            return invalid("relationships.answers", format!("max {} is more than the vendors", r.answers.max));
        }
        if r.intent > 0.0 && r.answers.min == 0 {
            return invalid("relationships.answers", "an intent needs at least one answer".into());
        }
        if r.stand_notice_day + r.notice_days >= 365 {
            return invalid(
                "relationships.stand_notice_day",
                "the notice period must end before the one-year term does".into(),
            );
        }
        if !(r.early_from < r.early_to && r.early_to <= r.stand_notice_day) {
            return invalid("relationships.early_from", "need early_from < early_to <= stand_notice_day".into());
        }
        if r.report_days == 0 || r.insight_days == 0 || self.target_peers == 0 {
            return invalid("relationships.report_days", "intervals and target_peers must be positive".into());
        }
        if self.churn.per_year < 0.0 || self.churn.mean_hours <= 0.0 || self.churn.max_days == 0 {
            return invalid("churn", "per_year must be >= 0, mean_hours and max_days positive".into());
        }
        if self.partitions.count > 0 && (self.partitions.max_days == 0 || self.partitions.fraction <= 0.0) {
            return invalid("partitions", "a partition needs a length and a side".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(name: &str) -> Scenario {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(format!("{name}.toml"));
        match Scenario::load(&path) {
            Ok(s) => s,
            Err(e) => panic!("{name}: {e}"),
        }
    }

    #[test]
    fn the_shipped_scenarios_load_with_their_sizes() {
        for (name, nodes) in [("small", 20), ("medium", 200), ("large", 1000)] {
            let s = shipped(name);
            assert_eq!((s.name.as_str(), s.nodes()), (name, nodes));
        }
    }

    #[test]
    fn bad_values_are_named() {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/small.toml"))
            .unwrap_or_default();
        let bad = text.replace("stand_notice_day = 330", "stand_notice_day = 355");
        let e = Scenario::parse(&bad, Path::new("x.toml")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("invalid setting relationships.stand_notice_day: "), "{e}");
        let unknown = format!("{text}\nspeed = 3\n");
        let e = Scenario::parse(&unknown, Path::new("x.toml")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("unknown field") && e.contains("x.toml:"), "{e}");
    }
}
