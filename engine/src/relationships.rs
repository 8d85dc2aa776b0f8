//! The relationships this node is a party to, kept in memory and rebuilt at start by replaying
//! each one's stored messages in the order they were accepted (the driver reads them from its
//! store and hands them over: [`Relationships::replay`]). Their signatures are not checked
//! again ([`Message::reopen`]): each was strictly verified before it was stored.

use std::collections::HashMap;

use rapport_protocol::relationship::{self, Policy};
use rapport_protocol::{Body, Code, KeyId, Message, MessageId, RelationshipId, Role, Timestamp};

/// Why a stored relationship could not be rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A stored message no longer opens or applies: the store was damaged or written by an
    /// incompatible version.
    #[error("relationship {relationship}: stored message {index} does not replay: {detail}")]
    Replay {
        /// Which relationship.
        relationship: RelationshipId,
        /// Position in its stored order.
        index: usize,
        /// Why.
        detail: String,
    },
}

/// A summary for the API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// Relationship id, hex.
    pub id: String,
    /// Phase, as spec §7.1 names it.
    pub phase: &'static str,
    /// This node's role.
    pub role: &'static str,
    /// The other party's key id, hex.
    pub counterparty: String,
    /// Chained messages accepted.
    pub messages: usize,
    /// Receipts and problem reports.
    pub acknowledgements: usize,
    /// The customer's consent grants, revoked ones included.
    pub consents: Vec<Consent>,
}

/// One consent grant and whether it still stands.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Consent {
    /// The grant's message id, hex.
    pub grant: String,
    /// The grant as signed: purposes, categories, third-party sharing, retention, expiry.
    pub scope: rapport_protocol::ConsentGrant,
    /// The revocation's message id, hex, once revoked.
    pub revoked_by: Option<String>,
}

/// A chained message its recipient refused for good: it is in its sender's record and never
/// will be in the recipient's, so nothing its sender chains on it can reach the recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The refused message.
    pub message: MessageId,
    /// Who sent it.
    pub sender: KeyId,
    /// Its `seq` in the sender's chain.
    pub seq: u64,
    /// The recipient's problem code.
    pub code: String,
}

/// Whether a refusal with `code` may clear up, so that its message is sent again: `internal`
/// (the recipient could not store it), `chain-gap` (an earlier message has not reached it yet),
/// `rate-limited` and `quota-exceeded` (its owner may answer, or its quota refill). Any other
/// code is final (spec/node.md §3).
pub fn transient(code: &str) -> bool {
    [Code::Internal, Code::ChainGap, Code::RateLimited, Code::QuotaExceeded].iter().any(|c| code == c.as_str())
}

/// The earliest of `rel`'s chained messages that a stored problem report of its recipient
/// refuses for good.
fn first_refusal(rel: &relationship::Relationship) -> Option<Refusal> {
    rel.acknowledgements().filter_map(|a| refusal_in(rel, a)).min_by_key(|r| r.seq)
}

/// The chained message of `rel` that acknowledgement `a` refuses for good, if `a` is a final
/// problem report from that message's recipient.
fn refusal_in(rel: &relationship::Relationship, a: &Message) -> Option<Refusal> {
    let Body::ProblemReport(p) = a.body() else { return None };
    if transient(&p.code) {
        return None;
    }
    let id = p.message?;
    let m = rel.log().iter().find(|m| m.id() == id)?;
    // Refused by its recipient, not by its own sender.
    (m.header().from != a.header().from).then(|| Refusal {
        message: id,
        sender: m.header().from,
        seq: m.header().seq,
        code: p.code.clone(),
    })
}

/// A relationship rebuilt from its stored envelopes ([`Relationships::rebuild`]), with its
/// first final refusal, found where it was rebuilt; `None` for no envelopes, or why they did
/// not replay. Boxed, so that taking 100,000 of them into the map moves pointers, not structs.
pub type Rebuilt = Result<Option<(Box<relationship::Relationship>, Option<Refusal>)>, Error>;

