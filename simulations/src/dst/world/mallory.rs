//! Mallory's messages: forged or malformed messages thrown at a node, each of which must be
//! answered with a signed problem report and change nothing.

use super::*;

impl World {
    pub(super) fn mallory_key(&self) -> KeyId {
        KeyId::from_bytes(self.mallory.verifying_key().to_bytes())
    }

    /// Throws a forged or malformed message at `node`; it must be refused and change nothing.
    pub(super) fn inject(&mut self, node: usize, kind: u8) {
        if !self.up(node) {
            return;
        }
        let Some(bytes) = self.forge(node, kind) else { return };
        self.trace("inject", node as u64, u64::from(kind), &bytes);
        self.figures.injected += 1;
        let req = self.next_req;
        self.next_req += 1;
        let peer = self.mallory_key();
        let changed = self.turn(node, |n, ctx, _| {
            let before = n.digest();
            n.on_request(ctx, peer, Channel { from: MALLORY, req }, &bytes);
            let after = n.digest();
            (before != after).then(|| format!("{before:?} became {after:?}"))
        });
        if let Some(Some(d)) = changed {
            self.violation = Some(self.fail("refusal", format!("node {node}: a refused message changed state: {d}")));
        }
    }

    /// A message `node` must refuse: kind 0 malformed, 1 bad signature, 2 from a non-party,
    /// 3 out of state or not permitted, 4 addressed to someone else (the last three signed
    /// by the real other party where they need to be).
    pub(super) fn forge(&mut self, node: usize, kind: u8) -> Option<Vec<u8>> {
        let now = self.clock(node);
        let me = self.nodes[node].key_id;
        let mallory = self.mallory_key();
        let rels: Vec<RelationshipId> = self.scripts.iter().filter_map(|s| s.rel).collect();
        let view = self.nodes[node].relationships()?;
        let rel = rels.iter().filter_map(|r| view.get(r)).find(|r| r.role(&me).is_some());
        let intro = Body::Introduction(Introduction {
            party: rapport_protocol::ThirdParty { name: "Mallory".into(), key: None, contact: None },
            offering: "Nothing good".into(),
            commission: rapport_protocol::Commission {
                basis: rapport_protocol::CommissionBasis::None,
                amount: None,
                basis_points: None,
            },
        });
        let (header, body, signer) = match (kind, rel) {
            (0, _) | (_, None) => {
                let len = self.rng.gen_range(0..200);
                return Some((0..len).map(|_| self.rng.gen()).collect());
            }
            (1, Some(r)) => {
                let role = r.role(&me)?.other();
                let other = self.nodes.iter().find(|n| n.key_id == r.key(role))?.key.clone();
                let m = Message::seal(Payload { header: r.next_header(role, now), body: intro }, &other).ok()?;
                let mut bytes = m.bytes().to_vec();
                let at = bytes.len() - 1 - self.rng.gen_range(0..64);
                bytes[at] ^= 1 << self.rng.gen_range(0..8);
                return Some(bytes);
            }
            (2, Some(r)) => {
                let role = r.role(&me)?.other();
                let header = Header { from: mallory, ..r.next_header(role, now) };
                (header, intro, self.mallory.clone())
            }
            (3, Some(r)) => {
                let role = r.role(&me)?.other();
                let other = self.nodes.iter().find(|n| n.key_id == r.key(role))?.key.clone();
                let mut random = [0u8; 32];
                self.rng.fill(&mut random);
                let body = match role {
                    Role::Vendor => Body::ClosureReceipt(ClosureReceipt { statement: MessageId::from_bytes(random) }),
                    Role::Customer => Body::DispositionStatement(DispositionStatement {
                        notice: MessageId::from_bytes(random),
                        items: Vec::new(),
                    }),
                };
                (r.next_header(role, now), body, other)
            }
            (_, Some(r)) => {
                let role = r.role(&me)?.other();
                let other = self.nodes.iter().find(|n| n.key_id == r.key(role))?.key.clone();
                let header = Header { to: Some(mallory), ..r.next_header(role, now) };
                (header, intro, other)
            }
        };
        Message::seal(Payload { header, body }, &signer).ok().map(|m| m.bytes().to_vec())
    }

    /// The answer to an injected message must be a signed problem report.
    pub(super) fn check_refusal(&mut self, node: usize, bytes: &[u8]) {
        let ok = Message::open(bytes).is_ok_and(|m| matches!(m.body(), Body::ProblemReport(_)));
        if !ok {
            let d =
                format!("node {node} answered a forged or malformed message with something else than a problem report");
            self.violation = Some(self.fail("refusal", d));
        }
    }
}
