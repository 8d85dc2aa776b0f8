//! Property tests of the protocol core (issue #2): sealing and opening round-trip for arbitrary
//! valid payloads (spec §3–§5), encodings are stable and unique (§3.1), any change to a signed
//! envelope is refused (§3.5), and the relationship state machine refuses exactly what the
//! state table of spec §7.3.2 forbids, changing nothing when it refuses (§7, §7.4, §7.5).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use ciborium::Value;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use proptest::sample::select;
use rapport_protocol::cbor::{self, MAX_MESSAGE_SIZE};
use rapport_protocol::relationship::{Agreement, Grant};
use rapport_protocol::vocab::{self, CATEGORIES, PURPOSES};
use rapport_protocol::*;

fn kid(key: &SigningKey) -> KeyId {
    KeyId::from_bytes(key.verifying_key().to_bytes())
}

// =============================================================================================
// Strategies for arbitrary valid payloads.

/// Text of at most [`MAX_TEXT`] UTF-8 bytes: mostly short strings of any printable Unicode,
/// sometimes one character repeated up to the byte limit exactly.
fn any_text(nonempty: bool) -> impl Strategy<Value = String> {
    let long = (any::<char>(), prop_oneof![0..=MAX_TEXT, Just(MAX_TEXT)])
        .prop_map(|(c, bytes)| c.to_string().repeat(bytes / c.len_utf8()));
    prop_oneof![6 => "\\PC{0,16}", 1 => long]
        .prop_map(move |s| if nonempty && s.is_empty() { "ü".to_owned() } else { s })
}

/// Short text, for list items (so that 64 of them stay well within the message size).
fn short_text() -> impl Strategy<Value = String> {
    "\\PC{1,8}"
}

fn term(builtin: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(builtin).prop_map(str::to_owned),
        1 => "https://[!-~]{1,24}",
        1 => "urn:[!-~]{1,24}",
    ]
}

/// A term, or now and then an extension URI of the longest allowed length (256 bytes).
fn term_or_long(builtin: &'static [&'static str], prefix: &'static str) -> impl Strategy<Value = String> {
    let long = "[!-~]".prop_map(move |c| format!("{prefix}{}", c.repeat(vocab::MAX_TERM_LEN - prefix.len())));
    prop_oneof![9 => term(builtin), 1 => long]
}

fn purpose() -> impl Strategy<Value = Purpose> {
    term_or_long(PURPOSES, "urn:").prop_map(|s| Purpose::new(s).unwrap())
}

fn category() -> impl Strategy<Value = Category> {
    term_or_long(CATEGORIES, "https://").prop_map(|s| Category::new(s).unwrap())
}

/// `MAX_ITEMS` distinct terms: the built-in ones, then extension URIs.
fn max_terms<T>(builtin: &[&str], make: impl Fn(String) -> T) -> Vec<T> {
    (0..MAX_ITEMS).map(|i| make(builtin.get(i).map_or_else(|| format!("urn:x:{i}"), |s| (*s).to_owned()))).collect()
}

/// A list of unique terms in random order: usually short, sometimes exactly [`MAX_ITEMS`] long.
fn unique<T: Ord + Clone + std::fmt::Debug, S: Strategy<Value = T>>(
    item: impl Fn() -> S,
    min: usize,
    max: Vec<T>,
) -> impl Strategy<Value = Vec<T>> {
    prop_oneof![
        8 => prop::collection::btree_set(item(), min..=4).prop_map(|s| s.into_iter().collect::<Vec<_>>()),
        1 => Just(max),
    ]
    .prop_shuffle()
}

fn purposes(min: usize) -> impl Strategy<Value = Vec<Purpose>> {
    unique(purpose, min, max_terms(PURPOSES, |s| Purpose::new(s).unwrap()))
}

fn categories(min: usize) -> impl Strategy<Value = Vec<Category>> {
    unique(category, min, max_terms(CATEGORIES, |s| Category::new(s).unwrap()))
}

fn money() -> impl Strategy<Value = Money> {
    ("[A-Z]{3}", any::<u64>()).prop_map(|(currency, minor_units)| Money { currency, minor_units })
}

fn price() -> impl Strategy<Value = Price> {
    prop_oneof![
        money().prop_map(|amount| Price { model: PriceModel::Upfront, amount, metric: None, threshold: None }),
        (money(), any_text(true), any::<Option<u64>>()).prop_map(|(amount, m, threshold)| Price {
            model: PriceModel::PerUsage,
            amount,
            metric: Some(m),
            threshold
        }),
        (money(), short_text(), any::<u64>()).prop_map(|(amount, m, t)| Price {
            model: PriceModel::PerImpact,
            amount,
            metric: Some(m),
            threshold: Some(t)
        }),
    ]
}

fn terms() -> impl Strategy<Value = Terms> {
    (
        (1..=u64::MAX, select(vec![Renewal::None, Renewal::OptIn, Renewal::Automatic]), any::<u64>()),
        price(),
        (purposes(0), categories(0)),
        (short_text(), any::<u64>(), any::<u64>()),
        money(),
    )
        .prop_map(
            |((duration, renewal, notice_period), price, (purposes, categories), (format, deadline, del), fee)| Terms {
                duration,
                renewal,
                notice_period,
                price,
                data: DataTerms { purposes, categories },
                portability: Portability { format, deadline },
                deletion_deadline: del,
                exit_fee: fee,
            },
        )
}

fn id() -> impl Strategy<Value = MessageId> {
    any::<[u8; 32]>().prop_map(MessageId::from_bytes)
}

fn disposition_item() -> impl Strategy<Value = DispositionItem> {
    (category(), 0..4u8, any::<[u8; 32]>(), short_text(), any::<u64>()).prop_map(|(category, o, d, basis, until)| {
        let outcome = [Outcome::Returned, Outcome::ReturnedAndDeleted, Outcome::Deleted, Outcome::Retained][o as usize];
        let returned = matches!(outcome, Outcome::Returned | Outcome::ReturnedAndDeleted);
        let retained = outcome == Outcome::Retained;
        DispositionItem {
            category,
            outcome,
            export: returned.then(|| Digest32::from_bytes(d)),
            legal_basis: retained.then_some(basis),
            until: retained.then_some(until),
        }
    })
}

fn with_unique_categories<T>(items: Vec<T>, cat: impl Fn(&T) -> &Category) -> Vec<T> {
    let mut seen = BTreeSet::new();
    items.into_iter().filter(|i| seen.insert(cat(i).clone())).collect()
}

fn report() -> impl Strategy<Value = Report> {
    (any_text(true), short_text(), any::<u64>(), 1..=u64::MAX, any::<u64>()).prop_map(
        |(metric, unit, s, len, value)| {
            let start = s.min(u64::MAX - len);
            Report { metric, unit, start, end: start + len, value }
        },
    )
}

