//! The faults: cuts and crashes fail the requests across them, a restart reconnects, a crash
//! loses the process (and, for a power loss, the log's unflushed tail), and every restart
//! checks that the node still holds what it receipted.

use super::*;

impl World {
    /// Requests across a cut or to a crashed node fail, as their closed connection does.
    pub(super) fn fail_across(&mut self) {
        for a in 0..self.nodes.len() {
            if !self.up(a) {
                continue;
            }
            for (req, _) in self.nodes[a].in_flight() {
                let b = self.req_to.get(&req).copied().unwrap_or(a);
                if !self.reachable(a, b) {
                    let d = self.rng.gen_range(1..500);
                    self.after(d, Ev::Failure { node: a, req, unreachable: false });
                }
            }
        }
        // Both ends see the connection close.
        let pairs: BTreeSet<(usize, usize)> = self.scripts.iter().map(|s| (s.vendor, s.customer)).collect();
        for (a, b) in pairs {
            if self.reachable(a, b) {
                continue;
            }
            for (x, y) in [(a, b), (b, a)] {
                let d = self.rng.gen_range(1..100);
                self.after(d, Ev::Disconnected { node: x, peer: y });
            }
        }
    }

    /// Nodes that can reach each other again connect (only `node`'s pairs, if given).
    pub(super) fn reconnect(&mut self, node: Option<usize>) {
        let pairs: BTreeSet<(usize, usize)> = self.scripts.iter().map(|s| (s.vendor, s.customer)).collect();
        for (a, b) in pairs {
            if node.is_some_and(|n| n != a && n != b) || !self.reachable(a, b) {
                continue;
            }
            for (x, y) in [(a, b), (b, a)] {
                let d = self.rng.gen_range(5..200);
                self.after(d, Ev::Connected { node: x, peer: y });
            }
        }
    }

    pub(super) fn crash(&mut self, node: usize, power: bool, down: u64, armed: bool) {
        if !self.up(node) || self.calm {
            return;
        }
        // Most crashes wait for a moment when unflushed writes are at stake.
        let idle = !self.nodes[node].store.unflushed().unwrap_or(true);
        if !armed && idle && self.slots[node].armed.is_none() && self.rng.gen_bool(0.8) {
            self.slots[node].armed = Some((power, down));
            return;
        }
        self.slots[node].armed = None;
        self.trace("crash", node as u64, u64::from(power), &[]);
        self.figures.crashes += 1;
        self.figures.power_losses += u64::from(power);
        let s = &mut self.slots[node];
        s.down = true;
        s.epoch += 1;
        s.tick_at = None;
        self.nodes[node].process = None;
        let crashed = self.nodes[node].store.crash(power, &mut self.rng);
        let crashed = match crashed {
            Ok(c) => c,
            Err(e) => {
                self.violation = Some(self.fail("recovery", format!("node {node}: the store does not reopen: {e}")));
                return;
            }
        };
        self.figures.recoveries += 1;
        if matches!(crashed.tail, Tail::Torn | Tail::Garbage | Tail::Prefix) {
            self.figures.torn_tails += 1;
        }
        if let Some(m) = crashed.mismatch {
            let what =
                format!("node {node} ({:?}, {:?}) after a crash: {m}", self.nodes[node].store.backend(), crashed.tail);
            self.violation = Some(self.fail("recovery", what));
            return;
        }
        for (id, _) in crashed.lost {
            if self.transmitted.get(&id) == Some(&node) {
                self.lost_sent.insert(id);
            }
        }
        for s in &mut self.scripts {
            for role in [Role::Vendor, Role::Customer] {
                if s.node(role) == node {
                    if let Some(p) = &mut s.cursors[slot(role)].pending {
                        p.orphaned = true;
                    }
                }
            }
        }
        self.fail_across();
        let at = (self.now + down).min(self.window);
        self.at(at, Ev::Restart { node });
    }

    pub(super) fn restart(&mut self, node: usize) {
        if !self.slots[node].down {
            return;
        }
        self.trace("restart", node as u64, 0, &[]);
        self.slots[node].down = false;
        self.slots[node].started = self.now;
        let seed = self.rng.gen();
        if let Err(e) = self.nodes[node].start(seed) {
            self.violation = Some(self.fail("restart", format!("node {node}: {e}")));
            return;
        }
        self.check_durability(node);
        // A caller whose node crashed asks again, unless the message was kept.
        for s in &mut self.scripts {
            for role in [Role::Vendor, Role::Customer] {
                if s.node(role) != node {
                    continue;
                }
                let c = &mut s.cursors[slot(role)];
                let Some(Submitted { id, orphaned: true }) = c.pending else { continue };
                let view = self.nodes[node].relationships();
                let kept = s.rel.and_then(|r| view.and_then(|v| v.get(&r))).is_some_and(|r| r.contains(&id));
                c.pending = None;
                if kept {
                    c.next += 1;
                } else if c.next == 0 && role == Role::Vendor {
                    // The offer is lost: he opens the relationship again under a new id, and
                    // whatever she did in the old one (which she alone holds) is moot.
                    s.rel = None;
                    s.cursors[slot(Role::Customer)] = Default::default();
                }
            }
        }
        for k in 0..self.scripts.len() {
            for role in [Role::Vendor, Role::Customer] {
                if self.scripts[k].node(role) == node {
                    let d = self.rng.gen_range(0..500);
                    self.after(d, Ev::Act { script: k, role });
                }
            }
        }
        self.schedule_tick(node);
        self.reconnect(Some(node));
    }

    /// Every message whose sender holds a receipt from `node`, and every message of its own
    /// `node` told its caller was durable, is in `node`'s store.
    pub(crate) fn check_durability(&mut self, node: usize) {
        let receipted = self.receipted.iter().filter(|(to, _)| *to == node).map(|(_, id)| (*id, true));
        let confirmed = self.confirmed.iter().filter(|(n, _)| *n == node).map(|(_, id)| (*id, false));
        let held: Vec<(MessageId, bool)> = receipted.chain(confirmed).collect();
        for (id, theirs) in held {
            match self.nodes[node].store.message_of(&id) {
                Ok(true) => {}
                Ok(false) => {
                    let d = if theirs {
                        format!("node {node} lost message {id}, for which its sender holds a receipt")
                    } else {
                        format!("node {node} lost its own message {id}, which it had confirmed durable to its caller")
                    };
                    self.violation = Some(self.fail("durability", d));
                    return;
                }
                Err(e) => {
                    self.violation = Some(self.fail("durability", format!("node {node}: {e}")));
                    return;
                }
            }
        }
    }
}
