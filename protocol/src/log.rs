//! Verification of a relationship's log (spec §7.6): given both parties' messages of one
//! relationship in any order, check every signature once (on all cores), rebuild each
//! sender's chain, put the messages in an order that respects every chain and every `ack`,
//! and replay them through the state machine. Every defect is named by its problem code and,
//! where there is one, the offending message.

use std::collections::{HashMap, HashSet};

use crate::envelope::{self, Message};
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
/// feature is on. Each signature is checked exactly once. If several envelopes are bad, the
/// error names the first of them in input order, whichever core found its defect first.
pub fn open_all<B: AsRef<[u8]> + Sync>(envelopes: &[B]) -> Result<Vec<Message>, Error> {
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        let opened: Vec<Result<Message, Error>> = envelopes.par_iter().enumerate().map(open_one).collect();
        opened.into_iter().collect()
    }
    #[cfg(not(feature = "parallel"))]
    {
        envelopes.iter().enumerate().map(open_one).collect()
    }
}

fn open_one<B: AsRef<[u8]>>((i, b): (usize, &B)) -> Result<Message, Error> {
    Message::open(b.as_ref()).map_err(|e| open_error(i, b.as_ref(), &e))
}

fn open_error(i: usize, bytes: &[u8], e: &envelope::Error) -> Error {
    err(e.code(), Some(i), Some(MessageId::of(bytes)), e.to_string())
}

/// Verifies a whole log given as envelope bytes: the same verdict as [`open_all`] followed by
/// [`verify_messages`].
///
/// With the `parallel` feature, the envelopes are first decoded and checked on all cores
/// except for their signatures; then the signatures are checked on all cores while one of
/// them replays the log, so the sequential replay hides behind the signature checks. Every
/// signature is still checked, once, strictly, and a defect in any of them is reported (for
/// the first such envelope) before anything the replay found, exactly as if every envelope
/// had been opened first.
pub fn verify<B: AsRef<[u8]> + Sync>(envelopes: &[B]) -> Result<Verified, Error> {
    #[cfg(feature = "parallel")]
    {
        verify_parallel(envelopes)
    }
    #[cfg(not(feature = "parallel"))]
    {
        verify_messages(&open_all(envelopes)?)
    }
}