/// An arbitrary valid body; every kind is equally likely.
fn body() -> impl Strategy<Value = Body> {
    let offer = (any_text(true), any_text(false), price(), prop::option::of(terms()))
        .prop_map(|(title, description, price, terms)| Body::Offer(Offer { title, description, price, terms }));
    let intent = (
        any_text(true),
        any_text(false),
        prop_oneof![prop::collection::vec(short_text(), 0..4), prop::collection::vec(short_text(), MAX_ITEMS)],
        prop::option::of(money()),
    )
        .prop_map(|(title, description, tags, budget)| Body::Intent(Intent { title, description, tags, budget }));
    let role = select(vec![Role::Customer, Role::Vendor]);
    let share = (0..3u8, purpose(), categories(1), any::<[u8; 32]>(), short_text(), any::<u64>()).prop_map(
        |(c, purpose, categories, d, media_type, size)| {
            let content = [ShareContent::Data, ShareContent::Insight, ShareContent::Export][c as usize];
            Body::DataShare(DataShare {
                content,
                purpose: (content != ShareContent::Export).then_some(purpose),
                categories,
                commitment: Digest32::from_bytes(d),
                media_type,
                size,
            })
        },
    );
    let commission = (0..3u8, money(), 0..=10_000u64).prop_map(|(b, amount, bp)| match b {
        0 => Commission { basis: CommissionBasis::None, amount: None, basis_points: None },
        1 => Commission { basis: CommissionBasis::Flat, amount: Some(amount), basis_points: None },
        _ => Commission { basis: CommissionBasis::Percent, amount: None, basis_points: Some(bp) },
    });
    let intro = (
        any_text(true),
        prop::option::of(any::<[u8; 32]>().prop_map(KeyId::from_bytes)),
        prop::option::of(any_text(true)),
        any_text(true),
        commission,
    )
        .prop_map(|(name, key, contact, offering, commission)| {
            Body::Introduction(Introduction { party: ThirdParty { name, key, contact }, offering, commission })
        });
    let action = select(vec![Action::Return, Action::Delete, Action::ReturnAndDelete]);
    let actions = prop::collection::vec(action, MAX_ITEMS);
    let notice = (any::<u64>(), prop::option::of(any_text(false)), categories(0), actions).prop_map(
        |(effective, reason, categories, actions)| {
            let disposition = categories
                .into_iter()
                .zip(actions)
                .map(|(category, action)| Disposition { category, action })
                .collect();
            Body::SeparationNotice(SeparationNotice { effective, reason, disposition })
        },
    );
    let statement = (
        id(),
        prop_oneof![
            prop::collection::vec(disposition_item(), 0..4),
            prop::collection::vec(disposition_item(), MAX_ITEMS)
        ],
    )
        .prop_map(|(notice, items)| {
            let items = with_unique_categories(items, |i| &i.category);
            Body::DispositionStatement(DispositionStatement { notice, items })
        });
    prop_oneof![
        offer,
        intent,
        (role, terms()).prop_map(|(role, terms)| Body::TermsProposal(TermsProposal { role, terms })),
        id().prop_map(|proposal| Body::TermsAcceptance(TermsAcceptance { proposal })),
        (id(), any_text(false), prop::option::of(terms()))
            .prop_map(|(proposal, reason, counter)| Body::TermsRejection(TermsRejection { proposal, reason, counter })),
        (purposes(1), categories(1), any::<bool>(), any::<u64>(), any::<Option<u64>>()).prop_map(
            |(purposes, categories, third_party_sharing, retention, expires)| Body::ConsentGrant(ConsentGrant {
                purposes,
                categories,
                third_party_sharing,
                retention,
                expires
            })
        ),
        (id(), prop::option::of(any_text(false)))
            .prop_map(|(grant, reason)| Body::ConsentRevocation(ConsentRevocation { grant, reason })),
        report().prop_map(Body::UsageReport),
        report().prop_map(Body::ImpactReport),
        id().prop_map(|report| Body::Countersignature(Countersignature { report })),
        share,
        intro,
        notice,
        statement,
        id().prop_map(|statement| Body::ClosureReceipt(ClosureReceipt { statement })),
        id().prop_map(|message| Body::Receipt(Receipt { message })),
        (select(Code::ALL).prop_map(|c| c.as_str().to_owned()), prop::option::of(id()), any_text(false))
            .prop_map(|(code, message, text)| Body::ProblemReport(ProblemReport { code, message, text })),
    ]
}

/// Header fields from which a header of any class is built.
#[derive(Debug, Clone)]
struct HeaderParts {
    rel: [u8; 16],
    to: [u8; 32],
    seq: u64,
    prev: MessageId,
    ack: Option<MessageId>,
    at: Timestamp,
    exp: Option<u64>,
    re: Option<MessageId>,
    /// An offer addressed (not public); a problem report with `rel`.
    addressed: bool,
}

fn header_parts() -> impl Strategy<Value = HeaderParts> {
    (
        (any::<[u8; 16]>(), any::<[u8; 32]>(), prop_oneof![1..4u64, 1..=u64::MAX], id()),
        (prop::option::of(id()), prop_oneof![any::<u64>(), 1_700_000_000_000..1_800_000_000_000u64]),
        (prop::option::of(prop_oneof![Just(0u64), any::<u64>()]), prop::option::of(id()), any::<bool>()),
    )
        .prop_map(|((rel, to, seq, prev), (ack, at), (exp, re, addressed))| HeaderParts {
            rel,
            to,
            seq,
            prev,
            ack,
            at,
            exp,
            re,
            addressed,
        })
}

/// The header of the class of `kind` (spec §4.2), from `from` and the parts.
fn header(kind: Kind, from: KeyId, p: &HeaderParts) -> Header {
    let mut to = p.to;
    if to == *from.as_bytes() {
        to[0] ^= 1;
    }
    let mut h = Header::public(from, p.at);
    h.expires_at = p.exp.map(|d| p.at.saturating_add(d));
    h.reply_to = p.re;
    match kind.class() {
        Class::Public => {}
        Class::Opening if kind == Kind::Offer && !p.addressed => {}
        Class::Opening | Class::Chained => {
            h.relationship = Some(RelationshipId::from_bytes(p.rel));
            h.to = Some(KeyId::from_bytes(to));
            h.seq = p.seq;
            h.prev = (p.seq > 1).then_some(p.prev);
            h.ack = p.ack;
        }
        Class::Ack => {
            let with_rel = kind == Kind::Receipt || p.addressed;
            h.relationship = with_rel.then(|| RelationshipId::from_bytes(p.rel));
            h.to = Some(KeyId::from_bytes(to));
            h.ack = p.ack;
        }
    }
    h
}

/// A signing key and a valid payload signed by it.
fn signed_payload() -> impl Strategy<Value = (SigningKey, Payload)> {
    (any::<[u8; 32]>(), body(), header_parts()).prop_map(|(seed, body, parts)| {
        let key = SigningKey::from_bytes(&seed);
        let header = header(body.kind(), kid(&key), &parts);
        (key, Payload { header, body })
    })
}

