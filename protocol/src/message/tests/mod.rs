//! Payload encoding (spec §3.1, §4, §5): every kind round-trips through deterministic CBOR, the
//! header rules of §4.2 and the body rules of §5 are enforced on both encode and decode, and
//! each malformed payload is refused with the error §4.2 names, in its order of checks.

use ciborium::Value;

use super::*;
use crate::cbor::{self, check_canonical, decode_canonical, decode_value, MAX_MESSAGE_SIZE};
use crate::id::Digest32;
use crate::vocab::{Category, Purpose};

const AT: Timestamp = 1_750_000_000_000;
const DAY_S: u64 = 86_400;

fn customer() -> KeyId {
    KeyId::from_bytes([0xc1; 32])
}

fn vendor() -> KeyId {
    KeyId::from_bytes([0x7e; 32])
}

fn rel() -> RelationshipId {
    RelationshipId::from_bytes([0x42; 16])
}

fn mid(n: u8) -> MessageId {
    MessageId::from_bytes([n; 32])
}

fn purpose(s: &str) -> Purpose {
    Purpose::new(s).unwrap()
}

fn category(s: &str) -> Category {
    Category::new(s).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Fixtures: one realistic payload per kind.

fn terms() -> Terms {
    Terms {
        duration: 365 * DAY_S,
        renewal: Renewal::Automatic,
        notice_period: 30 * DAY_S,
        price: Price {
            model: PriceModel::PerUsage,
            amount: Money::new("EUR", 12),
            metric: Some("kWh".into()),
            threshold: Some(100),
        },
        data: DataTerms {
            purposes: vec![purpose("dpv:ServiceProvision"), purpose("https://solar.example/purposes/forecast")],
            categories: vec![category("pd:Location"), category("urn:example:meter-reading")],
        },
        portability: Portability { format: "application/json".into(), deadline: 30 * DAY_S },
        deletion_deadline: 90 * DAY_S,
        exit_fee: Money::new("EUR", 0),
    }
}

fn upfront(minor_units: u64) -> Price {
    Price { model: PriceModel::Upfront, amount: Money::new("EUR", minor_units), metric: None, threshold: None }
}

fn retained(cat: &str) -> DispositionItem {
    DispositionItem {
        category: category(cat),
        outcome: Outcome::Retained,
        export: None,
        legal_basis: Some("§147 AO: invoices are kept ten years".into()),
        until: Some(AT + 10 * 365 * DAY_S * 1000),
    }
}

/// A realistic body of `kind`.
fn body(kind: Kind) -> Body {
    match kind {
        Kind::Offer => Body::Offer(Offer {
            title: "Solar panel lease".into(),
            description: "Twelve panels, installed and maintained — Wartung inklusive.".into(),
            price: upfront(4_900),
            terms: Some(terms()),
        }),
        Kind::Intent => Body::Intent(Intent {
            title: "A quiet electric bike".into(),
            description: "Commuting 12 km a day; must fit a narrow stairwell.".into(),
            tags: vec!["bikes".into(), "électrique".into()],
            budget: Some(Money::new("EUR", 250_000)),
        }),
        Kind::TermsProposal => Body::TermsProposal(TermsProposal { role: Role::Customer, terms: terms() }),
        Kind::TermsAcceptance => Body::TermsAcceptance(TermsAcceptance { proposal: mid(1) }),
        Kind::TermsRejection => Body::TermsRejection(TermsRejection {
            proposal: mid(1),
            reason: "The exit fee is too high.".into(),
            counter: Some(Terms { exit_fee: Money::new("EUR", 0), renewal: Renewal::OptIn, ..terms() }),
        }),
        Kind::ConsentGrant => Body::ConsentGrant(ConsentGrant {
            purposes: vec![purpose("dpv:ServiceProvision"), purpose("dpv:ServiceOptimisation")],
            categories: vec![category("pd:Location"), category("urn:example:meter-reading")],
            third_party_sharing: false,
            retention: 90 * DAY_S,
            expires: Some(AT + 365 * DAY_S * 1000),
        }),
        Kind::ConsentRevocation => {
            Body::ConsentRevocation(ConsentRevocation { grant: mid(2), reason: Some("Moving house.".into()) })
        }
        Kind::UsageReport => Body::UsageReport(Report {
            metric: "kWh".into(),
            unit: "kWh".into(),
            start: AT - 30 * DAY_S * 1000,
            end: AT,
            value: 412,
        }),
        Kind::ImpactReport => Body::ImpactReport(Report {
            metric: "co2_avoided".into(),
            unit: "kg".into(),
            start: AT - 365 * DAY_S * 1000,
            end: AT,
            value: 1_870,
        }),
        Kind::Countersignature => Body::Countersignature(Countersignature { report: mid(3) }),
        Kind::DataShare => Body::DataShare(DataShare {
            content: ShareContent::Insight,
            purpose: Some(purpose("dpv:ServiceOptimisation")),
            categories: vec![category("pd:Location")],
            commitment: Digest32::commit(&[9; 32], b"{\"tilt\": 32}"),
            media_type: "application/json".into(),
            size: 12,
        }),
        Kind::Introduction => Body::Introduction(Introduction {
            party: ThirdParty {
                name: "Roof & Gutter Co".into(),
                key: Some(KeyId::from_bytes([0x33; 32])),
                contact: Some("https://roof.example/rapport".into()),
            },
            offering: "Roof inspection before installation".into(),
            commission: Commission { basis: CommissionBasis::Percent, amount: None, basis_points: Some(250) },
        }),
        Kind::SeparationNotice => Body::SeparationNotice(SeparationNotice {
            effective: AT + 30 * DAY_S * 1000,
            reason: Some("Selling the house.".into()),
            disposition: vec![
                Disposition { category: category("pd:Location"), action: Action::Delete },
                Disposition { category: category("urn:example:meter-reading"), action: Action::ReturnAndDelete },
                Disposition { category: category("pd:Financial"), action: Action::Return },
            ],
        }),
        Kind::DispositionStatement => Body::DispositionStatement(DispositionStatement {
            notice: mid(4),
            items: vec![
                DispositionItem {
                    category: category("pd:Location"),
                    outcome: Outcome::Deleted,
                    export: None,
                    legal_basis: None,
                    until: None,
                },
                DispositionItem {
                    category: category("urn:example:meter-reading"),
                    outcome: Outcome::ReturnedAndDeleted,
                    export: Some(Digest32::of(b"export bundle")),
                    legal_basis: None,
                    until: None,
                },
                retained("pd:Financial"),
            ],
        }),
        Kind::ClosureReceipt => Body::ClosureReceipt(ClosureReceipt { statement: mid(5) }),
        Kind::Receipt => Body::Receipt(Receipt { message: mid(6) }),
        Kind::ProblemReport => Body::ProblemReport(ProblemReport {
            code: "stale-proposal".into(),
            message: Some(mid(7)),
            text: "proposal was superseded".into(),
        }),
    }
}

/// A chained header: the customer's message `seq` in [`rel`], acknowledging the vendor.
fn chained(seq: u64) -> Header {
    Header {
        relationship: Some(rel()),
        from: customer(),
        to: Some(vendor()),
        seq,
        prev: (seq > 1).then(|| mid((seq as u8).wrapping_add(0x50))),
        ack: Some(mid(0x99)),
        created_at: AT,
        expires_at: None,
        reply_to: None,
    }
}

/// The header a message of `kind` usually has.
fn header(kind: Kind) -> Header {
    match kind.class() {
        Class::Public => Header::public(customer(), AT),
        Class::Opening => Header::opening(rel(), vendor(), customer(), AT).with_expiry(AT + 7 * DAY_S * 1000),
        Class::Chained => chained(3),
        Class::Ack => Header::ack(Some(rel()), customer(), vendor(), AT),
    }
}

fn sample(kind: Kind) -> Payload {
    Payload { header: header(kind), body: body(kind) }
}

/// More payloads: the other header shapes and the optional fields and alternatives of the
/// bodies, so that every branch of the schema is encoded at least once.
fn variants() -> Vec<Payload> {
    let mut out: Vec<Payload> = Kind::ALL.iter().map(|&k| sample(k)).collect();
    let with = |header: Header, body: Body| Payload { header, body };
    let public_offer =
        Body::Offer(Offer { title: "Bike service".into(), description: String::new(), price: upfront(0), terms: None });
    out.push(with(Header::public(vendor(), AT).with_reply_to(mid(8)).with_expiry(AT), public_offer.clone()));
    out.push(with(chained(2), public_offer));
    out.push(with(
        Header::public(customer(), 0),
        Body::Intent(Intent { title: "x".into(), description: String::new(), tags: vec![], budget: None }),
    ));
    for price in [
        upfront(u64::MAX),
        Price { model: PriceModel::PerUsage, amount: Money::new("USD", 3), metric: Some("GB".into()), threshold: None },
        Price {
            model: PriceModel::PerImpact,
            amount: Money::new("CHF", 50_000),
            metric: Some("kg CO₂".into()),
            threshold: Some(1000),
        },
    ] {
        let mut t = terms();
        t.price = price;
        t.data = DataTerms { purposes: vec![], categories: vec![] };
        t.renewal = Renewal::None;
        out.push(with(chained(1), Body::TermsProposal(TermsProposal { role: Role::Vendor, terms: t })));
    }
    out.push(with(
        chained(7),
        Body::TermsRejection(TermsRejection { proposal: mid(1), reason: String::new(), counter: None }),
    ));
    out.push(with(chained(7), Body::ConsentRevocation(ConsentRevocation { grant: mid(2), reason: None })));
    for (content, purpose) in [(ShareContent::Data, Some(purpose("dpv:CustomerCare"))), (ShareContent::Export, None)] {
        out.push(with(
            chained(u64::MAX),
            Body::DataShare(DataShare {
                content,
                purpose,
                categories: vec![category("pd:Name"), category("pd:EmailAddress")],
                commitment: Digest32::of(b""),
                media_type: "text/csv".into(),
                size: 0,
            }),
        ));
    }
    for commission in [
        Commission { basis: CommissionBasis::None, amount: None, basis_points: None },
        Commission { basis: CommissionBasis::Flat, amount: Some(Money::new("EUR", 2_000)), basis_points: None },
        Commission { basis: CommissionBasis::Percent, amount: None, basis_points: Some(10_000) },
    ] {
        out.push(with(
            chained(9),
            Body::Introduction(Introduction {
                party: ThirdParty { name: "Ana".into(), key: None, contact: None },
                offering: "Bookkeeping".into(),
                commission,
            }),
        ));
    }
    out.push(with(
        chained(9),
        Body::SeparationNotice(SeparationNotice { effective: AT, reason: None, disposition: vec![] }),
    ));
    out.push(with(chained(9), Body::DispositionStatement(DispositionStatement { notice: mid(4), items: vec![] })));
    out.push(with(
        chained(9),
        Body::DispositionStatement(DispositionStatement {
            notice: mid(4),
            items: vec![DispositionItem {
                category: category("pd:Health"),
                outcome: Outcome::Returned,
                export: Some(Digest32::of(b"bundle")),
                legal_basis: None,
                until: None,
            }],
        }),
    ));
    // Acknowledgements: with `ack` (allowed and ignored), and a problem report about unreadable
    // bytes, which has `to` but no `rel`.
    let mut h = Header::ack(Some(rel()), vendor(), customer(), AT);
    h.ack = Some(mid(0x98));
    out.push(with(h, Body::Receipt(Receipt { message: mid(6) })));
    out.push(with(
        Header::ack(None, vendor(), customer(), AT),
        Body::ProblemReport(ProblemReport { code: "malformed".into(), message: None, text: String::new() }),
    ));
    out
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Encodes without the header and body checks, so that decoding can be tested on payloads
/// that [`Payload::encode`] would refuse.
fn encode_unchecked(p: &Payload) -> Vec<u8> {
    let h = &p.header;
    let wire = Wire {
        v: VERSION,
        kind: p.kind().as_str().to_owned(),
        rel: h.relationship,
        from: h.from,
        to: h.to,
        seq: h.seq,
        prev: h.prev,
        ack: h.ack,
        at: h.created_at,
        exp: h.expires_at,
        re: h.reply_to,
        body: p.body.to_value().unwrap(),
    };
    cbor::to_canonical_vec(&wire).unwrap()
}

fn to_value(p: &Payload) -> Value {
    decode_value(&p.encode().unwrap(), MAX_MESSAGE_SIZE).unwrap()
}

/// Deterministic encoding of a value after sorting its maps.
fn canonical(mut v: Value) -> Vec<u8> {
    cbor::canonicalize(&mut v);
    cbor::encode_value(&v)
}

fn entries(v: &mut Value) -> &mut Vec<(Value, Value)> {
    match v {
        Value::Map(e) => e,
        other => panic!("not a map: {other:?}"),
    }
}

/// The value at a path of text keys.
fn at<'a>(v: &'a mut Value, path: &[&str]) -> &'a mut Value {
    path.iter().fold(v, |v, key| {
        let e = entries(v);
        let i = e.iter().position(|(k, _)| k.as_text() == Some(key)).unwrap_or_else(|| panic!("no key {key}"));
        &mut e[i].1
    })
}