#[cfg(feature = "parallel")]
fn verify_parallel<B: AsRef<[u8]> + Sync>(envelopes: &[B]) -> Result<Verified, Error> {
    use rayon::prelude::*;
    let opened: Result<Vec<_>, _> = envelopes.par_iter().map(|b| envelope::open_unverified(b.as_ref())).collect();
    let Ok(opened) = opened else {
        // Some envelope is bad. An earlier one may still carry a bad signature, so take the
        // plain path, which names the first defective envelope in input order.
        return verify_messages(&open_all(envelopes)?);
    };
    let (messages, checks): (Vec<Message>, Vec<envelope::SignatureCheck>) =
        opened.into_iter().map(envelope::Unverified::into_parts).unzip();
    let (bad_signature, replayed) = rayon::join(
        || {
            messages
                .par_iter()
                .zip(&checks)
                .enumerate()
                .find_map_first(|(i, (m, check))| check.check(m).err().map(|e| open_error(i, m.bytes(), &e)))
        },
        || verify_messages(&messages),
    );
    match bad_signature {
        Some(e) => Err(e),
        None => replayed,
    }
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
                return Err(err(
                    Code::WrongRelationship,
                    at(m),
                    Some(m.id()),
                    "a public message is not part of a relationship log",
                ))
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

    // Per-sender chains, the opener's first, sorted by seq, with forks and gaps named. The
    // fixed order makes the verdict on a log with defects in both chains deterministic.
    let senders: Vec<KeyId> = [Some(opener.header().from), opener.header().to].into_iter().flatten().collect();
    let mut chains: Vec<Vec<&Message>> = vec![Vec::new(); senders.len()];
    for m in &chained {
        let h = m.header();
        if h.relationship != rel_id {
            return Err(err(Code::WrongRelationship, at(m), Some(m.id()), "message of another relationship"));
        }
        let Some(party) = senders.iter().position(|k| *k == h.from) else {
            return Err(err(Code::NotAParty, at(m), Some(m.id()), format!("{} is not a party", h.from)));
        };
        chains[party].push(m);
    }
    for chain in &mut chains {
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
    let mut queues: Vec<&[&Message]> = chains.iter().map(Vec::as_slice).collect();
    // An ack that names no chained message of the log (absent, or an acknowledgement) never
    // holds a message back: the replay refuses it with `bad-ack`.
    let chained_ids: HashSet<MessageId> = chained.iter().map(|m| m.id()).collect();
    let mut applied: HashSet<MessageId> = HashSet::with_capacity(chained.len());
    let mut rel: Option<Relationship> = None;
    let total = chained.len();
    for _ in 0..total {
        let ready = |q: &&[&Message]| {
            q.first().is_some_and(|m| m.header().ack.is_none_or(|a| applied.contains(&a) || !chained_ids.contains(&a)))
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

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::message::{
        Body, ConsentGrant, DataShare, DataTerms, Header, Money, Portability, Price, PriceModel, Renewal, ShareContent,
        Terms, TermsAcceptance, TermsProposal,
    };
    use crate::{Category, Digest32, Payload, Purpose, Timestamp};

    const T0: Timestamp = 1_750_000_000_000;

    fn terms() -> Terms {
        Terms {
            duration: 365 * 86_400,
            renewal: Renewal::None,
            notice_period: 0,
            price: Price { model: PriceModel::Upfront, amount: Money::new("EUR", 100), metric: None, threshold: None },
            data: DataTerms { purposes: vec![], categories: vec![] },
            portability: Portability { format: "application/json".into(), deadline: 86_400 },
            deletion_deadline: 86_400,
            exit_fee: Money::new("EUR", 0),
        }
    }

    /// A log of `n` ≥ 4 envelopes: proposal, acceptance, grant, then data shares from both sides.
    fn log_of(n: usize) -> Vec<Vec<u8>> {
        let keys = [SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32])];
        let kid = |k: &SigningKey| KeyId::from_bytes(k.verifying_key().to_bytes());
        let (customer, vendor) = (kid(&keys[0]), kid(&keys[1]));
        let seal = |h: Header, body: Body| {
            let key = if h.from == customer { &keys[0] } else { &keys[1] };
            Message::seal(Payload { header: h, body }, key).unwrap()
        };
        let opening = Header::opening(RelationshipId::from_bytes([5; 16]), customer, vendor, T0);
        let first = seal(opening, Body::TermsProposal(TermsProposal { role: Role::Customer, terms: terms() }));
        let (mut rel, _) = Relationship::open(&first, T0, Policy::LOG).unwrap();
        let mut log = vec![first.bytes().to_vec()];
        let mut now = T0;
        let mut send = |rel: &mut Relationship, role: Role, body: Body| {
            now += 1000;
            let m = seal(rel.next_header(role, now), body);
            rel.handle(&m, now, Policy::LOG).unwrap();
            log.push(m.bytes().to_vec());
            m.id()
        };
        send(&mut rel, Role::Vendor, Body::TermsAcceptance(TermsAcceptance { proposal: first.id() }));
        let purpose = Purpose::new("dpv:ServiceProvision").unwrap();
        let category = Category::new("pd:Location").unwrap();
        send(
            &mut rel,
            Role::Customer,
            Body::ConsentGrant(ConsentGrant {
                purposes: vec![purpose.clone()],
                categories: vec![category.clone()],
                third_party_sharing: false,
                retention: 86_400,
                expires: None,
            }),
        );
        for i in 3..n {
            let share = DataShare {
                content: ShareContent::Data,
                purpose: Some(purpose.clone()),
                categories: vec![category.clone()],
                commitment: Digest32::of(&i.to_be_bytes()),
                media_type: "application/json".into(),
                size: i as u64,
            };
            let role = if i % 2 == 0 { Role::Customer } else { Role::Vendor };
            send(&mut rel, role, Body::DataShare(share));
        }
        log
    }

    fn sequential(envelopes: &[Vec<u8>]) -> Result<Verified, Error> {
        verify_messages(&open_all(envelopes)?)
    }

    fn bad_signature(log: &mut [Vec<u8>], i: usize) {
        let last = log[i].len() - 1;
        log[i][last] ^= 0x01;
    }

    #[test]
    fn verify_agrees_with_open_all_then_replay() {
        let log = log_of(24);
        let v = verify(&log).unwrap();
        assert_eq!((v.chained, v.phase()), (24, Phase::Active));
        let s = sequential(&log).unwrap();
        assert_eq!((s.chained, s.phase()), (v.chained, v.phase()));
        // Any order of input gives the same verdict.
        let mut reversed = log.clone();
        reversed.reverse();
        assert_eq!(verify(&reversed).unwrap().relationship.log(), v.relationship.log());
    }

    #[test]
    fn the_first_bad_envelope_in_input_order_is_named() {
        let mut log = log_of(24);
        bad_signature(&mut log, 17);
        bad_signature(&mut log, 9);
        let e = verify(&log).unwrap_err();
        assert_eq!((e.code, e.index), (Code::BadSignature, Some(9)));
        assert_eq!(sequential(&log).unwrap_err(), e);

        // A bad signature before a malformed envelope is still the one named.
        log[12].truncate(40);
        let e = verify(&log).unwrap_err();
        assert_eq!((e.code, e.index), (Code::BadSignature, Some(9)));
        assert_eq!(sequential(&log).unwrap_err(), e);
        log[4].truncate(40);
        let e = verify(&log).unwrap_err();
        assert_eq!((e.code, e.index), (Code::Malformed, Some(4)));
        assert_eq!(sequential(&log).unwrap_err(), e);
    }

    #[test]
    fn signatures_are_judged_before_the_replay() {
        let mut log = log_of(12);
        log.remove(5);
        let gap = verify(&log).unwrap_err();
        assert_eq!(gap.code, Code::ChainGap);
        assert_eq!(sequential(&log).unwrap_err(), gap);
        bad_signature(&mut log, 10);
        let e = verify(&log).unwrap_err();
        assert_eq!((e.code, e.index), (Code::BadSignature, Some(10)));
        assert_eq!(sequential(&log).unwrap_err(), e);
    }
}