// =============================================================================================
// a–c: envelopes.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (a) Seal, then open: the same payload, id = SHA-256 of the bytes, signer = from.
    #[test]
    fn sealed_messages_open_to_the_same_payload((key, payload) in signed_payload()) {
        let sent = Message::seal(payload.clone(), &key).unwrap();
        prop_assert!(sent.bytes().len() <= MAX_MESSAGE_SIZE, "the strategies stay within the size limit");
        let got = Message::open(sent.bytes()).unwrap();
        prop_assert_eq!(got.payload(), &payload);
        prop_assert_eq!(got.id(), MessageId::of(sent.bytes()));
        prop_assert_eq!(got.id(), sent.id());
        prop_assert_eq!(got.signer(), payload.header.from);
        prop_assert_eq!(got.signer(), kid(&key));
        prop_assert_eq!(got.bytes(), sent.bytes());
        prop_assert_eq!(got.payload_bytes(), payload.encode().unwrap());
        prop_assert_eq!(&got, &sent);
    }

    /// (b) Decoding and re-encoding gives the identical bytes; sealing is deterministic.
    #[test]
    fn encoding_is_stable((key, payload) in signed_payload()) {
        let bytes = payload.encode().unwrap();
        let decoded = Payload::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &payload);
        prop_assert_eq!(decoded.encode().unwrap(), bytes);
        let a = Message::seal(payload.clone(), &key).unwrap();
        let b = Message::seal(decoded, &key).unwrap();
        prop_assert_eq!(a.bytes(), b.bytes());
        prop_assert_eq!(a.id(), b.id());
    }

    /// (b) One encoding per value: whatever bytes the decoder accepts — here, edits of a valid
    /// payload's CBOR tree and of its bytes — are exactly the encoding of what they decode to.
    #[test]
    fn the_decoder_accepts_only_the_encoders_output(
        (_key, payload) in signed_payload(),
        edits in prop::collection::vec((any::<u8>(), any::<usize>(), replacement()), 1..3),
        byte_edit in any::<(usize, u8)>(),
    ) {
        let mut value: Value = cbor::decode_canonical::<Value>(&payload.encode().unwrap(), MAX_MESSAGE_SIZE).unwrap().1;
        for (op, at, new) in edits {
            edit_tree(&mut value, op, at, new);
        }
        let sorted = cbor::to_canonical_vec(&value).unwrap();
        let mut as_is = Vec::new();
        ciborium::into_writer(&value, &mut as_is).unwrap();
        let mut flipped = sorted.clone();
        if !flipped.is_empty() {
            let i = byte_edit.0 % flipped.len();
            flipped[i] ^= byte_edit.1;
        }
        for bytes in [sorted, as_is, flipped] {
            if let Ok(p) = Payload::decode(&bytes) {
                prop_assert_eq!(p.encode().unwrap(), bytes);
            }
        }
    }

    /// (c) Any single-byte change, any truncation and any appended byte is refused.
    #[test]
    fn any_change_to_a_signed_message_is_refused(
        (key, payload) in signed_payload(),
        at in any::<usize>(),
        mask in 1..=255u8,
        cut in any::<usize>(),
        extra in any::<u8>(),
    ) {
        let sent = Message::seal(payload, &key).unwrap();
        let bytes = sent.bytes();
        let mut flipped = bytes.to_vec();
        let at = at % bytes.len();
        flipped[at] ^= mask;
        prop_assert!(Message::open(&flipped).is_err(), "byte {} ^ {:#04x} accepted", at, mask);
        let cut = cut % bytes.len();
        prop_assert!(Message::open(&bytes[..cut]).is_err(), "truncation to {} bytes accepted", cut);
        prop_assert!(Message::open(&[bytes, &[extra]].concat()).is_err(), "appended {:#04x} accepted", extra);
        prop_assert!(Message::open(&[&[extra], bytes].concat()).is_err(), "prepended {:#04x} accepted", extra);
    }
}

/// Values that replace a node of a payload's CBOR tree.
fn replacement() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(|n| Value::Integer(n.into())),
        (0..30u64).prop_map(|n| Value::Integer(n.into())),
        any::<i64>().prop_map(|n| Value::Integer(n.into())),
        "[a-z_]{0,12}".prop_map(Value::Text),
        select(vec!["upfront", "per_usage", "customer", "vendor", "export", "retained", "none", "flat"])
            .prop_map(|s| Value::Text(s.into())),
        prop_oneof![
            prop::collection::vec(any::<u8>(), 16),
            prop::collection::vec(any::<u8>(), 32),
            prop::collection::vec(any::<u8>(), 0..40)
        ]
        .prop_map(Value::Bytes),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        Just(Value::Array(vec![])),
        Just(Value::Map(vec![])),
        Just(Value::Float(1.0)),
    ]
}

/// Applies one edit to the tree. Half of the edits keep the node's type (another integer, text
/// or byte string of the same length, the other boolean, one entry fewer), since those are the
/// edits a decoder is most likely to accept; the others replace, add or wrap a node.
fn edit_tree(root: &mut Value, op: u8, at: usize, new: Value) {
    let count = count_nodes(root);
    let target = nth_node(root, at % count);
    match (op % 6, target, new) {
        (0..=2, Value::Integer(i), new) => {
            let n = i128::from(*i);
            *i = match new {
                Value::Integer(j) => j,
                _ => ciborium::value::Integer::try_from(n ^ 1).unwrap_or(0.into()),
            }
        }
        (0..=2, Value::Text(t), Value::Text(new)) => *t = new,
        (0..=2, Value::Text(t), _) => t.push('x'),
        (0..=2, Value::Bytes(b), _) if !b.is_empty() => {
            let i = at % b.len();
            b[i] ^= 0x80;
        }
        (0..=2, Value::Bool(b), _) => *b = !*b,
        (0..=2, Value::Map(e), _) if !e.is_empty() => {
            e.remove(at % e.len());
        }
        (0..=2, Value::Array(items), _) if !items.is_empty() => {
            items.remove(at % items.len());
        }
        (3, Value::Map(e), new) => {
            let key = ["v", "to", "seq", "body", "metric", "amount", "role", "x", "terms", "purpose"][at % 10];
            e.push((Value::Text(key.into()), new));
        }
        (3, Value::Array(items), new) => items.push(new),
        (4, target, new) => {
            let old = std::mem::replace(target, Value::Null);
            *target = if at % 2 == 0 { Value::Array(vec![old]) } else { Value::Map(vec![(new, old)]) };
        }
        (_, target, new) => *target = new,
    }
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Map(entries) => entries.iter().map(|(_, val)| count_nodes(val)).sum(),
        _ => 0,
    }
}

/// The `n`th node in pre-order (the root is 0).
fn nth_node(v: &mut Value, mut n: usize) -> &mut Value {
    if n == 0 {
        return v;
    }
    n -= 1;
    let children: Vec<&mut Value> = match v {
        Value::Array(items) => items.iter_mut().collect(),
        Value::Map(entries) => entries.iter_mut().map(|(_, val)| val).collect(),
        _ => unreachable!("n is below the node count"),
    };
    for child in children {
        let size = count_nodes(child);
        if n < size {
            return nth_node(child, n);
        }
        n -= size;
    }
    unreachable!("n is below the node count")
}

// =============================================================================================
// d–e: the relationship state machine.

const T0: Timestamp = 1_750_000_000_000;
const LIVE: Policy = Policy::LIVE;
const DAY: u64 = 86_400_000;