/// Every relationship of one node.
#[derive(Debug, Default)]
pub struct Relationships {
    map: HashMap<RelationshipId, Box<relationship::Relationship>>,
    /// The first chained message of each relationship refused for good, if any.
    refusals: HashMap<RelationshipId, Refusal>,
    /// Relationships whose stored messages no longer replay (the store was damaged), with why:
    /// not served, and refused new messages, until the store is repaired and they replay.
    damaged: std::collections::BTreeMap<RelationshipId, String>,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Customer => "customer",
        Role::Vendor => "vendor",
    }
}

impl Relationships {
    /// No relationships.
    pub fn new() -> Relationships {
        Relationships::default()
    }

    /// Sets `id` aside as damaged, with why: it is not served, and new messages in it are
    /// refused, until the store is repaired (the store found damage where it held messages of
    /// it, so it may miss its last ones).
    pub fn set_damaged(&mut self, id: RelationshipId, why: String) {
        self.map.remove(&id);
        self.damaged.insert(id, why);
    }

    /// Rebuilds relationship `id` from its stored envelopes, in the order they were accepted.
    /// One that no longer replays is set aside as damaged (and named in the log), and the
    /// error says why.
    pub fn replay<B: AsRef<[u8]>>(&mut self, id: RelationshipId, envelopes: &[B]) -> Result<(), Error> {
        if self.damaged.contains_key(&id) {
            return Ok(());
        }
        self.insert_rebuilt(id, Relationships::rebuild(&id, envelopes))
    }

    /// Makes room for `n` more relationships (a driver about to take in a store's).
    pub fn reserve(&mut self, n: usize) {
        self.map.reserve(n);
    }

    /// What [`Relationships::replay`] computes, without touching any state: a driver with many
    /// relationships to load rebuilds them on several threads, then hands each result to
    /// [`Relationships::insert_rebuilt`] in the store's order.
    pub fn rebuild<B: AsRef<[u8]>>(id: &RelationshipId, envelopes: &[B]) -> Rebuilt {
        let rel = Relationships::replay_one(id, envelopes)?;
        Ok(rel.map(|rel| {
            let refusal = first_refusal(&rel);
            (Box::new(rel), refusal)
        }))
    }

    /// Takes in relationship `id` as [`Relationships::rebuild`] made it: one that did not
    /// replay is set aside as damaged (and named in the log), and the error says why.
    pub fn insert_rebuilt(&mut self, id: RelationshipId, rebuilt: Rebuilt) -> Result<(), Error> {
        if self.damaged.contains_key(&id) {
            return Ok(());
        }
        match rebuilt {
            Ok(Some((rel, refusal))) => {
                if let Some(refusal) = refusal {
                    self.refusals.insert(id, refusal);
                }
                self.map.insert(id, rel);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::warn!(relationship = %id, error = %e, "relationship set aside: it does not replay");
                self.map.remove(&id);
                self.damaged.insert(id, e.to_string());
                Err(e)
            }
        }
    }

    /// The relationships set aside as damaged, with why.
    pub fn damaged(&self) -> &std::collections::BTreeMap<RelationshipId, String> {
        &self.damaged
    }

    /// Every relationship, in no order.
    pub fn iter(&self) -> impl Iterator<Item = &relationship::Relationship> {
        self.map.values().map(|r| &**r)
    }

    /// The relationship `id`.
    pub fn get(&self, id: &RelationshipId) -> Option<&relationship::Relationship> {
        self.map.get(id).map(|r| &**r)
    }

