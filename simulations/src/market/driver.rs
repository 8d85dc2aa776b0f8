//! The run: a simulated clock in ticks, the plan's network changes and script steps applied at
//! each tick, and the network given the time it needs to carry what they caused before the
//! clock moves on.
//!
//! # Why the same seed gives the same outcomes
//! The plan fixes, per tick, which nodes are up and which side of a partition they are on.
//! Within a tick the driver waits until every message whose sender and recipient can reach each
//! other has been receipted (*settled*), nudging the clock forward inside the tick so that the
//! outbox's retries come due. So whether a message is delivered by the end of a tick depends on
//! the plan alone, and so does when each next step of a script may go. Timing inside a tick
//! (retries, loss, which connection carries what) changes measurements, never outcomes. A tick
//! that does not settle within the wait bound is counted in the report (`stalled_ticks`): its
//! outcomes may then differ from run to run.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rapport_node::engine::{Command, Draft, Error as EngineError, Handle, Submitted};
use rapport_node::store::Store as _;
use rapport_protocol::{MessageId, RelationshipId, Role, Timestamp};
use tokio::sync::mpsc;

use super::bodies::{self, Refs};
use super::fleet::Fleet;
use super::plan::{self, Action, Event, Kind, Plan, Step};
use super::scenario::Scenario;

/// Unix ms of scenario day 0: 2027-01-01T00:00:00Z.
pub const EPOCH: Timestamp = 1_798_761_600_000;
const HOUR_MS: u64 = 3_600_000;
/// How long a tick may take to settle, in wall-clock time, before the driver moves on.
pub const SETTLE_WAIT: Duration = Duration::from_secs(60);
/// Polls (of about 2 ms) between retries forced once the clock stands at the tick's end.
const RETRY_POLLS: u32 = 250;
/// Rounds of steps within one tick: a step that the previous round's delivery made possible
/// goes in the same tick (an offer, her terms and his acceptance all on day 0).
const ROUNDS: usize = 16;
/// The run goes on past the scenario's days until every script has ended, at most this long.
pub const MAX_DRAIN_DAYS: u32 = 240;

/// A relationship as it runs.
#[derive(Debug)]
pub struct Rel {
    /// Customer's node.
    pub customer: usize,
    /// Vendor's node.
    pub vendor: usize,
    /// How it goes.
    pub kind: Kind,
    steps: Vec<Step>,
    /// Index of the next step.
    pub next: usize,
    /// Tick of its first message.
    pub start: u64,
    /// Its id, once the offer is sent.
    pub id: Option<RelationshipId>,
    refs: Refs,
    /// The message of the previous step, until it is delivered.
    waiting: Option<MessageId>,
    /// Tick its closure receipt was delivered.
    pub closed: Option<u64>,
    /// A step refused by its own node or by the recipient: the script stops.
    pub refused: Option<String>,
}

impl Rel {
    fn new(customer: usize, vendor: usize, kind: Kind, steps: Vec<Step>, start: u64) -> Rel {
        Rel {
            customer,
            vendor,
            kind,
            steps,
            next: 0,
            start,
            id: None,
            refs: Refs::default(),
            waiting: None,
            closed: None,
            refused: None,
        }
    }

    fn node(&self, role: Role) -> usize {
        match role {
            Role::Customer => self.customer,
            Role::Vendor => self.vendor,
        }
    }

    /// Every step taken and delivered, or stopped by a refusal.
    pub fn ended(&self) -> bool {
        self.refused.is_some() || (self.next == self.steps.len() && self.waiting.is_none())
    }
}

/// A message on its way.
#[derive(Debug)]
pub struct Flight {
    /// Its relationship.
    pub rel: usize,
    /// The step that sent it.
    pub action: Action,
    /// Sender's node.
    pub from: usize,
    /// Recipient's node.
    pub to: usize,
    /// When it was queued.
    pub queued: Instant,
    /// The recipient was up and reachable when it was queued: its latency is the network's.
    pub reachable: bool,
}

/// An intent waiting for the vendors it should reach to hear it.
#[derive(Debug)]
struct Listening {
    plan: usize,
    id: MessageId,
    expected: Vec<usize>,
    heard: Vec<usize>,
}

