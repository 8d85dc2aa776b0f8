//! The discrete-event loop: a virtual clock, the network between the nodes, the faults, and
//! the workload's parties.
//!
//! The network carries the engine's request-response exchanges: a request holds one signed
//! message and is answered once, by a receipt or a problem report. A request to a node that
//! is down or cut off fails after a dial delay; a request or answer that is lost makes the
//! request time out after the network's real [`REQUEST_TIMEOUT`]; a cut or a crash fails the
//! requests across it at once, as a closed connection does. Delays are seeded per message,
//! so messages overtake each other; duplicates arrive as extra requests whose answers go
//! nowhere, some of them late. After a partition heals or a node restarts, both ends see a
//! new connection and send what waits for the other (the engine's `deliver_waiting`).

mod check;
mod faults;
mod mallory;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use rapport_node::engine::OUTBOX_TICK;
use rapport_node::network::REQUEST_TIMEOUT;
use rapport_protocol::{
    Body, ClosureReceipt, DispositionStatement, Header, Introduction, KeyId, Message, MessageId, Payload,
    RelationshipId, Role, Timestamp,
};
use sha2::{Digest as _, Sha256};

use super::node::{Channel, Ctx, Faults, Node, Out, Refusal, ReqId};
use super::store::{Backend, Disk, Tail};
use super::workload::{slot, Script, Submitted};
use super::{Config, Figures, Report, Violation, DRAIN_BOUND_MS};
use rapport_engine::NodeId;

/// 2026-01-01T00:00:00Z: virtual time 0.
const T0: Timestamp = 1_767_225_600_000;
/// The node that sends forged and malformed messages.
const MALLORY: usize = usize::MAX;

/// Something that happens at a point of virtual time.
#[derive(Debug)]
enum Ev {
    /// A party looks at its node's view and takes its next step if it can.
    Act {
        script: usize,
        role: Role,
    },
    Request {
        from: usize,
        to: usize,
        req: ReqId,
        bytes: Arc<[u8]>,
    },
    Response {
        from: usize,
        to: usize,
        req: ReqId,
        bytes: Arc<[u8]>,
    },
    /// `OutboundFailure`: the peer could not be reached (`unreachable`), or the request
    /// timed out or its connection closed.
    Failure {
        node: usize,
        req: ReqId,
        unreachable: bool,
    },
    Flushed {
        node: usize,
        epoch: u32,
        covered: usize,
    },
    Tick {
        node: usize,
        epoch: u32,
    },
    Connected {
        node: usize,
        peer: usize,
    },
    Disconnected {
        node: usize,
        peer: usize,
    },
    /// `armed`: the crash waited for a flush in progress, and strikes before it ends.
    Crash {
        node: usize,
        power: bool,
        down: u64,
        armed: bool,
    },
    Restart {
        node: usize,
    },
    Cut {
        partition: usize,
    },
    Heal {
        partition: usize,
    },
    Inject {
        node: usize,
        kind: u8,
    },
    /// The last fault healed: no more loss, duplicates or long delays.
    Calm,
}

