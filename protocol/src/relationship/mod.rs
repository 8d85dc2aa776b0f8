//! The relationship state machine (spec §7), sans-IO: [`Relationship::handle`] takes a verified
//! [`Message`] and the current time and returns events or a typed rejection. Nothing is
//! changed by a rejected message.
//!
//! Each message is judged against its sender's view: the sender's own earlier messages and the
//! other party's messages up to the one it names in `ack`. Both parties therefore agree on
//! every verdict, whatever order concurrent messages arrive in, and because every effect
//! commutes ([`rules`]), they agree on the resulting state too.

mod rules;

use std::collections::HashMap;
use std::fmt;

use rules::State;
pub use rules::{Agreement, Grant};

use crate::envelope::Message;
use crate::id::{KeyId, MessageId, RelationshipId};
use crate::message::{Body, Class, Header, Kind, Role};
use crate::problem::Code;
use crate::Timestamp;

/// A refused message: a stable [`Code`] and a one-line detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct Error {
    /// The problem code (spec §8).
    pub code: Code,
    /// What exactly was wrong, for people.
    pub detail: String,
}

impl Error {
    /// An error with `code` and `detail`.
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Error { code, detail: detail.into() }
    }
}

impl crate::problem::HasCode for Error {
    fn code(&self) -> Code {
        self.code
    }
}

/// Lifecycle phase (spec §7.1). Phases only move forward.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// A vendor's offer was made to the customer.
    #[default]
    Proposed,
    /// Terms are on the table.
    Negotiating,
    /// Terms were accepted; consent, reports, data and introductions may flow.
    Active,
    /// A separation notice was given; only the separation flow may follow.
    Separating,
    /// The customer confirmed the disposition; nothing more may follow.
    Closed,
}

impl Phase {
    /// Every phase, in lifecycle order.
    pub const ALL: [Phase; 5] = [Phase::Proposed, Phase::Negotiating, Phase::Active, Phase::Separating, Phase::Closed];

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Proposed => "proposed",
            Phase::Negotiating => "negotiating",
            Phase::Active => "active",
            Phase::Separating => "separating",
            Phase::Closed => "closed",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Time checks for messages as they arrive (spec §7.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How far in the future `created_at` may be, in ms.
    pub max_future_skew: u64,
    /// How old `created_at` may be when the message arrives, in ms; `None` for no limit.
    pub max_age: Option<u64>,
}

impl Policy {
    /// Five minutes of clock skew; messages up to 30 days old (an outbox may retry that long).
    pub const LIVE: Policy = Policy { max_future_skew: 5 * 60 * 1000, max_age: Some(30 * 24 * 3600 * 1000) };
    /// For verifying a stored log later: each message is judged at its own creation time.
    pub const LOG: Policy = Policy { max_future_skew: 0, max_age: None };

    /// Sets the allowed future skew.
    pub fn with_max_future_skew(mut self, ms: u64) -> Self {
        self.max_future_skew = ms;
        self
    }

    /// Sets the maximum age.
    pub fn with_max_age(mut self, ms: Option<u64>) -> Self {
        self.max_age = ms;
        self
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::LIVE
    }
}

/// What an accepted message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The message was accepted into the sender's chain.
    Accepted {
        /// Its id.
        id: MessageId,
        /// Its kind.
        kind: Kind,
        /// Its sender's role.
        from: Role,
    },
    /// The message was already known; nothing changed.
    Duplicate {
        /// Its id.
        id: MessageId,
    },
    /// The phase moved forward.
    PhaseChanged {
        /// Before.
        from: Phase,
        /// After.
        to: Phase,
    },
    /// Terms were agreed.
    Agreed {
        /// The accepted proposal.
        proposal: MessageId,
        /// The acceptance.
        acceptance: MessageId,
    },
    /// The customer granted consent.
    ConsentGranted {
        /// The grant.
        grant: MessageId,
    },
    /// The customer revoked consent; it is in effect from now on.
    ConsentRevoked {
        /// The grant revoked.
        grant: MessageId,
        /// The revocation.
        revocation: MessageId,
    },
    /// A report was countersigned.
    Countersigned {
        /// The report.
        report: MessageId,
        /// The countersignature.
        countersignature: MessageId,
    },
    /// A party acknowledged one of the other party's messages with a signed receipt.
    Receipted {
        /// The message acknowledged.
        message: MessageId,
    },
    /// A party refused one of the other party's messages.
    Refused {
        /// The refused message, if named.
        message: Option<MessageId>,
        /// The problem code as sent.
        code: String,
    },
}

#[derive(Debug, Clone, Default)]
struct Chain {
    /// Message ids by `seq - 1`.
    ids: Vec<MessageId>,
    last_at: Timestamp,
    /// `seq` of the latest other-party message this chain acknowledged; 0 for none.
    ack_seq: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    role: Role,
    seq: u64,
}