/// Sets `path` (whose last element is the key) in `v`, adding the key if absent.
fn set(v: &mut Value, path: &[&str], value: Value) {
    let (key, parent) = path.split_last().unwrap();
    let e = entries(at(v, parent));
    match e.iter_mut().find(|(k, _)| k.as_text() == Some(key)) {
        Some(entry) => entry.1 = value,
        None => e.push((Value::Text((*key).into()), value)),
    }
}

fn remove(v: &mut Value, path: &[&str]) {
    let (key, parent) = path.split_last().unwrap();
    let e = entries(at(v, parent));
    let before = e.len();
    e.retain(|(k, _)| k.as_text() != Some(key));
    assert_eq!(e.len() + 1, before, "no key {key} to remove");
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn int(i: i128) -> Value {
    Value::Integer(ciborium::value::Integer::try_from(i).unwrap())
}

fn is_schema(r: &Result<Payload, Error>) -> bool {
    matches!(r, Err(Error::Cbor(cbor::Error::Schema(_))))
}

/// `p` is refused by `encode` and, encoded anyway, by `decode`; both as a schema violation.
#[track_caller]
fn assert_refused(p: &Payload, why: &str) {
    let encoded = p.encode();
    assert!(matches!(encoded, Err(Error::Cbor(cbor::Error::Schema(_)))), "{why}: encode gave {encoded:?}");
    let decoded = Payload::decode(&encode_unchecked(p));
    assert!(is_schema(&decoded), "{why}: decode gave {decoded:?}");
}

#[track_caller]
fn assert_accepted(p: &Payload, why: &str) {
    let bytes = p.encode().unwrap_or_else(|e| panic!("{why}: encode refused: {e}"));
    assert_eq!(Payload::decode(&bytes).as_ref(), Ok(p), "{why}");
}

/// Every map key in `v` is text, and every map's keys are in deterministic order (§3.1):
/// shorter first, then bytewise.
fn assert_sorted(v: &Value) {
    match v {
        Value::Map(e) => {
            let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_text().expect("text key")).collect();
            for w in keys.windows(2) {
                assert!((w[0].len(), w[0].as_bytes()) < (w[1].len(), w[1].as_bytes()), "{keys:?} not sorted");
            }
            e.iter().for_each(|(_, v)| assert_sorted(v));
        }
        Value::Array(items) => items.iter().for_each(assert_sorted),
        Value::Tag(..) | Value::Float(_) | Value::Null => panic!("payloads use no tags, floats or null: {v:?}"),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Kinds and round trips.

#[test]
fn seventeen_kinds_with_the_classes_of_the_spec() {
    // Spec §4.2 and the summary table of §5, written out.
    let spec = [
        ("offer", Class::Opening),
        ("intent", Class::Public),
        ("terms_proposal", Class::Opening),
        ("terms_acceptance", Class::Chained),
        ("terms_rejection", Class::Chained),
        ("consent_grant", Class::Chained),
        ("consent_revocation", Class::Chained),
        ("usage_report", Class::Chained),
        ("impact_report", Class::Chained),
        ("countersignature", Class::Chained),
        ("data_share", Class::Chained),
        ("introduction", Class::Chained),
        ("separation_notice", Class::Chained),
        ("disposition_statement", Class::Chained),
        ("closure_receipt", Class::Chained),
        ("receipt", Class::Ack),
        ("problem_report", Class::Ack),
    ];
    assert_eq!(Kind::ALL.len(), 17);
    for (&kind, (name, class)) in Kind::ALL.iter().zip(spec) {
        assert_eq!(kind.as_str(), name);
        assert_eq!(kind.to_string(), name);
        assert_eq!(name.parse::<Kind>(), Ok(kind));
        assert_eq!(kind.class(), class, "{name}");
        assert_eq!(body(kind).kind(), kind);
    }
    assert_eq!("Offer".parse::<Kind>(), Err(Error::UnknownKind("Offer".into())), "names are case-sensitive");
}

#[test]
fn every_kind_round_trips_in_deterministic_cbor() {
    for p in variants() {
        let kind = p.kind();
        let bytes = p.encode().unwrap_or_else(|e| panic!("{kind}: {e}"));
        let back = Payload::decode(&bytes).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(back, p, "{kind}");
        assert_eq!(back.encode().unwrap(), bytes, "{kind}: re-encoding changed the bytes");
        assert_eq!(p.encode().unwrap(), bytes, "{kind}: encoding is not a function of the value");

        // The bytes are exactly the deterministic encoding of what they decode to.
        let value = decode_value(&bytes, MAX_MESSAGE_SIZE).unwrap();
        assert_eq!(check_canonical(&bytes, &value), Ok(()), "{kind}");
        let (_, same) = decode_canonical::<Value>(&bytes, MAX_MESSAGE_SIZE).unwrap();
        assert_eq!(same, value);
        assert_eq!(canonical(value.clone()), bytes, "{kind}: sorting the maps again changes nothing");
        assert_sorted(&value);

        let mut value = value;
        assert_eq!(at(&mut value, &["v"]), &int(1));
        assert_eq!(at(&mut value, &["kind"]), &text(kind.as_str()));
        assert_eq!(p.is_chained(), p.header.seq > 0);
    }
}

#[test]
fn header_keys_are_in_the_order_of_the_spec() {
    let mut h = chained(2).with_expiry(AT + 1).with_reply_to(mid(9));
    h.ack = Some(mid(10));
    let value = to_value(&Payload { header: h, body: body(Kind::Countersignature) });
    let keys: Vec<_> = match &value {
        Value::Map(e) => e.iter().map(|(k, _)| k.as_text().unwrap().to_owned()).collect(),
        _ => unreachable!(),
    };
    // Spec §3.1: `v` < `at` < `re` < `to` < `ack` < `exp` < `rel` < `seq` < `body` < `from` <
    // `kind` < `prev`.
    assert_eq!(keys, ["v", "at", "re", "to", "ack", "exp", "rel", "seq", "body", "from", "kind", "prev"]);
}

#[test]
fn an_intent_encodes_byte_for_byte() {
    let p = Payload {
        header: Header::public(KeyId::from_bytes([0xab; 32]), 1_700_000_000_000),
        body: Body::Intent(Intent { title: "x".into(), description: String::new(), tags: vec![], budget: None }),
    };
    let expected = [
        "a6",                          // map of 6
        "6176 01",                     // "v": 1
        "626174 1b0000018bcfe56800",   // "at": 1700000000000
        "63736571 00",                 // "seq": 0
        "64626f6479 a3",               // "body": map of 3
        "6474616773 80",               //   "tags": []
        "657469746c65 6178",           //   "title": "x"
        "6b6465736372697074696f6e 60", //   "description": ""
        "6466726f6d 5820",             // "from": bstr of 32
        &"ab".repeat(32),
        "646b696e64 66696e74656e74", // "kind": "intent"
    ]
    .concat()
    .replace(' ', "");
    assert_eq!(hex::encode(p.encode().unwrap()), expected);
    assert_eq!(Payload::decode(&hex::decode(&expected).unwrap()), Ok(p));
}

// ---------------------------------------------------------------------------------------------
// Header rules (spec §4.2).

#[test]
fn header_rules_by_class() {
    let intent = body(Kind::Intent);
    let offer = body(Kind::Offer);
    let proposal = body(Kind::TermsProposal);
    let grant = body(Kind::ConsentGrant);
    let receipt = body(Kind::Receipt);
    let report = body(Kind::ProblemReport);
    let p = |header: Header, body: &Body| Payload { header, body: body.clone() };
    let public = || Header::public(customer(), AT);
    let ack = || Header::ack(Some(rel()), customer(), vendor(), AT);

    // An intent is always public.
    assert_refused(&p(chained(1), &intent), "addressed intent");
    assert_refused(&p(Header { to: Some(vendor()), ..public() }, &intent), "intent with to");
    assert_refused(&p(Header { relationship: Some(rel()), ..public() }, &intent), "intent with rel");
    // A terms_proposal is never public; a chained kind never either.
    assert_refused(&p(public(), &proposal), "public terms_proposal");
    assert_refused(&p(public(), &grant), "public consent_grant");
    assert_accepted(&p(public(), &offer), "public offer");
    assert_accepted(&p(chained(1), &offer), "opening offer");
    // rel and to come together.
    assert_refused(&p(Header { to: None, ..chained(2) }, &grant), "rel without to");
    assert_refused(&p(Header { relationship: None, ..chained(2) }, &grant), "to without rel");
    assert_refused(&p(Header { relationship: None, ..chained(2) }, &offer), "offer with to, no rel");
    assert_refused(&p(Header { to: None, ..chained(2) }, &offer), "offer with rel, no to");
    // Chain position: seq ≥ 1, prev exactly from seq 2.
    assert_refused(&p(Header { seq: 0, prev: None, ..chained(1) }, &grant), "chained seq 0");
    assert_refused(&p(Header { prev: Some(mid(1)), ..chained(1) }, &grant), "seq 1 with prev");
    assert_refused(&p(Header { prev: None, ..chained(2) }, &grant), "seq 2 without prev");
    assert_refused(&p(Header { prev: Some(mid(1)), ..chained(1) }, &proposal), "opening proposal with prev");
    // Public messages and acknowledgements: seq 0, no prev; public ones no ack.
    assert_refused(&p(Header { seq: 1, ..public() }, &intent), "public seq 1");
    assert_refused(&p(Header { seq: 1, ..public() }, &offer), "public offer with seq 1");
    assert_refused(&p(Header { prev: Some(mid(1)), ..public() }, &offer), "public prev");
    assert_refused(&p(Header { ack: Some(mid(1)), ..public() }, &intent), "public ack");
    assert_refused(&p(Header { ack: Some(mid(1)), ..public() }, &offer), "public offer with ack");
    assert_refused(&p(Header { seq: 1, ..ack() }, &receipt), "receipt with seq");
    assert_refused(&p(Header { prev: Some(mid(1)), ..ack() }, &receipt), "receipt with prev");
    assert_refused(&p(Header { seq: 2, prev: Some(mid(1)), ..ack() }, &report), "chained problem report");
    assert_accepted(&p(Header { ack: Some(mid(1)), ..ack() }, &receipt), "receipt with ack");
    assert_accepted(&p(Header { ack: Some(mid(1)), ..ack() }, &report), "problem report with ack");
    // Acknowledgements are addressed; a receipt also needs rel, a problem report need not.
    assert_refused(&p(Header { to: None, ..ack() }, &receipt), "receipt without to");
    assert_refused(&p(Header { relationship: None, ..ack() }, &receipt), "receipt without rel");
    assert_refused(&p(Header { to: None, ..ack() }, &report), "problem report with rel, no to");
    assert_refused(&p(public(), &report), "public problem report");
    assert_accepted(&p(Header { relationship: None, ..ack() }, &report), "problem report with to only");
    // For every kind: to ≠ from, exp ≥ at.
    for kind in Kind::ALL.iter().copied().filter(|k| k.class() != Class::Public) {
        let h = header(kind);
        assert_refused(&p(Header { to: Some(h.from), ..h.clone() }, &body(kind)), &format!("{kind} to itself"));
    }
    for kind in Kind::ALL.iter().copied() {
        let h = header(kind);
        assert_refused(&p(h.clone().with_expiry(AT - 1), &body(kind)), &format!("{kind} expiring before at"));
        assert_accepted(&p(h.with_expiry(AT), &body(kind)), &format!("{kind} expiring at at"));
    }
}

mod decoding;
mod rules;

#[test]
fn every_body_round_trips_through_json_with_hex_ids() {
    for p in variants() {
        let kind = p.body.kind();
        let json = serde_json::to_value(&p.body).unwrap();
        let back = Body::deserialize_kind(kind, &json).unwrap();
        assert_eq!(back, p.body, "{kind}");
        // Ids and digests are hex text, never arrays of numbers.
        let text = json.to_string();
        assert!(!text.contains("[0,") && !text.contains("[1,"), "{kind}: {text}");
    }
    // A body of the wrong shape for its kind is refused.
    assert!(Body::deserialize_kind(Kind::Receipt, &serde_json::json!({"title": "x"})).is_err());
}

#[test]
fn a_problem_reports_text_is_cut_at_a_character_boundary() {
    // 700 two-byte characters: byte 1000 falls inside one, where `String::truncate` panics.
    let text = format!("x{}", "é".repeat(700));
    let report = ProblemReport::new(crate::Code::UnknownKind, None, &text);
    assert!(report.text.len() <= ProblemReport::MAX_TEXT, "{} bytes", report.text.len());
    assert!(report.text.ends_with('…'), "the cut is marked");
    assert!(text.starts_with(report.text.trim_end_matches('…')), "what is kept is the text's start");
    let short = ProblemReport::new(crate::Code::UnknownKind, None, "short");
    assert_eq!(short.text, "short", "a short text is kept whole");
    // Every cut of a text of mixed widths is UTF-8 and within the bound.
    let mixed = "aé€😀".repeat(100);
    for max in 0..40 {
        let cut = bounded(&mixed, max);
        assert!(cut.len() <= max, "max {max}: {} bytes", cut.len());
        assert!(mixed.starts_with(cut.trim_end_matches('…')), "max {max}: {cut}");
    }
}

#[test]
fn an_unknown_kind_keeps_a_bounded_copy_of_the_peers_string() {
    let long = format!("x{}", "é".repeat(700));
    let Err(Error::UnknownKind(kept)) = long.parse::<Kind>() else { panic!("{long} is not a kind") };
    assert!(kept.len() <= MAX_QUOTED_KIND, "{} bytes kept", kept.len());
    assert!(kept.starts_with('x'), "{kept}");
}