/// Everything the run counted.
#[derive(Debug, Default)]
pub struct Tally {
    /// Messages the parties asked their nodes to send.
    pub sent: u64,
    /// Receipted.
    pub delivered: u64,
    /// Refused by the recipient.
    pub refused_by_recipient: u64,
    /// Steps refused by the sender's own node, by code.
    pub refused: HashMap<String, u64>,
    /// Messages by kind.
    pub by_kind: HashMap<&'static str, u64>,
    /// Latency samples, ms.
    pub latencies: Vec<f64>,
    /// Intents published.
    pub intents: u64,
    /// Offers answering intents.
    pub intent_offers: u64,
    /// Vendors that should have heard an intent and did not within the wait.
    pub intent_missed: u64,
    /// Ticks that did not settle.
    pub stalled: u64,
    /// Times a node went offline.
    pub churn: u64,
    /// Node-ticks offline.
    pub offline_ticks: u64,
    /// Departures.
    pub departed: u64,
    /// Partitions.
    pub partitions: u64,
}

/// What a sample callback sees at the start of each scenario day.
#[derive(Debug, Clone, Copy)]
pub struct DayView {
    /// Day.
    pub day: f64,
    /// Messages sent so far.
    pub sent: u64,
    /// Delivered so far.
    pub delivered: u64,
    /// Nodes online.
    pub online: u64,
    /// A partition is in force.
    pub partitioned: bool,
}

/// The run's state.
#[derive(Debug)]
pub struct Driver {
    /// The scenario.
    pub scenario: Scenario,
    /// Its plan.
    pub plan: Plan,
    /// The nodes.
    pub fleet: Fleet,
    notices: mpsc::Receiver<MessageId>,
    /// Relationships, in the order they started.
    pub rels: Vec<Rel>,
    /// Messages on their way.
    pub flights: HashMap<MessageId, Flight>,
    /// Counts.
    pub tally: Tally,
    /// Nodes that left for good.
    pub departed: Vec<bool>,
    listening: Vec<Listening>,
    next_direct: usize,
    next_intent: usize,
    next_event: usize,
    partitioned: bool,
    /// The current tick.
    pub tick: u64,
}

fn parse_submitted(s: &Submitted) -> Option<(MessageId, Option<RelationshipId>)> {
    Some((MessageId::from_hex(&s.id)?, RelationshipId::from_hex(&s.relationship)))
}

impl Driver {
    /// A driver for `scenario`, its `plan` and `fleet` (started).
    pub fn new(scenario: Scenario, plan: Plan, fleet: Fleet, notices: mpsc::Receiver<MessageId>) -> Driver {
        let departed = vec![false; plan.nodes];
        Driver {
            scenario,
            plan,
            fleet,
            notices,
            rels: Vec::new(),
            flights: HashMap::new(),
            tally: Tally::default(),
            departed,
            listening: Vec::new(),
            next_direct: 0,
            next_intent: 0,
            next_event: 0,
            partitioned: false,
            tick: 0,
        }
    }

    fn ticks_per_day(&self) -> u64 {
        24 / u64::from(self.scenario.tick_hours)
    }

    /// The scenario day of `tick`.
    pub fn day_of(&self, tick: u64) -> f64 {
        tick as f64 / self.ticks_per_day() as f64
    }

    fn tick_ms(&self) -> u64 {
        u64::from(self.scenario.tick_hours) * HOUR_MS
    }

    fn tick_start(&self) -> Timestamp {
        EPOCH + self.tick * self.tick_ms()
    }

    /// Ticks of the scenario's days.
    pub fn scenario_ticks(&self) -> u64 {
        u64::from(self.scenario.days) * self.ticks_per_day()
    }

    /// Whether everything has ended: the scenario's days are over, every script ended or waits on
    /// a node that left, every intent was answered and no message can still move.
    pub fn finished(&self) -> bool {
        self.tick >= self.scenario_ticks()
            && self.next_direct == self.plan.direct.len()
            && self.next_intent == self.plan.intents.len()
            && self.listening.is_empty()
            && self.rels.iter().all(|r| r.ended() || self.blocked(r))
            && self.next_event >= self.plan.events.len()
    }

    /// Whether a party of `r` left the network for good, so that its script cannot go on.
    pub fn blocked(&self, r: &Rel) -> bool {
        self.departed[r.customer] || self.departed[r.vendor]
    }

    /// A snapshot for the day's sample.
    pub fn view(&self) -> DayView {
        DayView {
            day: self.day_of(self.tick),
            sent: self.tally.sent,
            delivered: self.tally.delivered,
            online: (0..self.plan.nodes).filter(|i| self.fleet.online(*i)).count() as u64,
            partitioned: self.partitioned,
        }
    }

