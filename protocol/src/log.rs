//! Verification of a relationship's log (spec §7.6): given both parties' messages of one
//! relationship in any order, check every signature once (on all cores), rebuild each
//! sender's chain, put the messages in an order that respects every chain and every `ack`,
//! and replay them through the state machine. Every defect is named by its problem code and,
//! where there is one, the offending message.

use std::collections::{HashMap, HashSet};

use crate::envelope::Message;
use crate::id::{KeyId, MessageId, RelationshipId};
use crate::message::{Class, Role};
use crate::problem::{Code, HasCode};
use crate::relationship::{Phase, Policy, Relationship};

/// A defect found in a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} at message #{index:?} ({message:?}): {detail}")]
pub struct Error {
    /// The problem code.
    pub code: Code,
    /// Position of the offending message in the input, if one message is to blame.
    pub index: Option<usize>,
    /// Its id, if it could be computed.
    pub message: Option<MessageId>,
    /// What exactly was wrong.
    pub detail: String,
}

impl HasCode for Error {
    fn code(&self) -> Code {
        self.code
    }
}

/// What a verified log establishes.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The relationship, replayed: phase, agreement, consents, and messages in causal order.
    pub relationship: Relationship,
    /// Number of chained messages.
    pub chained: usize,
    /// Number of receipts and problem reports.
    pub acknowledgements: usize,
}

impl Verified {
    /// The relationship id.
    pub fn id(&self) -> RelationshipId {
        self.relationship.id()
    }

    /// Final phase.
    pub fn phase(&self) -> Phase {
        self.relationship.phase()
    }
}

fn err(code: Code, index: Option<usize>, message: Option<MessageId>, detail: impl Into<String>) -> Error {
    Error { code, index, message, detail: detail.into() }
}

/// Opens (decodes and strictly verifies) every envelope, on all cores when the `parallel`
/// feature is on. Each signature is checked exactly once.
pub fn open_all<B: AsRef<[u8]> + Sync>(envelopes: &[B]) -> Result<Vec<Message>, Error> {
    let open = |(i, b): (usize, &B)| {
        Message::open(b.as_ref()).map_err(|e| err(e.code(), Some(i), Some(MessageId::of(b.as_ref())), e.to_string()))
    };
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        envelopes.par_iter().enumerate().map(open).collect()
    }
    #[cfg(not(feature = "parallel"))]
    {
        envelopes.iter().enumerate().map(open).collect()
    }
}

/// Verifies a whole log given as envelope bytes.
pub fn verify<B: AsRef<[u8]> + Sync>(envelopes: &[B]) -> Result<Verified, Error> {
    verify_messages(&open_all(envelopes)?)
}

/// Verifies a log of already-opened messages (signatures are not checked again).
pub fn verify_messages(messages: &[Message]) -> Result<Verified, Error> {
    let position: HashMap<MessageId, usize> = {
        let mut seen = HashMap::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            if seen.insert(m.id(), i).is_some() {
                return Err(err(Code::Replay, Some(i), Some(m.id()), "the same message appears twice"));
            }
        }
        seen
    };
    let at = |m: &Message| position.get(&m.id()).copied();

    let mut chained = Vec::new();
    let mut acks = Vec::new();
    for m in messages {
        match m.kind().class() {
            Class::Ack => acks.push(m),
            _ if m.header().relationship.is_none() => {
                return Err(err(Code::WrongRelationship, at(m), Some(m.id()), "a public message is not part of a relationship log"))
            }
            _ => chained.push(m),
        }
    }

    let openers: Vec<&&Message> = chained.iter().filter(|m| m.header().seq == 1 && m.header().ack.is_none()).collect();
    let opener = match openers.as_slice() {
        [] => return Err(err(Code::UnknownRelationship, None, None, "no opening message (seq 1 without ack)")),
        [one] => **one,
        [_, second, ..] => {
            return Err(err(Code::Fork, at(second), Some(second.id()), "two messages claim to open the relationship"))
        }
    };
    let rel_id = opener.header().relationship;
    let parties: HashSet<KeyId> = [Some(opener.header().from), opener.header().to].into_iter().flatten().collect();

    // Per-sender chains, sorted by seq, with forks and gaps named.
    let mut chains: HashMap<KeyId, Vec<&Message>> = HashMap::new();
    for m in &chained {
        let h = m.header();
        if h.relationship != rel_id {
            return Err(err(Code::WrongRelationship, at(m), Some(m.id()), "message of another relationship"));
        }
        if !parties.contains(&h.from) {
            return Err(err(Code::NotAParty, at(m), Some(m.id()), format!("{} is not a party", h.from)));
        }
        chains.entry(h.from).or_default().push(m);
    }
    for chain in chains.values_mut() {
        chain.sort_by_key(|m| m.header().seq);
        for (i, m) in chain.iter().enumerate() {
            let seq = m.header().seq;
            if i > 0 && chain[i - 1].header().seq == seq {
                return Err(err(Code::Fork, at(m), Some(m.id()), format!("two messages with seq {seq}")));
            }
            if seq != i as u64 + 1 {
                return Err(err(Code::ChainGap, at(m), Some(m.id()), format!("seq {} is missing", i + 1)));
            }
        }
    }

    // Merge the two chains in causal order: a message is ready once the message it acks has
    // been applied; between two ready messages, the earlier (created_at, sender, seq) goes first.
    let mut queues: Vec<&[&Message]> = chains.values().map(Vec::as_slice).collect();
    let mut applied: HashSet<MessageId> = HashSet::with_capacity(chained.len());
    let mut rel: Option<Relationship> = None;
    let total = chained.len();
    for _ in 0..total {
        let ready = |q: &&[&Message]| {
            q.first().is_some_and(|m| m.header().ack.is_none_or(|a| applied.contains(&a) || !position.contains_key(&a)))
        };
        let next = queues
            .iter()
            .enumerate()
            .filter(|(_, q)| ready(q))
            .min_by_key(|(_, q)| q.first().map(|m| (m.header().created_at, m.header().from, m.header().seq)))
            .map(|(i, _)| i);
        let Some(qi) = next else {
            let stuck = queues.iter().find_map(|q| q.first()).copied();
            return Err(err(
                Code::Reordered,
                stuck.and_then(at),
                stuck.map(Message::id),
                "no order respects every chain and ack",
            ));
        };
        let m = queues[qi][0];
        queues[qi] = &queues[qi][1..];
        let now = m.header().created_at;
        let result = match rel.as_mut() {
            None => Relationship::open(m, now, Policy::LOG).map(|(r, _)| rel = Some(r)),
            Some(r) => r.handle(m, now, Policy::LOG).map(drop),
        };
        result.map_err(|e| err(e.code, at(m), Some(m.id()), e.detail))?;
        applied.insert(m.id());
    }
    let Some(mut rel) = rel else {
        return Err(err(Code::UnknownRelationship, None, None, "empty log"));
    };
    for m in &acks {
        if m.header().relationship != rel_id {
            return Err(err(Code::WrongRelationship, at(m), Some(m.id()), "acknowledgement of another relationship"));
        }
        let now = m.header().created_at;
        rel.handle(m, now, Policy::LOG).map_err(|e| err(e.code, at(m), Some(m.id()), e.detail))?;
    }
    Ok(Verified { relationship: rel, chained: total, acknowledgements: acks.len() })
}

/// Which party sent a message, given the verified relationship.
pub fn role_of(v: &Verified, m: &Message) -> Option<Role> {
    v.relationship.role(&m.signer())
}