struct Item {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Item {
    fn eq(&self, o: &Item) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Item) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    // Earliest first from a max-heap.
    fn cmp(&self, o: &Item) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// A seed's network conditions.
#[derive(Debug)]
struct Net {
    loss: f64,
    dup: f64,
    base: u64,
    jitter: u64,
    /// Chance of a long delay (seconds), while faults last.
    late: f64,
}

/// Per-node simulation state beside the node itself.
#[derive(Debug, Default, Clone)]
struct Slot {
    epoch: u32,
    /// The node's clock runs this far ahead of virtual time, ms.
    offset: u64,
    started: u64,
    tick_at: Option<u64>,
    down: bool,
    /// A crash waiting for the node's next flush: power loss, downtime.
    armed: Option<(bool, u64)>,
}

pub(crate) struct World {
    seed: u64,
    pub(crate) config: Config,
    rng: ChaCha8Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Item>,
    pub(crate) nodes: Vec<Node>,
    slots: Vec<Slot>,
    peers: BTreeMap<NodeId, usize>,
    pub(crate) scripts: Vec<Script>,
    partitions: Vec<(BTreeSet<usize>, bool)>,
    net: Net,
    next_req: ReqId,
    req_to: BTreeMap<ReqId, usize>,
    in_transit: u64,
    window: u64,
    calm: bool,
    /// (recipient, message) for every receipt a sender holds.
    pub(crate) receipted: BTreeSet<(usize, MessageId)>,
    /// Every message put on the network, and its sender.
    transmitted: BTreeMap<MessageId, usize>,
    /// Own messages that went out and were then lost by their sender's power loss.
    pub(crate) lost_sent: BTreeSet<MessageId>,
    pub(crate) figures: Figures,
    hasher: Sha256,
    mallory: SigningKey,
    pub(crate) violation: Option<Violation>,
    /// (node, message) for every message of its own a node told its caller was durable.
    pub(crate) confirmed: BTreeSet<(usize, MessageId)>,
    /// Messages confirmed before their party knew their id.
    confirmed_early: BTreeSet<MessageId>,
    _dir: tempfile::TempDir,
}

fn fail(seed: u64, config: &Config, invariant: &'static str, detail: impl Into<String>) -> Violation {
    Violation { seed, invariant, detail: detail.into(), replay: config.replay_command(seed) }
}

fn key(rng: &mut ChaCha8Rng) -> SigningKey {
    let mut bytes = [0u8; 32];
    rng.fill(&mut bytes);
    SigningKey::from_bytes(&bytes)
}

impl World {
    pub(crate) fn run(seed: u64, config: &Config) -> Result<Report, Violation> {
        let mut w = World::new(seed, config)?;
        let settled = w.run_loop();
        if let Some(v) = w.violation.take() {
            return Err(v);
        }
        let settled = settled.map_err(|d| w.fail("liveness", d))?;
        w.figures.max_drain_ms = settled;
        w.figures.total_drain_ms = settled;
        w.figures.virtual_ms = w.now;
        check::finish(&mut w).map_err(|(what, d)| w.fail(what, d))?;
        let trace = w.hasher.clone().finalize().into();
        Ok(Report { figures: w.figures.clone(), trace })
    }

    fn fail(&self, invariant: &'static str, detail: impl Into<String>) -> Violation {
        fail(self.seed, &self.config, invariant, detail)
    }

    fn new(seed: u64, config: &Config) -> Result<World, Violation> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let dir = tempfile::Builder::new()
            .prefix("rapport-dst-")
            .tempdir_in(config.base_dir())
            .map_err(|e| fail(seed, config, "setup", e.to_string()))?;
        let vendors = rng.gen_range(1..=3usize);
        let customers = rng.gen_range(2..=4usize);
        let mut nodes = Vec::new();
        let mut slots = Vec::new();
        let mut figures = Figures { seeds: 1, ..Figures::default() };
        for i in 0..vendors + customers {
            let backend = if rng.gen_bool(0.75) { Backend::Log } else { Backend::Memory };
            let store = Disk::create(backend, &dir.path().join(format!("node-{i}")))
                .map_err(|e| fail(seed, config, "setup", e.to_string()))?;
            let mut node = Node::new(key(&mut rng), store).map_err(|e| fail(seed, config, "setup", e))?;
            node.start(rng.gen()).map_err(|e| fail(seed, config, "setup", e))?;
            figures.nodes += 1;
            figures.log_nodes += u64::from(backend == Backend::Log);
            slots.push(Slot { offset: rng.gen_range(0..30_000), ..Slot::default() });
            nodes.push(node);
        }
        let peers = nodes.iter().enumerate().map(|(i, n)| (n.peer, i)).collect();
        let scripts: Vec<Script> = (0..rng.gen_range(2..=6))
            .map(|_| Script::new(rng.gen_range(0..vendors), vendors + rng.gen_range(0..customers), rng.gen_bool(0.7)))
            .collect();
        figures.relationships = scripts.len() as u64;
        let net = Net {
            loss: rng.gen_range(0.0..0.15),
            dup: rng.gen_range(0.0..0.1),
            base: rng.gen_range(1..30),
            jitter: rng.gen_range(1..300),
            late: rng.gen_range(0.0..0.03),
        };
        let window = rng.gen_range(20_000..90_000);
        let mallory = key(&mut rng);
        let mut w = World {
            seed,
            config: config.clone(),
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            slots,
            peers,
            scripts,
            partitions: Vec::new(),
            net,
            next_req: 1,
            req_to: BTreeMap::new(),
            in_transit: 0,
            window,
            calm: false,
            receipted: BTreeSet::new(),
            transmitted: BTreeMap::new(),
            lost_sent: BTreeSet::new(),
            figures,
            hasher: Sha256::new(),
            mallory,
            violation: None,
            confirmed_early: BTreeSet::new(),
            confirmed: BTreeSet::new(),
            _dir: dir,
        };
        w.plan();
        Ok(w)
    }