    /// Runs tick `self.tick`: its network changes, then rounds of due steps, each settled.
    pub async fn step(&mut self) -> Result<(), super::Error> {
        self.fleet.clock.store(self.tick_start(), std::sync::atomic::Ordering::Relaxed);
        self.apply_events().await?;
        self.start_due();
        self.publish_intents().await;
        for _ in 0..ROUNDS {
            let issued = self.issue_due().await;
            self.settle().await;
            self.answer_intents();
            if issued == 0 && !self.has_due() {
                break;
            }
        }
        self.tally.offline_ticks += (0..self.plan.nodes).filter(|i| !self.fleet.online(*i)).count() as u64;
        self.tick += 1;
        Ok(())
    }

    async fn apply_events(&mut self) -> Result<(), super::Error> {
        while let Some((at, event)) = self.plan.events.get(self.next_event).cloned() {
            if at > self.tick {
                break;
            }
            self.next_event += 1;
            match event {
                Event::Down(n) => {
                    self.tally.churn += 1;
                    self.fleet.stop(n).await;
                }
                Event::Up(n) => {
                    let boot = self.bootstrap(n);
                    self.fleet.start(n, &boot)?;
                }
                Event::Depart(n) => {
                    self.tally.departed += 1;
                    self.departed[n] = true;
                    self.fleet.stop(n).await;
                }
                Event::Split(sides) => {
                    self.tally.partitions += 1;
                    self.partitioned = true;
                    self.fleet.net.partition(Some(sides));
                }
                Event::Heal => {
                    self.partitioned = false;
                    self.fleet.net.partition(None);
                }
            }
        }
        Ok(())
    }

    /// Gives each party of a planned relationship the other's address, as a customer has her
    /// vendor's from his offer or website and he has hers from her intent: the DHT is then for
    /// everyone else. (Found through the DHT alone, a counterparty's address took a lookup per
    /// message once the connection manager had closed the connection.)
    pub fn introduce_counterparties(&self) {
        let pairs = self.plan.direct.iter().map(|r| (r.customer, r.vendor));
        let answers = self.plan.intents.iter().flat_map(|i| i.answering.iter().map(move |v| (i.customer, *v)));
        for (a, b) in pairs.chain(answers) {
            for (me, other) in [(a, b), (b, a)] {
                let other = &self.fleet.nodes[other];
                let _ = self.fleet.nodes[me].store.peer_put(&other.peer.to_string(), &[other.address.to_string()]);
            }
        }
    }

    /// Three nodes for `n` to join the DHT through: fixed by the seed, so that restarts are too.
    pub fn bootstrap(&self, n: usize) -> Vec<usize> {
        let nodes = self.plan.nodes;
        let mix = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.scenario.seed;
        (1..=3u64).map(|k| (mix.rotate_left(17 * k as u32) % nodes as u64) as usize).filter(|b| *b != n).collect()
    }

    fn start_due(&mut self) {
        while let Some(r) = self.plan.direct.get(self.next_direct) {
            if u64::from(r.start) * self.ticks_per_day() > self.tick {
                break;
            }
            self.rels.push(Rel::new(r.customer, r.vendor, r.kind, r.steps.clone(), self.tick));
            self.next_direct += 1;
        }
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        self.fleet.online(a) && self.fleet.online(b) && self.fleet.net.reachable(a, b)
    }

    /// Publishes the intents due whose customer is online.
    async fn publish_intents(&mut self) {
        while let Some(intent) = self.plan.intents.get(self.next_intent) {
            if u64::from(intent.day) * self.ticks_per_day() > self.tick {
                break;
            }
            let (customer, plan_index) = (intent.customer, self.next_intent);
            if self.departed[customer] {
                self.next_intent += 1;
                continue;
            }
            let Some(handle) = self.fleet.handle(customer) else { break };
            let draft = Draft { relationship: None, to: None, body: bodies::intent() };
            match handle.ask(|tx| Command::Send(Box::new(draft), tx)).await {
                Ok(Ok(s)) => {
                    if let Some((id, _)) = parse_submitted(&s) {
                        self.tally.intents += 1;
                        let expected = intent
                            .answering
                            .iter()
                            .copied()
                            .filter(|v| !self.departed[*v] && self.reachable(customer, *v))
                            .collect();
                        self.listening.push(Listening { plan: plan_index, id, expected, heard: Vec::new() });
                    }
                }
                Ok(Err(e)) => *self.tally.refused.entry(format!("intent: {e}")).or_default() += 1,
                Err(_) => {}
            }
            self.next_intent += 1;
        }
    }