/// One relationship as seen by either party (or by an auditor of its log).
#[derive(Debug, Clone)]
pub struct Relationship {
    id: RelationshipId,
    customer: KeyId,
    vendor: KeyId,
    opener: Role,
    chains: [Chain; 2],
    index: HashMap<MessageId, Entry>,
    /// Chained messages in the order they were applied.
    log: Vec<Message>,
    /// Receipts and problem reports, by id.
    acks: HashMap<MessageId, Message>,
    state: State,
}

fn slot(role: Role) -> usize {
    match role {
        Role::Customer => 0,
        Role::Vendor => 1,
    }
}

impl Relationship {
    /// Starts a relationship from its opening message and applies that message. The opening
    /// message is the opener's `seq` 1: a vendor's `offer` or either party's `terms_proposal`.
    pub fn open(first: &Message, now: Timestamp, policy: Policy) -> Result<(Relationship, Vec<Event>), Error> {
        let h = first.header();
        let (Some(id), Some(to)) = (h.relationship, h.to) else {
            return Err(Error::new(Code::UnknownRelationship, "a public message does not open a relationship"));
        };
        let opener = match first.body() {
            Body::Offer(_) => Role::Vendor,
            Body::TermsProposal(p) => p.role,
            _ => {
                return Err(Error::new(
                    Code::UnknownRelationship,
                    format!("{} cannot open a relationship; only offer or terms_proposal", first.kind()),
                ))
            }
        };
        if h.seq != 1 || h.ack.is_some() {
            return Err(Error::new(Code::UnknownRelationship, "an opening message has seq 1 and no ack"));
        }
        let (customer, vendor) = match opener {
            Role::Customer => (h.from, to),
            Role::Vendor => (to, h.from),
        };
        let mut rel = Relationship {
            id,
            customer,
            vendor,
            opener,
            chains: Default::default(),
            index: HashMap::new(),
            log: Vec::new(),
            acks: HashMap::new(),
            state: State::default(),
        };
        let events = rel.handle(first, now, policy)?;
        Ok((rel, events))
    }

    /// Applies one verified message at time `now` (Unix ms). On `Err`, nothing changed.
    #[must_use = "a rejected message must be answered with a problem report"]
    pub fn handle(&mut self, m: &Message, now: Timestamp, policy: Policy) -> Result<Vec<Event>, Error> {
        let h = m.header();
        if h.relationship != Some(self.id) {
            return Err(Error::new(Code::WrongRelationship, format!("message belongs to {:?}", h.relationship)));
        }
        let sender =
            self.role_of(&h.from).ok_or_else(|| Error::new(Code::NotAParty, format!("{} is not a party", h.from)))?;
        if h.to != Some(self.key(sender.other())) {
            return Err(Error::new(Code::WrongRecipient, "addressed to someone other than the other party"));
        }
        if self.index.contains_key(&m.id()) || self.acks.contains_key(&m.id()) {
            return Ok(vec![Event::Duplicate { id: m.id() }]);
        }
        check_time(h.created_at, h.expires_at, now, policy)?;
        match m.kind().class() {
            Class::Ack => self.handle_ack(m, sender),
            Class::Public => Err(Error::new(Code::SchemaViolation, "public messages are not part of a relationship")),
            Class::Chained | Class::Opening => self.handle_chained(m, sender),
        }
    }

    fn handle_chained(&mut self, m: &Message, sender: Role) -> Result<Vec<Event>, Error> {
        let h = m.header();
        let chain = &self.chains[slot(sender)];
        let expected = chain.ids.len() as u64 + 1;
        if h.seq < expected {
            return Err(Error::new(Code::Fork, format!("seq {} is already taken by another message", h.seq)));
        }
        if h.seq > expected {
            return Err(Error::new(Code::ChainGap, format!("expected seq {expected}, got {}", h.seq)));
        }
        if h.prev != chain.ids.last().copied() {
            return Err(Error::new(Code::Fork, "prev does not name the sender's previous message"));
        }
        if h.created_at < chain.last_at {
            return Err(Error::new(Code::ClockSkew, "created before the sender's previous message"));
        }
        let ack_seq = self.check_ack(m, sender)?;
        let other_len = self.chains[slot(sender.other())].ids.len() as u64;
        let view;
        let state = if ack_seq == other_len {
            &self.state
        } else {
            view = self.view(sender, ack_seq);
            &view
        };
        if state.phase == Phase::Closed {
            return Err(Error::new(Code::Closed, "the relationship is closed"));
        }
        state.check(m, sender)?;

        let chain = &mut self.chains[slot(sender)];
        chain.ids.push(m.id());
        chain.last_at = h.created_at;
        chain.ack_seq = ack_seq;
        self.index.insert(m.id(), Entry { role: sender, seq: h.seq });
        self.log.push(m.clone());
        let mut events = vec![Event::Accepted { id: m.id(), kind: m.kind(), from: sender }];
        events.extend(self.state.apply(m, sender));
        Ok(events)
    }

