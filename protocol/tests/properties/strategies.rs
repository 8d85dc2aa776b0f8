//! Strategies for arbitrary valid payloads.

use super::*;

// =============================================================================================
// Strategies for arbitrary valid payloads.

/// Text of at most [`MAX_TEXT`] UTF-8 bytes: mostly short strings of any printable Unicode,
/// sometimes one character repeated up to the byte limit exactly.
pub(crate) fn any_text(nonempty: bool) -> impl Strategy<Value = String> {
    let long = (any::<char>(), prop_oneof![0..=MAX_TEXT, Just(MAX_TEXT)])
        .prop_map(|(c, bytes)| c.to_string().repeat(bytes / c.len_utf8()));
    prop_oneof![6 => "\\PC{0,16}", 1 => long]
        .prop_map(move |s| if nonempty && s.is_empty() { "ü".to_owned() } else { s })
}

/// Short text, for list items (so that 64 of them stay well within the message size).
pub(crate) fn short_text() -> impl Strategy<Value = String> {
    "\\PC{1,8}"
}

pub(crate) fn term(builtin: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(builtin).prop_map(str::to_owned),
        1 => "https://[!-~]{1,24}",
        1 => "urn:[!-~]{1,24}",
    ]
}

/// A term, or now and then an extension URI of the longest allowed length (256 bytes).
pub(crate) fn term_or_long(builtin: &'static [&'static str], prefix: &'static str) -> impl Strategy<Value = String> {
    let long = "[!-~]".prop_map(move |c| format!("{prefix}{}", c.repeat(vocab::MAX_TERM_LEN - prefix.len())));
    prop_oneof![9 => term(builtin), 1 => long]
}

pub(crate) fn purpose() -> impl Strategy<Value = Purpose> {
    term_or_long(PURPOSES, "urn:").prop_map(|s| Purpose::new(s).unwrap())
}

pub(crate) fn category() -> impl Strategy<Value = Category> {
    term_or_long(CATEGORIES, "https://").prop_map(|s| Category::new(s).unwrap())
}

/// `MAX_ITEMS` distinct terms: the built-in ones, then extension URIs.
pub(crate) fn max_terms<T>(builtin: &[&str], make: impl Fn(String) -> T) -> Vec<T> {
    (0..MAX_ITEMS).map(|i| make(builtin.get(i).map_or_else(|| format!("urn:x:{i}"), |s| (*s).to_owned()))).collect()
}

/// A list of unique terms in random order: usually short, sometimes exactly [`MAX_ITEMS`] long.
pub(crate) fn unique<T: Ord + Clone + std::fmt::Debug, S: Strategy<Value = T>>(
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

pub(crate) fn purposes(min: usize) -> impl Strategy<Value = Vec<Purpose>> {
    unique(purpose, min, max_terms(PURPOSES, |s| Purpose::new(s).unwrap()))
}

pub(crate) fn categories(min: usize) -> impl Strategy<Value = Vec<Category>> {
    unique(category, min, max_terms(CATEGORIES, |s| Category::new(s).unwrap()))
}

pub(crate) fn money() -> impl Strategy<Value = Money> {
    ("[A-Z]{3}", any::<u64>()).prop_map(|(currency, minor_units)| Money { currency, minor_units })
}

pub(crate) fn price() -> impl Strategy<Value = Price> {
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

pub(crate) fn terms() -> impl Strategy<Value = Terms> {
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

pub(crate) fn id() -> impl Strategy<Value = MessageId> {
    any::<[u8; 32]>().prop_map(MessageId::from_bytes)
}

pub(crate) fn disposition_item() -> impl Strategy<Value = DispositionItem> {
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

pub(crate) fn with_unique_categories<T>(items: Vec<T>, cat: impl Fn(&T) -> &Category) -> Vec<T> {
    let mut seen = BTreeSet::new();
    items.into_iter().filter(|i| seen.insert(cat(i).clone())).collect()
}

pub(crate) fn report() -> impl Strategy<Value = Report> {
    (any_text(true), short_text(), any::<u64>(), 1..=u64::MAX, any::<u64>()).prop_map(
        |(metric, unit, s, len, value)| {
            let start = s.min(u64::MAX - len);
            Report { metric, unit, start, end: start + len, value }
        },
    )
}

/// An arbitrary valid body; every kind is equally likely.
pub(crate) fn body() -> impl Strategy<Value = Body> {
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
pub(crate) struct HeaderParts {
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

pub(crate) fn header_parts() -> impl Strategy<Value = HeaderParts> {
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
pub(crate) fn header(kind: Kind, from: KeyId, p: &HeaderParts) -> Header {
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
pub(crate) fn signed_payload() -> impl Strategy<Value = (SigningKey, Payload)> {
    (any::<[u8; 32]>(), body(), header_parts()).prop_map(|(seed, body, parts)| {
        let key = SigningKey::from_bytes(&seed);
        let header = header(body.kind(), kid(&key), &parts);
        (key, Payload { header, body })
    })
}