    /// Schedules the faults and the parties' first looks.
    fn plan(&mut self) {
        let n = self.nodes.len();
        for _ in 0..self.rng.gen_range(0..=4) {
            let at = self.rng.gen_range(0..self.window);
            let node = self.rng.gen_range(0..n);
            let power = self.rng.gen_bool(0.6);
            let down = self.rng.gen_range(50..15_000);
            self.at(at, Ev::Crash { node, power, down, armed: false });
        }
        for partition in 0..self.rng.gen_range(0..=3) {
            let mut set = BTreeSet::new();
            while set.is_empty() || set.len() == n {
                set = (0..n).filter(|_| self.rng.gen_bool(0.4)).collect();
            }
            let start = self.rng.gen_range(0..self.window);
            let end = (start + self.rng.gen_range(100..30_000)).min(self.window);
            self.partitions.push((set, false));
            self.at(start, Ev::Cut { partition });
            self.at(end, Ev::Heal { partition });
        }
        for _ in 0..self.rng.gen_range(0..=6) {
            let at = self.rng.gen_range(0..self.window);
            let node = self.rng.gen_range(0..n);
            let kind = self.rng.gen_range(0..5);
            self.at(at, Ev::Inject { node, kind });
        }
        for script in 0..self.scripts.len() {
            for role in [Role::Vendor, Role::Customer] {
                let at = self.rng.gen_range(0..2_000);
                self.at(at, Ev::Act { script, role });
            }
        }
        self.at(self.window, Ev::Calm);
    }

    fn at(&mut self, at: u64, ev: Ev) {
        if matches!(ev, Ev::Request { .. } | Ev::Response { .. }) {
            self.in_transit += 1;
        }
        self.seq += 1;
        self.queue.push(Item { at, seq: self.seq, ev });
    }

    fn after(&mut self, delay: u64, ev: Ev) {
        self.at(self.now + delay, ev);
    }

    fn trace(&mut self, tag: &str, a: u64, b: u64, bytes: &[u8]) {
        self.hasher.update(self.now.to_le_bytes());
        self.hasher.update(tag.as_bytes());
        self.hasher.update(a.to_le_bytes());
        self.hasher.update(b.to_le_bytes());
        self.hasher.update(bytes);
        if self.config.verbose {
            let id = if bytes.is_empty() { String::new() } else { MessageId::of(bytes).to_hex()[..8].to_owned() };
            let empty = bytes.is_empty();
            let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
            let kind = match Message::open(bytes) {
                Ok(m) => match m.body() {
                    Body::ProblemReport(p) => {
                        format!("problem_report {} for {:?}", p.code, p.message.map(|i| i.to_hex()[..8].to_owned()))
                    }
                    Body::Receipt(r) => format!("receipt for {}", &r.message.to_hex()[..8]),
                    _ => format!(
                        "{} seq {} rel {}",
                        m.kind().as_str(),
                        m.header().seq,
                        m.header().relationship.map(|r| r.to_hex()[..8].to_owned()).unwrap_or_default()
                    ),
                },
                Err(_) if empty => String::new(),
                Err(_) if bytes.len() == 32 => format!("id {}", &hex(bytes)[..8]),
                Err(_) => format!("{} bytes", bytes.len()),
            };
            eprintln!("{:>9} {tag:<10} {a:>6} {b:>6} {id} {kind}", self.now);
        }
    }

    /// The node's clock, Unix ms.
    fn clock(&self, node: usize) -> Timestamp {
        T0 + self.now + self.slots[node].offset
    }

    fn up(&self, node: usize) -> bool {
        node == MALLORY || !self.slots[node].down
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        if a == MALLORY || b == MALLORY {
            return self.up(a) && self.up(b);
        }
        self.up(a) && self.up(b) && !self.partitions.iter().any(|(set, on)| *on && set.contains(&a) != set.contains(&b))
    }