    /// Applies `m` at `now`: opens a relationship or advances one. On `Err` nothing changed.
    pub fn apply(
        &mut self,
        m: &Message,
        now: Timestamp,
        policy: Policy,
    ) -> Result<Vec<rapport_protocol::Event>, relationship::Error> {
        let Some(id) = m.header().relationship else {
            return Err(relationship::Error::new(
                rapport_protocol::Code::UnknownRelationship,
                "a public message belongs to no relationship",
            ));
        };
        if self.damaged.contains_key(&id) {
            return Err(relationship::Error::new(
                rapport_protocol::Code::Internal,
                "this relationship's record is damaged on the receiving node; it is being repaired",
            ));
        }
        let events = match self.map.get_mut(&id) {
            Some(rel) => rel.handle(m, now, policy)?,
            None => {
                let (rel, events) = relationship::Relationship::open(m, now, policy)?;
                self.map.insert(id, Box::new(rel));
                events
            }
        };
        // Only the report just applied can change which refusal comes first.
        if let Some(refusal) = self.map.get(&id).and_then(|r| refusal_in(r, m)) {
            if self.refusals.get(&id).is_none_or(|known| refusal.seq < known.seq) {
                self.refusals.insert(id, refusal);
            }
        }
        Ok(events)
    }

    /// The first chained message of `id` its recipient refused for good, if one was.
    pub fn refusal(&self, id: &RelationshipId) -> Option<&Refusal> {
        self.refusals.get(id)
    }

    /// Forgets `id` (after a failed store write, before it is reloaded).
    pub fn forget(&mut self, id: &RelationshipId) {
        self.map.remove(id);
        self.refusals.remove(id);
    }

    /// Puts `id` back as its stored envelopes make it (after a write failed, so that our view
    /// is what the store holds).
    pub fn restore<B: AsRef<[u8]>>(&mut self, id: &RelationshipId, envelopes: &[B]) -> Result<(), Error> {
        self.forget(id);
        if let Some(rel) = Relationships::replay_one(id, envelopes)? {
            if let Some(refusal) = first_refusal(&rel) {
                self.refusals.insert(*id, refusal);
            }
            self.map.insert(*id, Box::new(rel));
        }
        Ok(())
    }

    fn replay_one<B: AsRef<[u8]>>(
        id: &RelationshipId,
        envelopes: &[B],
    ) -> Result<Option<relationship::Relationship>, Error> {
        let mut rel: Option<relationship::Relationship> = None;
        for (index, bytes) in envelopes.iter().enumerate() {
            let replay = |detail: String| Error::Replay { relationship: *id, index, detail };
            // Strictly verified before it was stored; the store's checksums guard it since.
            let m = Message::reopen(bytes.as_ref()).map_err(|e| replay(e.to_string()))?;
            let at = m.header().created_at;
            match rel.as_mut() {
                None => {
                    rel = Some(
                        relationship::Relationship::open(&m, at, Policy::LOG).map_err(|e| replay(e.to_string()))?.0,
                    )
                }
                Some(r) => {
                    r.handle(&m, at, Policy::LOG).map_err(|e| replay(e.to_string()))?;
                }
            }
        }
        Ok(rel)
    }

    /// Summaries of every relationship, as seen by `me`.
    pub fn summaries(&self, me: &KeyId) -> Vec<Summary> {
        let mut out: Vec<Summary> = self
            .map
            .values()
            .filter_map(|r| {
                let role = r.role(me)?;
                Some(Summary {
                    id: r.id().to_hex(),
                    phase: r.phase().as_str(),
                    role: role_name(role),
                    counterparty: r.key(role.other()).to_hex(),
                    messages: r.log().len(),
                    acknowledgements: r.acknowledgements().count(),
                    consents: {
                        let mut c: Vec<Consent> = r
                            .grants()
                            .iter()
                            .map(|(id, g)| Consent {
                                grant: id.to_hex(),
                                scope: g.grant.clone(),
                                revoked_by: g.revoked_by.map(|r| r.to_hex()),
                            })
                            .collect();
                        c.sort_by(|a, b| a.grant.cmp(&b.grant));
                        c
                    },
                })
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Number of relationships in each phase.
    pub fn by_phase(&self) -> HashMap<&'static str, usize> {
        let mut out = HashMap::new();
        for r in self.map.values() {
            *out.entry(r.phase().as_str()).or_default() += 1;
        }
        out
    }
}