/// The state table of spec §7.3.2, copied from the spec. Columns: the phase in the sender's
/// view, in the order of [`PHASES`]. A cell is "either", "C" (customer only, `not-permitted`
/// for the vendor), "V" (vendor only) or the code of a refusal; superscripts are the notes.
const STATE_TABLE: &str = "
| `offer` | V | `out-of-state` | `out-of-state` | `out-of-state` | `closed` |
| `terms_proposal` | either ¹ | either ¹ | either ¹ | `out-of-state` | `closed` |
| `terms_acceptance` | `out-of-state` | either ² | either ² | `out-of-state` | `closed` |
| `terms_rejection` | `out-of-state` | either ² | either ² | `out-of-state` | `closed` |
| `consent_grant` | `out-of-state` | `out-of-state` | C ³ | `out-of-state` | `closed` |
| `consent_revocation` | `out-of-state` | `out-of-state` | C ⁴ | C ⁴ | `closed` |
| `usage_report`, `impact_report` | `out-of-state` | `out-of-state` | either ³ | `out-of-state` | `closed` |
| `countersignature` | `out-of-state` | `out-of-state` | either ⁵ | either ⁵ | `closed` |
| `data_share` with `data` or `insight` | `out-of-state` | `out-of-state` | either ³ ⁶ | `out-of-state` | `closed` |
| `data_share` with `export` | `out-of-state` | `out-of-state` | `out-of-state` | V | `closed` |
| `introduction` | `out-of-state` | `out-of-state` | either ³ | `out-of-state` | `closed` |
| `separation_notice` | either ⁷ | either ⁷ | either ⁷ | `out-of-state` | `closed` |
| `disposition_statement` | `out-of-state` | `out-of-state` | `out-of-state` | V ⁸ | `closed` |
| `closure_receipt` | `out-of-state` | `out-of-state` | `out-of-state` | C ⁹ | `closed` |
| `receipt` | either ¹⁰ | either ¹⁰ | either ¹⁰ | either ¹⁰ | either ¹⁰ |
| `problem_report` | either | either | either | either | either |
";

const PHASES: [Phase; 5] = [Phase::Proposed, Phase::Negotiating, Phase::Active, Phase::Separating, Phase::Closed];
const ROLES: [Role; 2] = [Role::Customer, Role::Vendor];

/// What a message can be, one per distinct rule of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    Offer,
    TermsProposal,
    TermsAcceptance,
    TermsRejection,
    ConsentGrant,
    ConsentRevocation,
    UsageReport,
    ImpactReport,
    Countersignature,
    ShareData,
    ShareInsight,
    ShareExport,
    Introduction,
    SeparationNotice,
    DispositionStatement,
    ClosureReceipt,
    Receipt,
    ProblemReport,
}

impl Row {
    const ALL: [Row; 18] = [
        Row::Offer,
        Row::TermsProposal,
        Row::TermsAcceptance,
        Row::TermsRejection,
        Row::ConsentGrant,
        Row::ConsentRevocation,
        Row::UsageReport,
        Row::ImpactReport,
        Row::Countersignature,
        Row::ShareData,
        Row::ShareInsight,
        Row::ShareExport,
        Row::Introduction,
        Row::SeparationNotice,
        Row::DispositionStatement,
        Row::ClosureReceipt,
        Row::Receipt,
        Row::ProblemReport,
    ];

    /// The first cell of its row in [`STATE_TABLE`].
    fn label(self) -> &'static str {
        match self {
            Row::Offer => "`offer`",
            Row::TermsProposal => "`terms_proposal`",
            Row::TermsAcceptance => "`terms_acceptance`",
            Row::TermsRejection => "`terms_rejection`",
            Row::ConsentGrant => "`consent_grant`",
            Row::ConsentRevocation => "`consent_revocation`",
            Row::UsageReport | Row::ImpactReport => "`usage_report`, `impact_report`",
            Row::Countersignature => "`countersignature`",
            Row::ShareData | Row::ShareInsight => "`data_share` with `data` or `insight`",
            Row::ShareExport => "`data_share` with `export`",
            Row::Introduction => "`introduction`",
            Row::SeparationNotice => "`separation_notice`",
            Row::DispositionStatement => "`disposition_statement`",
            Row::ClosureReceipt => "`closure_receipt`",
            Row::Receipt => "`receipt`",
            Row::ProblemReport => "`problem_report`",
        }
    }

    fn is_ack(self) -> bool {
        matches!(self, Row::Receipt | Row::ProblemReport)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    Either,
    Only(Role),
    Refused(Code),
}

fn cell(row: Row, phase: Phase) -> Cell {
    let prefix = format!("| {} |", row.label());
    let line = STATE_TABLE.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no row {prefix}"));
    let cells: Vec<&str> = line.split('|').map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(cells.len(), 1 + PHASES.len(), "{line}");
    let column = 1 + PHASES.iter().position(|&p| p == phase).unwrap();
    match cells[column].split_whitespace().next().unwrap().trim_matches('`') {
        "either" => Cell::Either,
        "C" => Cell::Only(Role::Customer),
        "V" => Cell::Only(Role::Vendor),
        code => Cell::Refused(code.parse().unwrap_or_else(|e| panic!("{line}: {e}"))),
    }
}

/// The code the table gives `sender` for `row` in `phase`, or `None` if it allows it.
fn forbidden(row: Row, phase: Phase, sender: Role) -> Option<Code> {
    match cell(row, phase) {
        Cell::Either => None,
        Cell::Only(role) if role == sender => None,
        Cell::Only(_) => Some(Code::NotPermitted),
        Cell::Refused(code) => Some(code),
    }
}

#[test]
fn every_row_of_the_state_table_is_tested() {
    for line in STATE_TABLE.lines().filter(|l| !l.is_empty()) {
        assert!(Row::ALL.iter().any(|r| line.starts_with(&format!("| {} |", r.label()))), "untested row {line}");
    }
    for row in Row::ALL {
        for phase in PHASES {
            cell(row, phase);
        }
    }
}

fn slot(role: Role) -> usize {
    match role {
        Role::Customer => 0,
        Role::Vendor => 1,
    }
}

fn keys() -> [SigningKey; 2] {
    [SigningKey::from_bytes(&[0xc1; 32]), SigningKey::from_bytes(&[0x7e; 32])]
}

fn stranger() -> SigningKey {
    SigningKey::from_bytes(&[0x5a; 32])
}

fn p(s: &str) -> Purpose {
    Purpose::new(s).unwrap()
}

fn c(s: &str) -> Category {
    Category::new(s).unwrap()
}

const NOTICE_CATEGORIES: [&str; 3] = ["pd:Location", "pd:Name", "urn:example:meter-reading"];

fn fixed_terms(notice_days: u64) -> Terms {
    Terms {
        duration: 365 * 86_400,
        renewal: Renewal::None,
        notice_period: notice_days * 86_400,
        price: Price {
            model: PriceModel::PerUsage,
            amount: Money::new("EUR", 25),
            metric: Some("kWh".into()),
            threshold: None,
        },
        data: DataTerms { purposes: vec![p("dpv:ServiceProvision")], categories: vec![c("pd:Location")] },
        portability: Portability { format: "application/json".into(), deadline: 30 * 86_400 },
        deletion_deadline: 30 * 86_400,
        exit_fee: Money::new("EUR", 0),
    }
}

fn offer() -> Body {
    Body::Offer(Offer {
        title: "Solar panel lease".into(),
        description: String::new(),
        price: fixed_terms(0).price,
        terms: None,
    })
}

fn proposal(role: Role, notice_days: u64) -> Body {
    Body::TermsProposal(TermsProposal { role, terms: fixed_terms(notice_days) })
}

fn share(content: ShareContent) -> Body {
    Body::DataShare(DataShare {
        content,
        purpose: (content != ShareContent::Export).then(|| p("dpv:ServiceProvision")),
        categories: vec![c("pd:Location")],
        commitment: Digest32::commit(&[3; 32], b"{\"kwh\": 12}"),
        media_type: "application/json".into(),
        size: 11,
    })
}