    /// `ack` must name a message of the other party, never go backwards, and be present from
    /// the moment the sender has seen anything of the other party (so the responder's first
    /// message always acknowledges the opening one).
    fn check_ack(&self, m: &Message, sender: Role) -> Result<u64, Error> {
        let previous = self.chains[slot(sender)].ack_seq;
        match m.header().ack {
            None if previous == 0 && sender == self.opener => Ok(0),
            None => Err(Error::new(Code::BadAck, "ack is required once the other party has spoken")),
            Some(a) => match self.index.get(&a) {
                Some(e) if e.role != sender && e.seq >= previous => Ok(e.seq),
                Some(e) if e.role != sender => Err(Error::new(Code::BadAck, "ack goes backwards")),
                _ => Err(Error::new(Code::BadAck, format!("ack {a} names no message of the other party"))),
            },
        }
    }

    /// The state formed by the sender's own messages and the other party's first `ack_seq`.
    fn view(&self, sender: Role, ack_seq: u64) -> State {
        let mut state = State::default();
        for m in &self.log {
            let Some(e) = self.index.get(&m.id()) else { continue };
            if e.role == sender || e.seq <= ack_seq {
                let _ = state.apply(m, e.role);
            }
        }
        state
    }

    fn handle_ack(&mut self, m: &Message, sender: Role) -> Result<Vec<Event>, Error> {
        let event = match m.body() {
            Body::Receipt(r) => {
                match self.index.get(&r.message) {
                    Some(e) if e.role != sender => {}
                    _ => {
                        return Err(Error::new(
                            Code::UnknownReference,
                            format!("no message {} from the other party", r.message),
                        ))
                    }
                }
                Event::Receipted { message: r.message }
            }
            Body::ProblemReport(p) => Event::Refused { message: p.message, code: p.code.clone() },
            _ => return Err(Error::new(Code::SchemaViolation, "not an acknowledgement")),
        };
        self.acks.insert(m.id(), m.clone());
        Ok(vec![event])
    }

    fn role_of(&self, key: &KeyId) -> Option<Role> {
        if *key == self.customer {
            Some(Role::Customer)
        } else if *key == self.vendor {
            Some(Role::Vendor)
        } else {
            None
        }
    }

    /// The key that speaks for `role`.
    pub fn key(&self, role: Role) -> KeyId {
        match role {
            Role::Customer => self.customer,
            Role::Vendor => self.vendor,
        }
    }

    /// The relationship id.
    pub fn id(&self) -> RelationshipId {
        self.id
    }

    /// Who opened it.
    pub fn opener(&self) -> Role {
        self.opener
    }

    /// Current phase.
    pub fn phase(&self) -> Phase {
        self.state.phase
    }

    /// The agreement in force, if any.
    pub fn agreement(&self) -> Option<&Agreement> {
        self.state.agreement.as_ref()
    }

    /// Consent grants by id, revoked ones included.
    pub fn grants(&self) -> &HashMap<MessageId, Grant> {
        &self.state.grants
    }

    /// Chained messages in the order applied.
    pub fn log(&self) -> &[Message] {
        &self.log
    }

    /// Receipts and problem reports.
    pub fn acknowledgements(&self) -> impl Iterator<Item = &Message> {
        self.acks.values()
    }

    /// The latest message id of `role`'s chain: what to put in `prev` (for that role) or in
    /// `ack` (for the other role).
    pub fn last_id(&self, role: Role) -> Option<MessageId> {
        self.chains[slot(role)].ids.last().copied()
    }

    /// The next `seq` for `role`.
    pub fn next_seq(&self, role: Role) -> u64 {
        self.chains[slot(role)].ids.len() as u64 + 1
    }

    /// The header for `role`'s next chained message at time `at`: next `seq`, `prev` its last
    /// message, `ack` the other party's last message.
    pub fn next_header(&self, role: Role, at: Timestamp) -> Header {
        Header {
            relationship: Some(self.id),
            from: self.key(role),
            to: Some(self.key(role.other())),
            seq: self.next_seq(role),
            prev: self.last_id(role),
            ack: self.last_id(role.other()),
            created_at: at,
            expires_at: None,
            reply_to: None,
        }
    }

    /// The role of `key`, if it is a party.
    pub fn role(&self, key: &KeyId) -> Option<Role> {
        self.role_of(key)
    }

    /// Whether a chained message with this id was accepted.
    pub fn contains(&self, id: &MessageId) -> bool {
        self.index.contains_key(id)
    }
}

/// The time rules for a message arriving at `now`.
pub fn check_time(at: Timestamp, exp: Option<Timestamp>, now: Timestamp, policy: Policy) -> Result<(), Error> {
    if at > now.saturating_add(policy.max_future_skew) {
        return Err(Error::new(Code::ClockSkew, format!("created at {at}, which is in the future")));
    }
    if policy.max_age.is_some_and(|max| now.saturating_sub(at) > max) {
        return Err(Error::new(Code::ClockSkew, format!("created at {at}, older than the accepted window")));
    }
    if exp.is_some_and(|e| e <= now) {
        return Err(Error::new(Code::Expired, "the message expired before it arrived"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