    /// Intents every expected vendor has heard (or that waited out the tick) become offers.
    fn answer_intents(&mut self) {
        for l in std::mem::take(&mut self.listening) {
            let intent = &self.plan.intents[l.plan];
            self.tally.intent_missed += (l.expected.len() - l.heard.len()) as u64;
            // In the order the plan gives: the first vendor's offer is the one she takes.
            let mut first = true;
            for v in intent.answering.iter().filter(|v| l.heard.contains(v)) {
                let (kind, steps) = if first { intent.taken.clone() } else { (Kind::Declined, plan::declined()) };
                first = false;
                self.tally.intent_offers += 1;
                self.rels.push(Rel::new(intent.customer, *v, kind, steps, self.tick));
            }
        }
    }

    fn due(&self, r: &Rel) -> Option<Step> {
        if r.ended() || r.waiting.is_some() || self.blocked(r) {
            return None;
        }
        let step = *r.steps.get(r.next)?;
        let at = r.start + u64::from(step.day) * self.ticks_per_day();
        (at <= self.tick && self.fleet.online(r.node(step.actor))).then_some(step)
    }

    fn has_due(&self) -> bool {
        self.rels.iter().any(|r| self.due(r).is_some())
    }

    /// Sends every step that is due, all at once; returns how many went.
    async fn issue_due(&mut self) -> usize {
        let now = self.fleet.clock.load(std::sync::atomic::Ordering::Relaxed);
        let notice_days = self.scenario.relationships.notice_days;
        let slack = self.tick_ms();
        let mut asks = Vec::new();
        for (i, r) in self.rels.iter().enumerate() {
            let Some(step) = self.due(r) else { continue };
            let (from, to) = (r.node(step.actor), r.node(step.actor.other()));
            let Some(handle) = self.fleet.handle(from) else { continue };
            let Some(body) = bodies::body(step.action, &r.refs, now, notice_days, slack) else {
                continue;
            };
            let to_key = (step.action == Action::Offer).then_some(self.fleet.nodes[to].key_id);
            let draft = Draft { relationship: r.id, to: to_key, body };
            asks.push((i, step, from, to, ask(handle, draft)));
        }
        let issued = asks.len();
        let (meta, futures): (Vec<_>, Vec<_>) = asks.into_iter().map(|(i, s, f, t, fut)| ((i, s, f, t), fut)).unzip();
        let answers = futures::future::join_all(futures).await;
        for ((i, step, from, to), answer) in meta.into_iter().zip(answers) {
            self.submitted(i, step, from, to, answer);
        }
        issued
    }

    fn submitted(&mut self, i: usize, step: Step, from: usize, to: usize, answer: Result<Submitted, EngineError>) {
        let reachable = self.reachable(from, to);
        let kind_name = step_kind(step.action);
        let r = &mut self.rels[i];
        let parsed = answer.as_ref().ok().and_then(parse_submitted);
        match parsed {
            Some((id, rel_id)) => {
                r.id = r.id.or(rel_id);
                r.refs.record(step.action, id);
                r.waiting = Some(id);
                r.next += 1;
                self.tally.sent += 1;
                *self.tally.by_kind.entry(kind_name).or_default() += 1;
                self.flights
                    .insert(id, Flight { rel: i, action: step.action, from, to, queued: Instant::now(), reachable });
            }
            None => {
                let why = match answer {
                    Err(EngineError::Refused { code, .. }) => code.to_string(),
                    Err(e) => e.to_string(),
                    Ok(_) => "unreadable answer".into(),
                };
                r.refused = Some(format!("{kind_name} refused by its own node: {why}"));
                *self.tally.refused.entry(why).or_default() += 1;
            }
        }
    }

    fn on_notice(&mut self, id: MessageId) {
        let Some(f) = self.flights.remove(&id) else { return };
        let stored = matches!(self.fleet.nodes[f.to].store.message(&id), Ok(Some(_)));
        let r = &mut self.rels[f.rel];
        if r.waiting == Some(id) {
            r.waiting = None;
        }
        if stored {
            self.tally.delivered += 1;
            if f.reachable {
                self.tally.latencies.push(f.queued.elapsed().as_secs_f64() * 1000.0);
            }
            if f.action == Action::Closure {
                r.closed = Some(self.tick);
            }
        } else {
            self.tally.refused_by_recipient += 1;
            r.refused = Some(format!("{} refused by the recipient", step_kind(f.action)));
        }
    }