fn statement(notice: MessageId, disposition: &[Disposition]) -> Body {
    let items = disposition
        .iter()
        .map(|d| {
            let (outcome, export) = match d.action {
                Action::Return => (Outcome::Returned, Some(Digest32::of(b"export"))),
                Action::Delete => (Outcome::Deleted, None),
                Action::ReturnAndDelete => (Outcome::ReturnedAndDeleted, Some(Digest32::of(b"export"))),
            };
            DispositionItem { category: d.category.clone(), outcome, export, legal_basis: None, until: None }
        })
        .collect();
    Body::DispositionStatement(DispositionStatement { notice, items })
}

#[derive(Debug, Clone, Copy)]
enum Opening {
    Offer,
    Proposal(Role),
}

/// How to walk a relationship into `phase` through real flows.
#[derive(Debug, Clone)]
struct Plan {
    phase: Phase,
    opening: Opening,
    /// Who proposes, when the relationship was opened by an offer.
    proposer: Role,
    /// Whether the other party answers the proposal with a counter-proposal.
    counter: bool,
    /// Who proposes a renewal once active, if anyone.
    renewal: Option<Role>,
    notice_by: Role,
    notice_days: u64,
    disposition: Vec<(usize, Action)>,
    /// Whether the vendor has answered the notice when the relationship is separating.
    statement: bool,
    /// Milliseconds between messages.
    step: u64,
    rel: [u8; 16],
}

fn plan() -> impl Strategy<Value = Plan> {
    let role = || select(ROLES.to_vec());
    let action = select(vec![Action::Return, Action::Delete, Action::ReturnAndDelete]);
    (
        (select(PHASES.to_vec()), prop_oneof![Just(Opening::Offer), role().prop_map(Opening::Proposal)]),
        (role(), any::<bool>(), prop::option::of(role())),
        (role(), 0..60u64, prop::collection::btree_map(0..NOTICE_CATEGORIES.len(), action, 0..=3)),
        (any::<bool>(), 1..3_600_000u64, any::<[u8; 16]>()),
    )
        .prop_map(
            |((phase, opening), (proposer, counter, renewal), (notice_by, notice_days, d), (statement, step, rel))| {
                // A relationship opened by a proposal starts out negotiating.
                let opening = if phase == Phase::Proposed { Opening::Offer } else { opening };
                Plan {
                    phase,
                    opening,
                    proposer,
                    counter,
                    renewal,
                    notice_by,
                    notice_days,
                    disposition: d.into_iter().collect(),
                    statement,
                    step,
                    rel,
                }
            },
        )
}

/// A relationship walked into some phase, with what the test needs to know about it.
#[derive(Debug, Clone)]
struct World {
    keys: [SigningKey; 2],
    rel: Relationship,
    now: Timestamp,
    step: u64,
    open_proposal: Option<(MessageId, Role)>,
    grant: Option<MessageId>,
    reports: [Option<MessageId>; 2],
    notice: Option<(MessageId, Vec<Disposition>)>,
    statement: Option<MessageId>,
}

/// A message before it is sealed.
#[derive(Debug, Clone)]
struct Draft {
    signer: SigningKey,
    header: Header,
    body: Body,
}

impl Draft {
    fn seal(self) -> Message {
        Message::seal(Payload { header: self.header, body: self.body }, &self.signer).unwrap()
    }
}

impl World {
    fn kid(&self, role: Role) -> KeyId {
        kid(&self.keys[slot(role)])
    }

    /// Sends `body` from `role` one step later; it must be accepted.
    fn ok(&mut self, role: Role, body: Body) -> MessageId {
        self.now += self.step;
        let kind = body.kind();
        let m =
            Draft { signer: self.keys[slot(role)].clone(), header: self.rel.next_header(role, self.now), body }.seal();
        let events = self.rel.handle(&m, self.now, LIVE).unwrap_or_else(|e| panic!("{kind} from {role:?}: {e}"));
        assert!(matches!(events[0], Event::Accepted { .. }), "{events:?}");
        m.id()
    }

    fn build(plan: &Plan) -> World {
        let keys = keys();
        let (first, body) = match plan.opening {
            Opening::Offer => (Role::Vendor, offer()),
            Opening::Proposal(role) => (role, proposal(role, plan.notice_days)),
        };
        let header = Header::opening(
            RelationshipId::from_bytes(plan.rel),
            kid(&keys[slot(first)]),
            kid(&keys[slot(first.other())]),
            T0,
        );
        let m = Draft { signer: keys[slot(first)].clone(), header, body }.seal();
        let (rel, _) = Relationship::open(&m, T0, LIVE).unwrap();
        let mut w = World {
            keys,
            rel,
            now: T0,
            step: plan.step,
            open_proposal: None,
            grant: None,
            reports: [None, None],
            notice: None,
            statement: None,
        };
        if let Opening::Proposal(role) = plan.opening {
            w.open_proposal = Some((m.id(), role));
        }
        if plan.phase == Phase::Proposed {
            return w;
        }
        if w.open_proposal.is_none() {
            let id = w.ok(plan.proposer, proposal(plan.proposer, plan.notice_days));
            w.open_proposal = Some((id, plan.proposer));
        }
        if plan.counter {
            let (id, by) = w.open_proposal.unwrap();
            let counter = TermsRejection {
                proposal: id,
                reason: "shorter notice, please".into(),
                counter: Some(fixed_terms(plan.notice_days)),
            };
            let id = w.ok(by.other(), Body::TermsRejection(counter));
            w.open_proposal = Some((id, by.other()));
        }
        if plan.phase == Phase::Negotiating {
            return w;
        }
        let (id, by) = w.open_proposal.take().unwrap();
        w.ok(by.other(), Body::TermsAcceptance(TermsAcceptance { proposal: id }));
        w.grant = Some(w.ok(
            Role::Customer,
            Body::ConsentGrant(ConsentGrant {
                purposes: vec![p("dpv:ServiceProvision")],
                categories: vec![c("pd:Location"), c("pd:Name")],
                third_party_sharing: false,
                retention: 90 * 86_400,
                expires: None,
            }),
        ));
        for role in ROLES {
            w.reports[slot(role)] = Some(w.ok(role, Self::report(role, w.now)));
        }
        if let Some(role) = plan.renewal {
            let id = w.ok(role, proposal(role, plan.notice_days));
            w.open_proposal = Some((id, role));
        }
        if plan.phase == Phase::Active {
            return w;
        }
        let disposition: Vec<_> = plan
            .disposition
            .iter()
            .map(|&(i, action)| Disposition { category: c(NOTICE_CATEGORIES[i]), action })
            .collect();
        let effective = w.notice_effective(w.now + w.step);
        let id = w.ok(
            plan.notice_by,
            Body::SeparationNotice(SeparationNotice { effective, reason: None, disposition: disposition.clone() }),
        );
        w.notice = Some((id, disposition));
        if plan.statement || plan.phase == Phase::Closed {
            let (id, d) = w.notice.clone().unwrap();
            w.statement = Some(w.ok(Role::Vendor, statement(id, &d)));
        }
        if plan.phase == Phase::Separating {
            return w;
        }
        w.ok(Role::Customer, Body::ClosureReceipt(ClosureReceipt { statement: w.statement.unwrap() }));
        w
    }

    fn report(role: Role, now: Timestamp) -> Body {
        let r = Report { metric: "kWh".into(), unit: "kWh".into(), start: now - DAY, end: now, value: 42 };
        match role {
            Role::Customer => Body::ImpactReport(r),
            Role::Vendor => Body::UsageReport(r),
        }
    }