    fn delay(&mut self) -> u64 {
        let d = self.net.base + self.rng.gen_range(0..self.net.jitter);
        if !self.calm && self.rng.gen_bool(self.net.late) {
            return d + self.rng.gen_range(1_000..20_000);
        }
        d
    }

    fn lossy(&mut self, p: f64) -> bool {
        !self.calm && self.rng.gen_bool(p)
    }

    /// Runs until the network has settled after the last heal; returns the time that took.
    fn run_loop(&mut self) -> Result<u64, String> {
        while let Some(Item { at, ev, .. }) = self.queue.pop() {
            if at > self.window + DRAIN_BOUND_MS {
                break;
            }
            self.now = at;
            self.figures.events += 1;
            self.handle(ev);
            if self.violation.is_some() {
                return Ok(0);
            }
            if self.calm && self.settled() {
                return Ok(self.now - self.window);
            }
        }
        Err(format!("not settled {} s after the last heal: {}", DRAIN_BOUND_MS / 1000, self.unsettled()))
    }

    fn settled(&self) -> bool {
        self.in_transit == 0
            && self.slots.iter().all(|s| !s.down)
            && self.nodes.iter().all(|n| n.idle() && n.outbox_len() == 0)
            && (0..self.scripts.len()).all(|k| [Role::Vendor, Role::Customer].iter().all(|r| !self.can_act(k, *r)))
    }

