//! What a seed makes of a scenario: the nodes, who starts which relationship when and how it
//! goes (its script), the intents, and the fault schedule. Everything here is drawn before the
//! network starts, from one ChaCha stream per concern, so a change in one concern's draws does
//! not shift the others.

use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha20Rng;
use rapport_protocol::Role;

use super::scenario::Scenario;

/// One step of a script: on relationship day `day` (or as soon after as the previous step is
/// delivered), `actor` sends `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Day of the relationship, from its first message.
    pub day: u32,
    /// Who sends it.
    pub actor: Role,
    /// What.
    pub action: Action,
}

/// What a step sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The vendor's offer, opening the relationship.
    Offer,
    /// Her terms; `usage` prices them per usage, otherwise upfront.
    Proposal {
        /// Priced per usage.
        usage: bool,
    },
    /// His acceptance of her terms.
    Acceptance,
    /// Her consent to use her data for the service.
    Grant,
    /// His monthly usage report.
    Usage,
    /// Her countersignature of his latest report.
    Countersign,
    /// An insight he shares under her consent.
    Insight,
    /// His introduction of a third party.
    Introduction,
    /// Her revocation of her consent.
    Revocation,
    /// Her separation notice, effective after the agreed notice period.
    Notice,
    /// His export of her data.
    Export,
    /// His statement that her data was returned and deleted.
    Statement,
    /// Her closure receipt.
    Closure,
    /// Her notice declining an offer she did not take (no agreement, no notice period).
    Decline,
    /// His statement answering a decline (nothing to return).
    DeclineStatement,
}

/// How a relationship goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A one-year stand ended by a friendly separation.
    Stand,
    /// Separated early.
    Early,
    /// An offer answering her intent that she did not take.
    Declined,
}

impl Kind {
    /// Name in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Stand => "one-year stand",
            Kind::Early => "early separation",
            Kind::Declined => "declined offer",
        }
    }
}

/// A relationship to start.
#[derive(Debug, Clone)]
pub struct Relationship {
    /// Customer's node.
    pub customer: usize,
    /// Vendor's node.
    pub vendor: usize,
    /// Scenario day of its offer.
    pub start: u32,
    /// How it goes.
    pub kind: Kind,
    /// Its steps, in order.
    pub steps: Vec<Step>,
}

/// An intent: she publishes it on `day`; the vendors in `answering` that hear it answer with an
/// offer, she takes the first and declines the others. `script` is how the one she takes goes.
#[derive(Debug, Clone)]
pub struct Intent {
    /// Customer's node.
    pub customer: usize,
    /// Scenario day.
    pub day: u32,
    /// Vendors that mean to answer, in the order their offers are sent.
    pub answering: Vec<usize>,
    /// The taken offer's kind and steps.
    pub taken: (Kind, Vec<Step>),
}

/// A change of the network at the start of a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A node goes offline; its store is kept.
    Down(usize),
    /// It comes back.
    Up(usize),
    /// A node leaves for good.
    Depart(usize),
    /// A partition starts: `true` marks the small side.
    Split(Vec<bool>),
    /// It heals.
    Heal,
}

/// Everything the seed decides.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Vendors are nodes `0..vendors`, customers the rest.
    pub vendors: usize,
    /// Nodes in all.
    pub nodes: usize,
    /// Relationships started by an offer, by start day.
    pub direct: Vec<Relationship>,
    /// Intents, by day.
    pub intents: Vec<Intent>,
    /// Network changes, `(tick, event)`, by tick.
    pub events: Vec<(u64, Event)>,
    /// Node keys' seeds.
    pub keys: Vec<[u8; 32]>,
}