    /// The earliest effective date a notice sent at `at` may name (spec §7.3.2 note 7).
    fn notice_effective(&self, at: Timestamp) -> Timestamp {
        at + self.rel.agreement().map_or(0, |a| a.terms.notice_period * 1000)
    }

    /// The most valid message of `row` that `sender` can send at `at`: the next header, and
    /// references to the messages the row's notes ask for, where they exist.
    fn draft(&self, row: Row, sender: Role, at: Timestamp) -> Draft {
        let unknown = MessageId::from_bytes([0xee; 32]);
        let other = sender.other();
        let header = if row.is_ack() {
            Header::ack(Some(self.rel.id()), self.kid(sender), self.kid(other), at)
        } else {
            self.rel.next_header(sender, at)
        };
        let open_proposal = self.open_proposal.map_or(unknown, |(id, _)| id);
        let body = match row {
            Row::Offer => offer(),
            Row::TermsProposal => proposal(sender, 7),
            Row::TermsAcceptance => Body::TermsAcceptance(TermsAcceptance { proposal: open_proposal }),
            Row::TermsRejection => Body::TermsRejection(TermsRejection {
                proposal: open_proposal,
                reason: String::new(),
                counter: Some(fixed_terms(3)),
            }),
            Row::ConsentGrant => Body::ConsentGrant(ConsentGrant {
                purposes: vec![p("dpv:Marketing")],
                categories: vec![c("pd:EmailAddress")],
                third_party_sharing: true,
                retention: 0,
                expires: Some(at + DAY),
            }),
            Row::ConsentRevocation => {
                Body::ConsentRevocation(ConsentRevocation { grant: self.grant.unwrap_or(unknown), reason: None })
            }
            Row::UsageReport | Row::ImpactReport => {
                let (Body::UsageReport(r) | Body::ImpactReport(r)) = Self::report(sender, at) else { unreachable!() };
                if row == Row::UsageReport {
                    Body::UsageReport(r)
                } else {
                    Body::ImpactReport(r)
                }
            }
            Row::Countersignature => {
                Body::Countersignature(Countersignature { report: self.reports[slot(other)].unwrap_or(unknown) })
            }
            Row::ShareData => share(ShareContent::Data),
            Row::ShareInsight => share(ShareContent::Insight),
            Row::ShareExport => share(ShareContent::Export),
            Row::Introduction => Body::Introduction(Introduction {
                party: ThirdParty { name: "Roof Co".into(), key: None, contact: Some("urn:roof".into()) },
                offering: "roof inspection".into(),
                commission: Commission { basis: CommissionBasis::None, amount: None, basis_points: None },
            }),
            Row::SeparationNotice => Body::SeparationNotice(SeparationNotice {
                effective: self.notice_effective(at),
                reason: Some("moving".into()),
                disposition: vec![],
            }),
            Row::DispositionStatement => match &self.notice {
                Some((id, d)) => statement(*id, d),
                None => statement(unknown, &[]),
            },
            Row::ClosureReceipt => {
                Body::ClosureReceipt(ClosureReceipt { statement: self.statement.unwrap_or(unknown) })
            }
            Row::Receipt => Body::Receipt(Receipt { message: self.rel.last_id(other).unwrap_or(unknown) }),
            Row::ProblemReport => Body::ProblemReport(ProblemReport {
                code: "consent-required".into(),
                message: self.rel.last_id(other),
                text: "no".into(),
            }),
        };
        Draft { signer: self.keys[slot(sender)].clone(), header, body }
    }

    /// The verdict on [`Self::draft`]: the table first (phase, then role), then the notes.
    fn expected(&self, row: Row, sender: Role) -> Result<(), Code> {
        if let Some(code) = forbidden(row, self.rel.phase(), sender) {
            return Err(code);
        }
        let present = |yes: bool| if yes { Ok(()) } else { Err(Code::UnknownReference) };
        match row {
            Row::TermsAcceptance | Row::TermsRejection => match self.open_proposal {
                None => Err(Code::UnknownReference),
                Some((_, by)) if by == sender => Err(Code::NotPermitted),
                Some(_) => Ok(()),
            },
            Row::ConsentRevocation => present(self.grant.is_some()),
            Row::Countersignature => present(self.reports[slot(sender.other())].is_some()),
            Row::DispositionStatement => present(self.notice.is_some()),
            Row::ClosureReceipt => present(self.statement.is_some()),
            Row::Receipt => present(self.rel.last_id(sender.other()).is_some()),
            _ => Ok(()),
        }
    }

    /// The `at` of the latest message of `role`'s chain.
    fn last_at(&self, role: Role) -> Option<Timestamp> {
        let last = self.rel.last_id(role)?;
        self.rel.log().iter().find(|m| m.id() == last).map(|m| m.header().created_at)
    }
}

/// Everything observable about a relationship, and a digest of its whole debug form.
#[derive(Debug, PartialEq)]
struct Snapshot {
    phase: Phase,
    log: Vec<MessageId>,
    acks: BTreeSet<MessageId>,
    next_seq: [u64; 2],
    last: [Option<MessageId>; 2],
    agreement: Option<Agreement>,
    grants: Vec<(MessageId, Grant)>,
    all: Digest32,
}

fn snapshot(rel: &Relationship) -> Snapshot {
    let mut grants: Vec<_> = rel.grants().iter().map(|(id, g)| (*id, g.clone())).collect();
    grants.sort_by_key(|(id, _)| *id);
    Snapshot {
        phase: rel.phase(),
        log: rel.log().iter().map(Message::id).collect(),
        acks: rel.acknowledgements().map(Message::id).collect(),
        next_seq: ROLES.map(|r| rel.next_seq(r)),
        last: ROLES.map(|r| rel.last_id(r)),
        agreement: rel.agreement().cloned(),
        grants,
        all: Digest32::of(format!("{rel:?}").as_bytes()),
    }
}

/// Applies `m` to a copy of the relationship: a refusal must carry `expected`'s code and
/// change nothing; an acceptance must be expected.
fn check(
    world: &World,
    m: &Message,
    at: Timestamp,
    expected: Result<(), Code>,
    what: &str,
) -> Result<(), TestCaseError> {
    let mut rel = world.rel.clone();
    let before = snapshot(&rel);
    match (expected, rel.handle(m, at, LIVE)) {
        (Err(want), Err(e)) => {
            prop_assert_eq!(e.code, want, "{}: {}", what, e);
            prop_assert_eq!(snapshot(&rel), before, "{}: refused, yet the relationship changed", what);
        }
        (Ok(()), Ok(events)) => prop_assert!(
            matches!(events[0], Event::Accepted { .. } | Event::Receipted { .. } | Event::Refused { .. }),
            "{}: {:?}",
            what,
            events
        ),
        (want, got) => prop_assert!(false, "{}: expected {:?}, got {:?}", what, want, got),
    }
    Ok(())
}

/// Every (kind, sender) pair against one relationship.
fn check_table(world: &World) -> Result<(), TestCaseError> {
    let at = world.now + world.step;
    for row in Row::ALL {
        for sender in ROLES {
            let m = world.draft(row, sender, at).seal();
            let what = format!("{row:?} from {sender:?} while {}", world.rel.phase());
            check(world, &m, at, world.expected(row, sender), &what)?;
        }
    }
    Ok(())
}