    fn unsettled(&self) -> String {
        let mut out = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if n.outbox_len() > 0 || !n.idle() {
                out.push(format!("node {i}: {} in its outbox, idle {}", n.outbox_len(), n.idle()));
            }
        }
        for (k, s) in self.scripts.iter().enumerate() {
            if !s.done() {
                out.push(format!("relationship {k} stopped at steps {}/{}", s.cursors[0].next, s.cursors[1].next));
            }
        }
        out.join("; ")
    }

    /// Whether a party could take a step now, or waits for its node's answer.
    fn can_act(&self, k: usize, role: Role) -> bool {
        let s = &self.scripts[k];
        if s.cursors[slot(role)].pending.is_some() {
            return true;
        }
        let node = s.node(role);
        let view = s.rel.and_then(|r| self.nodes[node].relationships().and_then(|v| v.get(&r)));
        let other = self.nodes[s.node(role.other())].key_id;
        s.ready(role, view, other, self.clock(node)).is_some()
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Act { script, role } => self.act(script, role),
            Ev::Request { from, to, req, bytes } => {
                self.in_transit -= 1;
                self.trace("request", req, to as u64, &bytes);
                if !self.reachable(from, to) {
                    return;
                }
                let peer = if from == MALLORY { self.mallory_key() } else { self.nodes[from].key_id };
                self.turn(to, |n, ctx, _| n.on_request(ctx, peer, Channel { from, req }, &bytes));
            }
            Ev::Response { from, to, req, bytes } => {
                self.in_transit -= 1;
                self.trace("response", req, to as u64, &bytes);
                if !self.reachable(from, to) {
                    return;
                }
                let peer = self.nodes[from].key_id;
                self.turn(to, |n, ctx, _| n.on_response(ctx, peer, req, &bytes));
            }
            Ev::Failure { node, req, unreachable } => {
                if self.up(node) {
                    self.trace("failure", req, node as u64, &[]);
                    let to = self.req_to.get(&req).copied().unwrap_or(node);
                    self.turn(node, |n, ctx, _| n.on_failure(ctx, req, to, unreachable));
                }
            }
            Ev::Flushed { node, epoch, covered } => {
                if self.slots[node].epoch == epoch && self.up(node) {
                    self.trace("flushed", node as u64, covered as u64, &[]);
                    self.turn(node, |n, ctx, _| n.on_flushed(ctx, covered));
                }
            }
            Ev::Tick { node, epoch } => {
                if self.slots[node].epoch == epoch && self.slots[node].tick_at == Some(self.now) && self.up(node) {
                    self.slots[node].tick_at = None;
                    self.trace("tick", node as u64, 0, &[]);
                    self.turn(node, |n, ctx, _| n.tick(ctx));
                }
            }
            Ev::Connected { node, peer } => {
                if self.reachable(node, peer) {
                    self.trace("connected", node as u64, peer as u64, &[]);
                    let p = self.nodes[peer].peer;
                    self.turn(node, |n, ctx, _| n.connected(ctx, p));
                }
            }
            Ev::Disconnected { node, peer } => {
                if self.up(node) {
                    self.trace("disconnected", node as u64, peer as u64, &[]);
                    let p = self.nodes[peer].peer;
                    self.turn(node, |n, ctx, _| n.disconnected(ctx, p));
                }
            }
            Ev::Crash { node, power, down, armed } => self.crash(node, power, down, armed),
            Ev::Restart { node } => self.restart(node),
            Ev::Cut { partition } => {
                self.trace("cut", partition as u64, 0, &[]);
                self.partitions[partition].1 = true;
                self.figures.partitions += 1;
                self.fail_across();
            }
            Ev::Heal { partition } => {
                self.trace("heal", partition as u64, 0, &[]);
                self.partitions[partition].1 = false;
                self.reconnect(None);
            }
            Ev::Inject { node, kind } => self.inject(node, kind),
            Ev::Calm => {
                self.trace("calm", 0, 0, &[]);
                self.calm = true;
                for p in &mut self.partitions {
                    p.1 = false;
                }
                for node in 0..self.nodes.len() {
                    if self.slots[node].down {
                        self.restart(node);
                    }
                }
                self.reconnect(None);
            }
        }
    }

    /// One turn of node `node`'s loop: the handler, then the loop's end-of-turn writes and
    /// flushes, then what they asked of the world.
    fn turn<R>(&mut self, node: usize, f: impl FnOnce(&mut Node, &mut Ctx<'_>, &mut ChaCha8Rng) -> R) -> Option<R> {
        if !self.up(node) || self.nodes[node].process.is_none() {
            return None;
        }
        let mut out = Vec::new();
        let now = self.clock(node);
        let faults: Faults = self.config.faults;
        let r = {
            let mut ctx = Ctx { now, next_req: &mut self.next_req, out: &mut out, peers: &self.peers, faults };
            let n = &mut self.nodes[node];
            let r = f(n, &mut ctx, &mut self.rng);
            n.end_turn(&mut ctx);
            r
        };
        for o in out {
            self.output(node, o);
        }
        self.schedule_tick(node);
        Some(r)
    }

    fn output(&mut self, node: usize, o: Out) {
        match o {
            Out::Request { req, to, bytes } => {
                self.figures.requests += 1;
                self.transmitted.entry(MessageId::of(&bytes)).or_insert(node);
                self.req_to.insert(req, to);
                if !self.reachable(node, to) {
                    let d = self.rng.gen_range(20..1_000);
                    self.after(d, Ev::Failure { node, req, unreachable: true });
                    return;
                }
                let timeout = REQUEST_TIMEOUT.as_millis() as u64;
                self.after(timeout, Ev::Failure { node, req, unreachable: false });
                if self.lossy(self.net.loss) {
                    self.figures.lost += 1;
                    return;
                }
                let d = self.delay();
                self.after(d, Ev::Request { from: node, to, req, bytes: bytes.clone() });
                if self.lossy(self.net.dup) {
                    self.figures.duplicated += 1;
                    let ghost = self.next_req;
                    self.next_req += 1;
                    let d = self.delay();
                    self.after(d, Ev::Request { from: node, to, req: ghost, bytes });
                }
            }
            Out::Respond { channel, bytes } => {
                if channel.from == MALLORY {
                    return self.check_refusal(node, &bytes);
                }
                if !self.reachable(node, channel.from) {
                    return;
                }
                if self.lossy(self.net.loss) {
                    self.figures.lost += 1;
                    return;
                }
                let bytes: Arc<[u8]> = bytes.into();
                for copy in 0..2 {
                    if copy == 1 && !self.lossy(self.net.dup) {
                        break;
                    }
                    self.figures.duplicated += copy;
                    let d = self.delay();
                    let ev = Ev::Response { from: node, to: channel.from, req: channel.req, bytes: bytes.clone() };
                    self.after(d, ev);
                }
            }
            Out::Flush { covered } => {
                let d = if self.rng.gen_bool(0.05) { self.rng.gen_range(50..500) } else { self.rng.gen_range(1..15) };
                let epoch = self.slots[node].epoch;
                self.after(d, Ev::Flushed { node, epoch, covered });
                if let Some((power, down)) = self.slots[node].armed.take() {
                    let at = self.rng.gen_range(0..d);
                    self.after(at, Ev::Crash { node, power, down, armed: true });
                }
            }
            Out::Confirmed(id) => {
                self.trace("confirmed", node as u64, 0, id.as_bytes());
                self.confirmed.insert((node, id));
                let mut matched = false;
                for k in 0..self.scripts.len() {
                    for role in [Role::Vendor, Role::Customer] {
                        let s = &mut self.scripts[k];
                        let mine = s.node(role) == node;
                        let c = &mut s.cursors[slot(role)];
                        if mine && c.pending.is_some_and(|p| p.id == id) {
                            matched = true;
                            c.pending = None;
                            c.next += 1;
                            let d = self.rng.gen_range(0..500);
                            self.after(d, Ev::Act { script: k, role });
                        }
                    }
                }
                // Confirmed in the very turn that submitted it (a store that says its flush is
                // over at once): the party learns it as soon as the turn ends.
                if !matched {
                    self.confirmed_early.insert(id);
                }
            }
            Out::Receipted { id, to } => {
                self.figures.deliveries += 1;
                self.receipted.insert((to, id));
            }
            Out::Refused { code } => {
                self.trace("refused", node as u64, 0, code.as_str().as_bytes());
                self.figures.refused += 1;
            }
            Out::Repeat => self.figures.repeats += 1,
        }
    }

    /// Asks for the outbox tick when the node has work for it: on the engine's 200 ms grid,
    /// from the node's start. (Ticks with nothing to do are skipped: they change nothing.)
    fn schedule_tick(&mut self, node: usize) {
        if !self.up(node) {
            return;
        }
        let Some(due) = self.nodes[node].next_due() else { return };
        let s = &self.slots[node];
        let due = due.saturating_sub(T0 + s.offset).max(self.now + 1);
        let tick = OUTBOX_TICK.as_millis() as u64;
        let at = s.started + (due - s.started).div_ceil(tick) * tick;
        if s.tick_at.is_none_or(|t| t > at) {
            self.slots[node].tick_at = Some(at);
            let epoch = self.slots[node].epoch;
            self.at(at, Ev::Tick { node, epoch });
        }
    }

    fn act(&mut self, k: usize, role: Role) {
        let node = self.scripts[k].node(role);
        if !self.up(node) || self.scripts[k].cursors[slot(role)].pending.is_some() || self.scripts[k].done() {
            return;
        }
        let view = self.scripts[k].rel.and_then(|r| self.nodes[node].relationships().and_then(|v| v.get(&r)));
        let other = self.nodes[self.scripts[k].node(role.other())].key_id;
        let Some(ask) = self.scripts[k].ready(role, view, other, self.clock(node)) else {
            let d = self.rng.gen_range(50..500);
            self.after(d, Ev::Act { script: k, role });
            return;
        };
        let step = ask.step;
        let submitted = self.turn(node, |n, ctx, _| n.submit(ctx, ask.relationship, ask.to, ask.body));
        let s = &mut self.scripts[k];
        match submitted {
            None => {}
            Some(Ok((id, rel))) => {
                self.figures.messages += 1;
                self.hasher.update(id.as_bytes());
                s.cursors[slot(role)].pending = Some(Submitted { id, orphaned: false });
                if s.rel.is_none() {
                    s.rel = rel;
                }
                if self.confirmed_early.remove(&id) {
                    s.cursors[slot(role)].pending = None;
                    s.cursors[slot(role)].next += 1;
                    let d = self.rng.gen_range(0..500);
                    self.after(d, Ev::Act { script: k, role });
                }
            }
            Some(Err(Refusal::Protocol(code))) => {
                self.figures.refused_own += 1;
                s.refused.push((step, code));
                s.cursors[slot(role)].next += 1;
                self.after(1, Ev::Act { script: k, role });
            }
            Some(Err(Refusal::Bad(e))) => {
                self.violation = Some(self.fail("workload", format!("relationship {k}: {step:?}: {e}")));
            }
        }
    }
}