fn rng(seed: u64, stream: u64) -> ChaCha20Rng {
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

impl Plan {
    /// The plan of `s`.
    pub fn new(s: &Scenario) -> Plan {
        let nodes = s.nodes();
        let mut keys = rng(s.seed, 1);
        let keys = (0..nodes).map(|_| keys.gen::<[u8; 32]>()).collect();
        let mut plan =
            Plan { vendors: s.vendors, nodes, direct: Vec::new(), intents: Vec::new(), events: Vec::new(), keys };
        plan.draw_relationships(s);
        plan.draw_faults(s);
        plan
    }

    /// Whether node `i` is a vendor's.
    pub fn is_vendor(&self, i: usize) -> bool {
        i < self.vendors
    }

    fn draw_relationships(&mut self, s: &Scenario) {
        let r = &s.relationships;
        let mut rng = rng(s.seed, 2);
        for customer in self.vendors..self.nodes {
            let count = rng.gen_range(r.per_customer.min..=r.per_customer.max) as usize;
            let mut vendors: Vec<usize> = (0..self.vendors).collect();
            vendors.shuffle(&mut rng);
            let mut vendors = vendors.into_iter().cycle();
            for n in 0..count {
                let start = rng.gen_range(0..r.start_days.max(1));
                let script = script(s, &mut rng);
                if n == 0 && rng.gen_bool(r.intent) {
                    let answers = rng.gen_range(r.answers.min..=r.answers.max) as usize;
                    let mut all: Vec<usize> = (0..self.vendors).collect();
                    all.shuffle(&mut rng);
                    all.truncate(answers);
                    self.intents.push(Intent { customer, day: start, answering: all, taken: script });
                } else if let Some(vendor) = vendors.next() {
                    let (kind, steps) = script;
                    self.direct.push(Relationship { customer, vendor, start, kind, steps });
                }
            }
        }
        self.direct.sort_by_key(|r| (r.start, r.customer, r.vendor));
        self.intents.sort_by_key(|i| (i.day, i.customer));
    }

    fn draw_faults(&mut self, s: &Scenario) {
        let per_day = 24 / s.tick_hours as u64;
        let ticks = u64::from(s.days) * per_day;
        let tick_of = |hours: f64| (hours / f64::from(s.tick_hours)).round() as u64;
        let mut churn = rng(s.seed, 3);
        for node in 0..self.nodes {
            // A Poisson process of offline periods; the node is back before the next one starts.
            let mut at = 0.0;
            loop {
                let gap: f64 = -churn.gen_range(f64::EPSILON..1.0f64).ln() / s.churn.per_year.max(1e-9) * 365.0 * 24.0;
                at += gap;
                let down = tick_of(at);
                if down >= ticks || s.churn.per_year == 0.0 {
                    break;
                }
                let hours = (-churn.gen_range(f64::EPSILON..1.0f64).ln() * s.churn.mean_hours)
                    .min(f64::from(s.churn.max_days) * 24.0);
                let up = (down + tick_of(hours).max(1)).min(ticks);
                self.events.push((down, Event::Down(node)));
                self.events.push((up, Event::Up(node)));
                at = up as f64 * f64::from(s.tick_hours);
            }
        }
        let mut departures = rng(s.seed, 4);
        for node in self.vendors..self.nodes {
            if departures.gen_bool(s.churn.departures) {
                let tick = departures.gen_range(0..ticks);
                // Leaving ends every offline period: nothing brings the node back.
                self.events.retain(|(t, e)| !(matches!(e, Event::Up(n) if *n == node) && *t > tick));
                self.events.retain(|(t, e)| !(matches!(e, Event::Down(n) if *n == node) && *t > tick));
                self.events.push((tick, Event::Depart(node)));
            }
        }
        let mut parts = rng(s.seed, 5);
        let p = &s.partitions;
        let mut next_free = 0;
        for _ in 0..p.count {
            let len = parts.gen_range(1..=p.max_days) as u64 * per_day;
            let latest = ticks.saturating_sub(len).max(next_free + 1);
            let start = parts.gen_range(next_free..latest);
            let sides = (0..self.nodes).map(|_| parts.gen_bool(p.fraction)).collect();
            self.events.push((start, Event::Split(sides)));
            self.events.push((start + len, Event::Heal));
            next_free = start + len + 1;
        }
        // Within a tick: departures and comings back before goings, so a node is never both.
        self.events.sort_by_key(|(t, e)| {
            let order = match e {
                Event::Heal => 0,
                Event::Up(_) => 1,
                Event::Depart(_) => 2,
                Event::Down(_) => 3,
                Event::Split(_) => 4,
            };
            (*t, order)
        });
    }
}

/// A relationship's script: the opening (offer, her terms, his acceptance, her consent), the
/// active months (reports and countersignatures, insights, an introduction, a revocation), and
/// the friendly separation (notice, export, statement, closure).
fn script(s: &Scenario, rng: &mut ChaCha20Rng) -> (Kind, Vec<Step>) {
    use Action::*;
    use Role::{Customer as C, Vendor as V};
    let r = &s.relationships;
    let kind = if rng.gen_bool(r.early) { Kind::Early } else { Kind::Stand };
    let end = match kind {
        Kind::Early => rng.gen_range(r.early_from..r.early_to),
        _ => r.stand_notice_day,
    };
    let usage = rng.gen_bool(r.usage_priced);
    let revoke = rng.gen_bool(r.revocation).then(|| rng.gen_range(2..end.max(3)));
    let introduce = rng.gen_bool(r.introduction).then(|| rng.gen_range(1..end.max(2)));
    let step = |day, actor, action| Step { day, actor, action };
    let mut middle = Vec::new();
    if usage {
        middle.extend(
            (1..)
                .map(|k| k * r.report_days)
                .take_while(|d| *d < end)
                .flat_map(|d| [step(d, V, Usage), step(d, C, Countersign)]),
        );
    }
    let last_insight = revoke.unwrap_or(end);
    middle.extend((1..).map(|k| k * r.insight_days).take_while(|d| *d < last_insight).map(|d| step(d, V, Insight)));
    middle.extend(introduce.map(|d| step(d, V, Introduction)));
    middle.extend(revoke.map(|d| step(d, C, Revocation)));
    // Stable: on one day, reports come before their countersignatures.
    middle.sort_by_key(|st| st.day);
    let mut steps = vec![step(0, V, Offer), step(0, C, Proposal { usage }), step(0, V, Acceptance), step(1, C, Grant)];
    steps.extend(middle);
    steps.extend([
        step(end, C, Notice),
        step(end + 2, V, Export),
        step(end + 3, V, Statement),
        step(end + 3, C, Closure),
    ]);
    (kind, steps)
}

/// A declined offer's script: his offer, her notice declining it, his statement, her closure.
pub fn declined() -> Vec<Step> {
    use Action::*;
    use Role::{Customer as C, Vendor as V};
    vec![
        Step { day: 0, actor: V, action: Offer },
        Step { day: 1, actor: C, action: Decline },
        Step { day: 1, actor: V, action: DeclineStatement },
        Step { day: 1, actor: C, action: Closure },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Scenario {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/small.toml");
        match Scenario::load(&path) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_plan_and_another_seed_another() {
        let s = small();
        let (a, b) = (Plan::new(&s), Plan::new(&s));
        assert_eq!(format!("{:?}", a.direct), format!("{:?}", b.direct));
        assert_eq!(a.events, b.events);
        let other = Plan::new(&Scenario { seed: s.seed + 1, ..s });
        assert_ne!(format!("{:?}", a.direct), format!("{:?}", other.direct));
    }

    #[test]
    fn scripts_open_and_close_in_order_and_keep_within_the_term() {
        let s = small();
        let plan = Plan::new(&s);
        assert!(!plan.direct.is_empty() && !plan.intents.is_empty());
        for r in &plan.direct {
            let actions: Vec<Action> = r.steps.iter().map(|s| s.action).collect();
            assert_eq!(actions[0], Action::Offer);
            assert!(matches!(actions[1], Action::Proposal { .. }));
            assert_eq!(
                &actions[actions.len() - 4..],
                &[Action::Notice, Action::Export, Action::Statement, Action::Closure]
            );
            assert!(r.steps.windows(2).all(|w| w[0].day <= w[1].day), "{actions:?}");
            let notice = r.steps[r.steps.len() - 4].day;
            assert!(notice + s.relationships.notice_days < 365);
            // No insight after her revocation: it would need a consent she withdrew.
            if let Some(rev) = r.steps.iter().position(|s| s.action == Action::Revocation) {
                assert!(!r.steps[rev..].iter().any(|s| s.action == Action::Insight));
            }
        }
    }

    #[test]
    fn every_node_that_goes_down_comes_back_unless_it_departs() {
        let plan = Plan::new(&Scenario {
            churn: super::super::scenario::Churn { departures: 0.2, ..small().churn },
            ..small()
        });
        let mut down = vec![false; plan.nodes];
        let mut gone = vec![false; plan.nodes];
        for (_, e) in &plan.events {
            match e {
                Event::Down(n) => {
                    assert!(!down[*n] && !gone[*n]);
                    down[*n] = true;
                }
                Event::Up(n) => {
                    assert!(down[*n] && !gone[*n]);
                    down[*n] = false;
                }
                Event::Depart(n) => gone[*n] = true,
                _ => {}
            }
        }
        assert!(gone.iter().any(|g| *g));
        assert!(down.iter().zip(&gone).all(|(d, g)| !d || *g), "a node stays down without departing");
    }
}