#[test]
fn every_cell_of_the_state_table() {
    for phase in PHASES {
        for (opening, renewal, statement) in
            [(Opening::Offer, None, false), (Opening::Proposal(Role::Customer), Some(Role::Vendor), true)]
        {
            let plan = Plan {
                phase,
                opening: if phase == Phase::Proposed { Opening::Offer } else { opening },
                proposer: Role::Vendor,
                counter: false,
                renewal,
                notice_by: Role::Customer,
                notice_days: 7,
                disposition: vec![(0, Action::Delete), (2, Action::ReturnAndDelete)],
                statement,
                step: 1000,
                rel: [5; 16],
            };
            let world = World::build(&plan);
            assert_eq!(world.rel.phase(), phase);
            check_table(&world).unwrap();
        }
    }
}

/// Spec §7.3.1: only an `offer` or a `terms_proposal` at `seq` 1 without `ack` opens a
/// relationship; anything else is `unknown-relationship`, and the time rules still apply.
#[test]
fn only_an_offer_or_a_proposal_opens_a_relationship() {
    let world = World::build(&Plan {
        phase: Phase::Proposed,
        opening: Opening::Offer,
        proposer: Role::Vendor,
        counter: false,
        renewal: None,
        notice_by: Role::Customer,
        notice_days: 0,
        disposition: vec![],
        statement: false,
        step: 1000,
        rel: [5; 16],
    });
    let fresh = RelationshipId::from_bytes([6; 16]);
    for row in Row::ALL {
        for sender in ROLES {
            let mut d = world.draft(row, sender, T0);
            d.header = if row.is_ack() {
                Header::ack(Some(fresh), world.kid(sender), world.kid(sender.other()), T0)
            } else {
                Header::opening(fresh, world.kid(sender), world.kid(sender.other()), T0)
            };
            let opens = matches!(row, Row::Offer | Row::TermsProposal);
            let r = Relationship::open(&d.clone().seal(), T0, LIVE);
            assert_eq!(r.as_ref().err().map(|e| e.code), (!opens).then_some(Code::UnknownRelationship), "{row:?}");
            if let Ok((rel, _)) = r {
                // An offer makes its sender the vendor; a proposal gives it the body's role.
                let opener = if row == Row::Offer { Role::Vendor } else { sender };
                assert_eq!(rel.opener(), opener);
                assert_eq!(rel.key(opener), world.kid(sender));
                assert_eq!(rel.key(opener.other()), world.kid(sender.other()));
                assert_eq!(rel.log().len(), 1);
            }
            if !opens {
                continue;
            }
            let refused = |header: Header, now: Timestamp| {
                let m = Draft { header, ..d.clone() }.seal();
                Relationship::open(&m, now, LIVE).err().map(|e| e.code)
            };
            let h = d.header.clone();
            assert_eq!(
                refused(Header { ack: Some(world.rel.last_id(Role::Vendor).unwrap()), ..h.clone() }, T0),
                Some(Code::UnknownRelationship)
            );
            assert_eq!(
                refused(Header { seq: 2, prev: Some(MessageId::from_bytes([1; 32])), ..h.clone() }, T0),
                Some(Code::UnknownRelationship)
            );
            if row == Row::Offer {
                assert_eq!(refused(Header::public(h.from, T0), T0), Some(Code::UnknownRelationship));
            }
            assert_eq!(refused(h.clone().with_expiry(T0), T0), Some(Code::Expired));
            assert_eq!(refused(h.clone(), T0 - LIVE.max_future_skew - 1), Some(Code::ClockSkew));
            assert_eq!(refused(h, T0 + LIVE.max_age.unwrap() + 1), Some(Code::ClockSkew));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// (d) In a relationship walked into any phase, every (kind, sender) pair the state table
    /// forbids is refused with the table's code and changes nothing; every pair it allows is
    /// accepted (or refused only by the notes, with their code).
    #[test]
    fn the_state_machine_refuses_exactly_what_the_table_forbids(plan in plan()) {
        let world = World::build(&plan);
        prop_assert_eq!(world.rel.phase(), plan.phase);
        check_table(&world)?;
    }
}

/// Where in the order of checks (spec §7.4, with the time checks of §7.5) a defect is found;
/// a message with several defects is refused with the code of the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Relationship,
    Party,
    Recipient,
    Time,
    Seq,
    Prev,
    ChainTime,
    Ack,
    Reference,
}

/// One way to break a message the relationship would accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defect {
    WrongRelationship,
    Stranger,
    WrongRecipient,
    Future,
    TooOld,
    Expired,
    SeqAhead,
    SeqBehind,
    WrongPrev,
    PrevIsOther,
    BeforeLast,
    AckUnknown,
    AckOwn,
    AckBackwards,
    AckMissing,
    ReceiptUnknown,
    ReceiptOwn,
}

impl Defect {
    const ALL: [Defect; 17] = [
        Defect::WrongRelationship,
        Defect::Stranger,
        Defect::WrongRecipient,
        Defect::Future,
        Defect::TooOld,
        Defect::Expired,
        Defect::BeforeLast,
        Defect::SeqAhead,
        Defect::SeqBehind,
        Defect::WrongPrev,
        Defect::PrevIsOther,
        Defect::AckUnknown,
        Defect::AckOwn,
        Defect::AckBackwards,
        Defect::AckMissing,
        Defect::ReceiptUnknown,
        Defect::ReceiptOwn,
    ];

    /// Where it is found and the code it gets.
    fn verdict(self) -> (Stage, Code) {
        match self {
            Defect::WrongRelationship => (Stage::Relationship, Code::WrongRelationship),
            Defect::Stranger => (Stage::Party, Code::NotAParty),
            Defect::WrongRecipient => (Stage::Recipient, Code::WrongRecipient),
            Defect::Future | Defect::TooOld => (Stage::Time, Code::ClockSkew),
            Defect::Expired => (Stage::Time, Code::Expired),
            Defect::SeqAhead => (Stage::Seq, Code::ChainGap),
            Defect::SeqBehind => (Stage::Seq, Code::Fork),
            Defect::WrongPrev | Defect::PrevIsOther => (Stage::Prev, Code::Fork),
            Defect::BeforeLast => (Stage::ChainTime, Code::ClockSkew),
            Defect::AckUnknown | Defect::AckOwn | Defect::AckBackwards | Defect::AckMissing => {
                (Stage::Ack, Code::BadAck)
            }
            Defect::ReceiptUnknown | Defect::ReceiptOwn => (Stage::Reference, Code::UnknownReference),
        }
    }