    /// Whether any message can still move this tick, or an intent is still spreading.
    fn unsettled(&self) -> bool {
        let moving = self.flights.values().any(|f| self.reachable(f.from, f.to));
        let mut listening = false;
        for l in &self.listening {
            listening |= l.heard.len() < l.expected.len();
        }
        moving || listening
    }

    /// Waits until nothing that can move this tick is still moving, nudging the clock within
    /// the tick so that retries come due.
    async fn settle(&mut self) {
        let deadline = Instant::now() + SETTLE_WAIT;
        let end = self.tick_start() + self.tick_ms() - 1;
        let mut polls = 0u32;
        loop {
            while let Ok(id) = self.notices.try_recv() {
                self.on_notice(id);
            }
            if polls % 10 == 0 {
                self.poll_intents().await;
            }
            if !self.unsettled() {
                return;
            }
            if Instant::now() > deadline {
                self.tally.stalled += 1;
                tracing::warn!(tick = self.tick, flights = self.flights.len(), "tick did not settle");
                return;
            }
            polls += 1;
            // Ten simulated seconds per real millisecond: the longest backoff (5 minutes) comes
            // due in about 30 ms of waiting.
            let clock = &self.fleet.clock;
            let t = clock.load(std::sync::atomic::Ordering::Relaxed);
            clock.store((t + 20_000).min(end), std::sync::atomic::Ordering::Relaxed);
            // At the tick's end the clock stops, and a retry set for later would never come due
            // (under load, when the recipient refuses connections for a while): the senders
            // still waiting retry now, every half second.
            if t >= end && polls % RETRY_POLLS == 0 {
                self.retry_now().await;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Has every node with a message still moving this tick send its outbox now.
    async fn retry_now(&self) {
        let mut senders: Vec<usize> =
            self.flights.values().filter(|f| self.reachable(f.from, f.to)).map(|f| f.from).collect();
        senders.sort_unstable();
        senders.dedup();
        for n in senders {
            if let Some(handle) = self.fleet.handle(n) {
                let _ = handle.ask(Command::RetryNow).await;
            }
        }
    }

    async fn poll_intents(&mut self) {
        for l in 0..self.listening.len() {
            let pending: Vec<usize> = {
                let l = &self.listening[l];
                l.expected.iter().copied().filter(|v| !l.heard.contains(v)).collect()
            };
            for v in pending {
                let Some(handle) = self.fleet.handle(v) else { continue };
                let Ok(public) = handle.ask(Command::Public).await else { continue };
                let id = self.listening[l].id;
                if public.iter().any(|m| m.id() == id) {
                    self.listening[l].heard.push(v);
                }
            }
        }
    }
}

async fn ask(handle: Handle, draft: Draft) -> Result<Submitted, EngineError> {
    handle.ask(|tx| Command::Send(Box::new(draft), tx)).await?
}

fn step_kind(action: Action) -> &'static str {
    match action {
        Action::Offer => "offer",
        Action::Proposal { .. } => "terms_proposal",
        Action::Acceptance => "terms_acceptance",
        Action::Grant => "consent_grant",
        Action::Usage => "usage_report",
        Action::Countersign => "countersignature",
        Action::Insight | Action::Export => "data_share",
        Action::Introduction => "introduction",
        Action::Revocation => "consent_revocation",
        Action::Notice | Action::Decline => "separation_notice",
        Action::Statement | Action::DeclineStatement => "disposition_statement",
        Action::Closure => "closure_receipt",
    }
}

/// Whether `body` is the kind a step sends (a check on [`step_kind`]).
#[cfg(test)]
fn same_kind(action: Action, body: &rapport_protocol::Body) -> bool {
    body.kind().as_str() == step_kind(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_kinds_name_the_bodies_they_send() {
        let refs = Refs {
            proposal: Some(MessageId::of(b"p")),
            grant: Some(MessageId::of(b"g")),
            report: Some(MessageId::of(b"r")),
            notice: Some(MessageId::of(b"n")),
            statement: Some(MessageId::of(b"s")),
        };
        use Action::*;
        for a in [
            Offer,
            Proposal { usage: true },
            Acceptance,
            Grant,
            Usage,
            Countersign,
            Insight,
            Introduction,
            Revocation,
            Notice,
            Export,
            Statement,
            Closure,
            Decline,
            DeclineStatement,
        ] {
            let body = bodies::body(a, &refs, EPOCH, 14, 0);
            assert!(body.as_ref().is_some_and(|b| same_kind(a, b)), "{a:?}: {body:?}");
        }
        assert!(bodies::body(Acceptance, &Refs::default(), EPOCH, 14, 0).is_none());
    }
}