    /// Defects that change the same field exclude each other.
    fn field(self) -> &'static str {
        match self {
            Defect::WrongRelationship => "rel",
            Defect::Stranger => "from",
            Defect::WrongRecipient => "to",
            Defect::Future | Defect::TooOld | Defect::Expired | Defect::BeforeLast => "at",
            Defect::SeqAhead | Defect::SeqBehind => "seq",
            Defect::WrongPrev | Defect::PrevIsOther => "prev",
            Defect::AckUnknown | Defect::AckOwn | Defect::AckBackwards | Defect::AckMissing => "ack",
            Defect::ReceiptUnknown | Defect::ReceiptOwn => "body",
        }
    }

    /// The other party's accepted messages that `sender`'s next `ack` may not name because
    /// `ack` would go backwards.
    fn behind(world: &World, sender: Role) -> Vec<MessageId> {
        let log = world.rel.log();
        let seq_of = |id: MessageId| log.iter().find(|m| m.id() == id).map(|m| m.header().seq);
        let last_ack = world.rel.last_id(sender).and_then(|id| log.iter().find(|m| m.id() == id)?.header().ack);
        let Some(acked) = last_ack.and_then(seq_of) else { return vec![] };
        let other = world.kid(sender.other());
        log.iter().filter(|m| m.header().from == other && m.header().seq < acked).map(Message::id).collect()
    }

    fn applies(self, world: &World, row: Row, sender: Role, d: &Draft) -> bool {
        let chained = !row.is_ack();
        let own_last = world.rel.last_id(sender);
        match self {
            Defect::WrongRelationship | Defect::Stranger | Defect::WrongRecipient => true,
            Defect::Future | Defect::TooOld | Defect::Expired => true,
            Defect::SeqAhead | Defect::AckUnknown => chained,
            Defect::SeqBehind => chained && world.rel.next_seq(sender) >= 2,
            Defect::WrongPrev => chained && d.header.seq >= 2,
            Defect::PrevIsOther => chained && d.header.seq >= 2 && world.rel.last_id(sender.other()).is_some(),
            Defect::BeforeLast => chained && world.last_at(sender).is_some(),
            Defect::AckOwn => chained && own_last.is_some(),
            Defect::AckBackwards => chained && !Self::behind(world, sender).is_empty(),
            Defect::AckMissing => {
                // The opener may leave out `ack` until it has once acknowledged (spec §7.4).
                let acked =
                    world.rel.log().iter().any(|m| m.header().from == world.kid(sender) && m.header().ack.is_some());
                chained && d.header.ack.is_some() && (sender != world.rel.opener() || acked)
            }
            Defect::ReceiptUnknown => row == Row::Receipt,
            Defect::ReceiptOwn => row == Row::Receipt && own_last.is_some(),
        }
    }

    fn apply(self, world: &World, sender: Role, d: &mut Draft, n: u64, bytes: [u8; 32]) {
        let h = &mut d.header;
        let now = h.created_at;
        let some_id = MessageId::from_bytes(bytes);
        let own_last = world.rel.last_id(sender);
        match self {
            Defect::WrongRelationship => {
                let mut other = [0; 16];
                other.copy_from_slice(&bytes[..16]);
                if other == *world.rel.id().as_bytes() {
                    other[0] ^= 1;
                }
                h.relationship = Some(RelationshipId::from_bytes(other));
            }
            Defect::Stranger => {
                d.signer = stranger();
                h.from = kid(&d.signer);
            }
            Defect::WrongRecipient => {
                let mut to = bytes;
                while [world.kid(Role::Customer), world.kid(Role::Vendor), h.from].contains(&KeyId::from_bytes(to)) {
                    to[0] ^= 1;
                }
                h.to = Some(KeyId::from_bytes(to));
            }
            Defect::Future => h.created_at = now + LIVE.max_future_skew + 1 + n % DAY,
            Defect::TooOld => h.created_at = now - LIVE.max_age.unwrap() - 1 - n % DAY,
            Defect::Expired => {
                let exp = now - n % 1000;
                h.expires_at = Some(exp);
                h.created_at = h.created_at.min(exp);
            }
            Defect::SeqAhead => {
                h.seq += 1 + n % 3;
                h.prev = h.prev.or(Some(some_id));
            }
            Defect::SeqBehind => {
                h.seq = 1 + n % (world.rel.next_seq(sender) - 1);
                if h.seq == 1 {
                    h.prev = None;
                }
            }
            Defect::WrongPrev => {
                h.prev = Some(if Some(some_id) == own_last { MessageId::from_bytes([0; 32]) } else { some_id })
            }
            Defect::PrevIsOther => h.prev = world.rel.last_id(sender.other()),
            Defect::BeforeLast => h.created_at = world.last_at(sender).unwrap() - 1 - n % 1000,
            Defect::AckUnknown => h.ack = Some(some_id),
            Defect::AckOwn => h.ack = own_last,
            Defect::AckBackwards => {
                let behind = Self::behind(world, sender);
                h.ack = Some(behind[n as usize % behind.len()]);
            }
            Defect::AckMissing => h.ack = None,
            Defect::ReceiptUnknown => d.body = Body::Receipt(Receipt { message: some_id }),
            Defect::ReceiptOwn => d.body = Body::Receipt(Receipt { message: own_last.unwrap() }),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (e) A valid next message broken in one to three ways (wrong relationship, sender,
    /// recipient, time, seq, prev, ack or reference) is refused with the code of the first
    /// check it fails, and changes nothing: afterwards the valid message is accepted exactly as
    /// it would have been.
    #[test]
    fn a_refused_message_changes_nothing(
        plan in plan(),
        choice in any::<usize>(),
        defects in prop::collection::vec((any::<usize>(), any::<u64>(), any::<[u8; 32]>()), 1..=3),
    ) {
        let world = World::build(&plan);
        let at = world.now + world.step;
        let allowed: Vec<(Row, Role)> = Row::ALL
            .iter()
            .flat_map(|&row| ROLES.map(|sender| (row, sender)))
            .filter(|&(row, sender)| world.expected(row, sender).is_ok())
            .collect();
        // Mostly a chained message, which has more ways to be wrong than an acknowledgement.
        let chained: Vec<_> = allowed.iter().copied().filter(|(row, _)| !row.is_ack()).collect();
        let pool = if chained.is_empty() || choice % 5 == 0 { &allowed } else { &chained };
        let (row, sender) = pool[choice / 5 % pool.len()];
        let valid = world.draft(row, sender, at);
        let mut broken = valid.clone();
        let mut applied: Vec<Defect> = Vec::new();
        for (pick, n, bytes) in defects {
            let options: Vec<Defect> = Defect::ALL
                .into_iter()
                .filter(|d| applied.iter().all(|a| a.field() != d.field()) && d.applies(&world, row, sender, &broken))
                .collect();
            // A field first, then one of the defects of that field.
            let mut fields: Vec<&str> = options.iter().map(|d| d.field()).collect();
            fields.dedup();
            let field = fields[pick % fields.len()];
            let of_field: Vec<Defect> = options.into_iter().filter(|d| d.field() == field).collect();
            let defect = of_field[pick / fields.len() % of_field.len()];
            defect.apply(&world, sender, &mut broken, n, bytes);
            applied.push(defect);
        }
        let (_, want) = applied.iter().map(|d| d.verdict()).min().unwrap();
        let what = format!("{row:?} from {sender:?} while {} with {applied:?}", world.rel.phase());
        let (valid, broken) = (valid.seal(), broken.seal());

        let mut rel = world.rel.clone();
        let before = snapshot(&rel);
        let refused = rel.handle(&broken, at, LIVE);
        prop_assert_eq!(refused.map_err(|e| e.code), Err(want), "{}", what);
        prop_assert_eq!(snapshot(&rel), before, "{}: refused, yet the relationship changed", what);

        let mut pristine = world.rel.clone();
        let expected = pristine.handle(&valid, at, LIVE);
        prop_assert!(expected.is_ok(), "{}: the valid message was refused: {:?}", what, expected);
        prop_assert_eq!(rel.handle(&valid, at, LIVE), expected, "{}", what);
        prop_assert_eq!(snapshot(&rel), snapshot(&pristine), "{}", what);
    }
}
