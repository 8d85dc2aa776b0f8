//! The CDDL schema (`spec/rapport.cddl`) against the code and the test vectors.
//!
//! - the schema parses;
//! - a payload the code builds for every kind, in every shape the schema distinguishes
//!   (public / first / later headers, each price model, commission basis, share content and
//!   disposition outcome), validates, and so does its envelope;
//! - payloads the code refuses with `schema-violation` for a reason CDDL can express do not
//!   validate;
//! - every vector under `spec/vectors/` with a payload: valid ones validate, those whose
//!   expected problem is `schema-violation` do not. The test fails if no vector was checked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ciborium::Value;
use ed25519_dalek::SigningKey;
use rapport_protocol::problem::HasCode;
use rapport_protocol::*;

const T0: Timestamp = 1_750_000_000_000;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The schema exactly as written.
fn schema_file() -> String {
    let path = workspace().join("spec/rapport.cddl");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The schema as the `cddl` crate must see it. RFC 8610 §3.8.3 defines `.regexp` by XSD
/// regular expressions, which match the whole string; the crate matches anywhere in it (Rust
/// `Regex::is_match`), so each pattern is anchored here. Nothing else changes.
fn schema() -> String {
    let text = schema_file();
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text.as_str();
    while let Some(i) = rest.find(".regexp \"") {
        let start = i + ".regexp \"".len();
        let len = rest[start..].find('"').expect("a closing quote");
        out.push_str(&rest[..start]);
        out.push_str(&format!("^(?:{})$", &rest[start..start + len]));
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    out
}

/// The schema with the envelope rule first, since the validator checks the first rule.
fn envelope_schema() -> String {
    format!("envelope = COSE_Sign1_Tagged\n{}", schema())
}

fn validate(cddl: &str, cbor: &[u8]) -> Result<(), String> {
    cddl::validate_cbor_from_slice(cddl, cbor, None).map_err(|e| e.to_string().trim().replace('\n', "; "))
}

/// Whether a payload matches the schema: it must validate against `payload`, the first rule,
/// and against the rule of its own kind (`<kind>-msg`). In CDDL the two are equivalent, since
/// the kinds are told apart by their `kind` literal. The `cddl` crate (0.9) is not exact on a
/// large choice of maps: keys matched by an alternative that failed are not reported as unknown
/// by a later alternative, and errors nested inside a failed alternative can be lost. The
/// kind's own rule leaves it only the small choices inside one message.
fn conforms(cddl: &str, payload: &[u8]) -> Result<(), String> {
    validate(cddl, payload)?;
    let kind = ciborium::from_reader::<Value, _>(payload).ok().and_then(|v| match v {
        Value::Map(entries) => {
            entries.into_iter().find(|(k, _)| k.as_text() == Some("kind")).and_then(|(_, v)| v.into_text().ok())
        }
        _ => None,
    });
    match kind {
        Some(k) if Kind::ALL.iter().any(|known| known.as_str() == k) => {
            validate(&format!("by-kind = {}-msg\n{cddl}", k.replace('_', "-")), payload)
                .map_err(|e| format!("as {k}: {e}"))
        }
        _ => Ok(()),
    }
}

#[test]
fn schema_parses() {
    cddl::cddl_from_str(&schema_file(), true).expect("spec/rapport.cddl parses");
    cddl::cddl_from_str(&schema(), true).expect("the anchored schema parses");
    assert!(schema().contains(".regexp \"^(?:[A-Z]{3})$\""), "patterns are anchored");
    cddl::cddl_from_str(&envelope_schema(), true).expect("the envelope rule parses");
    let text = schema_file();
    let first = text.lines().find(|l| !l.trim().is_empty() && !l.trim_start().starts_with(';')).unwrap();
    assert!(first.starts_with("payload ="), "the first rule must be `payload`, found {first:?}");
}

// ---------------------------------------------------------------------------------------------
// One payload per kind and shape, built with the protocol crate.

struct Keys {
    customer: SigningKey,
    vendor: SigningKey,
}

impl Keys {
    fn new() -> Keys {
        Keys { customer: SigningKey::from_bytes(&[1; 32]), vendor: SigningKey::from_bytes(&[2; 32]) }
    }
    fn kid(key: &SigningKey) -> KeyId {
        KeyId::from_bytes(key.verifying_key().to_bytes())
    }
    fn c(&self) -> KeyId {
        Self::kid(&self.customer)
    }
    fn v(&self) -> KeyId {
        Self::kid(&self.vendor)
    }
}

const REL: RelationshipId = RelationshipId::from_bytes([5; 16]);

fn id(n: u8) -> MessageId {
    MessageId::from_bytes([n; 32])
}

fn purpose(s: &str) -> Purpose {
    Purpose::new(s).unwrap()
}

fn category(s: &str) -> Category {
    Category::new(s).unwrap()
}

fn eur(minor: u64) -> Money {
    Money::new("EUR", minor)
}

fn price(model: PriceModel) -> Price {
    match model {
        PriceModel::Upfront => Price { model, amount: eur(12_000), metric: None, threshold: None },
        PriceModel::PerUsage => Price { model, amount: eur(25), metric: Some("kWh".into()), threshold: Some(100) },
        PriceModel::PerImpact => {
            Price { model, amount: eur(5_000), metric: Some("kg CO2 avoided".into()), threshold: Some(1_000) }
        }
    }
}

fn terms(model: PriceModel) -> Terms {
    Terms {
        duration: 365 * 86_400,
        renewal: Renewal::OptIn,
        notice_period: 30 * 86_400,
        price: price(model),
        data: DataTerms {
            purposes: vec![purpose("dpv:ServiceProvision"), purpose("https://vendor.example/purposes/loyalty")],
            categories: vec![category("pd:Location"), category("urn:example:shoe-size")],
        },
        portability: Portability { format: "application/json".into(), deadline: 30 * 86_400 },
        deletion_deadline: 30 * 86_400,
        exit_fee: eur(0),
    }
}

/// A header for the sender's `seq`-th chained message.
fn chained(from: KeyId, to: KeyId, seq: u64) -> Header {
    let h = Header::opening(REL, from, to, T0);
    if seq == 1 {
        h
    } else {
        Header { seq, prev: Some(id(seq as u8)), ack: Some(id(100)), ..h }.with_expiry(T0 + 60_000).with_reply_to(id(7))
    }
}

fn item(cat: &str, outcome: Outcome) -> DispositionItem {
    let c = category(cat);
    match outcome {
        Outcome::Returned | Outcome::ReturnedAndDeleted => DispositionItem {
            category: c,
            outcome,
            export: Some(Digest32::of(b"export")),
            legal_basis: None,
            until: None,
        },
        Outcome::Deleted => DispositionItem { category: c, outcome, export: None, legal_basis: None, until: None },
        Outcome::Retained => DispositionItem {
            category: c,
            outcome,
            export: None,
            legal_basis: Some("Tax law: invoices are kept for ten years".into()),
            until: Some(T0 + 10 * 365 * 86_400_000),
        },
    }
}

/// (label, payload, signer) for every kind and every shape the schema tells apart.
fn samples(k: &Keys) -> Vec<(String, Payload, &SigningKey)> {
    let (c, v) = (k.c(), k.v());
    let cust = |seq, body| (Payload { header: chained(c, v, seq), body }, &k.customer);
    let vend = |seq, body| (Payload { header: chained(v, c, seq), body }, &k.vendor);
    let mut out: Vec<(String, (Payload, &SigningKey))> = Vec::new();
    let mut add = |label: &str, p| out.push((label.to_owned(), p));

    let offer = |model, terms: Option<Terms>| {
        Body::Offer(Offer {
            title: "Solar panel lease".into(),
            description: "Ten panels".into(),
            price: price(model),
            terms,
        })
    };
    add("offer public", (Payload { header: Header::public(v, T0), body: offer(PriceModel::Upfront, None) }, &k.vendor));
    add("offer opening", vend(1, offer(PriceModel::PerUsage, Some(terms(PriceModel::PerImpact)))));
    add("offer later", vend(2, offer(PriceModel::PerImpact, None)));
    let intent = |budget| {
        Body::Intent(Intent {
            title: "A quiet electric bike".into(),
            description: String::new(),
            tags: vec!["bikes".into(), "e-mobility".into()],
            budget,
        })
    };
    add("intent", (Payload { header: Header::public(c, T0), body: intent(Some(eur(150_000))) }, &k.customer));
    add(
        "intent no budget",
        (Payload { header: Header::public(c, T0).with_expiry(T0 + 1), body: intent(None) }, &k.customer),
    );
    for (label, model) in
        [("upfront", PriceModel::Upfront), ("per usage", PriceModel::PerUsage), ("per impact", PriceModel::PerImpact)]
    {
        let body = Body::TermsProposal(TermsProposal { role: Role::Customer, terms: terms(model) });
        add(&format!("terms_proposal opening {label}"), cust(1, body.clone()));
        add(&format!("terms_proposal later {label}"), cust(4, body));
    }
    let mut usage_no_threshold = terms(PriceModel::PerUsage);
    usage_no_threshold.price.threshold = None;
    usage_no_threshold.renewal = Renewal::Automatic;
    usage_no_threshold.data = DataTerms { purposes: vec![], categories: vec![] };
    add(
        "terms_proposal vendor",
        vend(3, Body::TermsProposal(TermsProposal { role: Role::Vendor, terms: usage_no_threshold })),
    );
    add("terms_acceptance", vend(2, Body::TermsAcceptance(TermsAcceptance { proposal: id(9) })));
    add(
        "terms_rejection",
        vend(2, Body::TermsRejection(TermsRejection { proposal: id(9), reason: String::new(), counter: None })),
    );
    let mut none_renewal = terms(PriceModel::Upfront);
    none_renewal.renewal = Renewal::None;
    add(
        "terms_rejection counter",
        vend(
            2,
            Body::TermsRejection(TermsRejection {
                proposal: id(9),
                reason: "too cheap".into(),
                counter: Some(none_renewal),
            }),
        ),
    );
    let grant = |expires| {
        Body::ConsentGrant(ConsentGrant {
            purposes: vec![purpose("dpv:ServiceProvision"), purpose("urn:example:purpose:billing")],
            categories: vec![category("pd:Location"), category("https://vendor.example/categories/meter-readings")],
            third_party_sharing: false,
            retention: 90 * 86_400,
            expires,
        })
    };
    add("consent_grant", cust(2, grant(None)));
    add("consent_grant expires", cust(2, grant(Some(T0 + 86_400_000))));
    add("consent_revocation", cust(3, Body::ConsentRevocation(ConsentRevocation { grant: id(3), reason: None })));
    add(
        "consent_revocation reason",
        cust(3, Body::ConsentRevocation(ConsentRevocation { grant: id(3), reason: Some("moving".into()) })),
    );
    let report = Report { metric: "kWh".into(), unit: "kWh".into(), start: T0, end: T0 + 86_400_000, value: 42 };
    add("usage_report", vend(5, Body::UsageReport(report.clone())));
    add("impact_report", cust(5, Body::ImpactReport(report)));
    add("countersignature", cust(6, Body::Countersignature(Countersignature { report: id(11) })));
    let share = |content, purpose: Option<Purpose>| {
        Body::DataShare(DataShare {
            content,
            purpose,
            categories: vec![category("pd:Location")],
            commitment: Digest32::commit(&[3; 32], b"{\"kwh\": 12}"),
            media_type: "application/json".into(),
            size: 11,
        })
    };
    add("data_share data", cust(7, share(ShareContent::Data, Some(purpose("dpv:ServiceProvision")))));
    add("data_share insight", vend(7, share(ShareContent::Insight, Some(purpose("dpv:ServiceOptimisation")))));
    add("data_share export", vend(8, share(ShareContent::Export, None)));
    let intro = |basis, amount, basis_points, key, contact: Option<&str>| {
        Body::Introduction(Introduction {
            party: ThirdParty { name: "Roof Co".into(), key, contact: contact.map(str::to_owned) },
            offering: "roof inspection".into(),
            commission: Commission { basis, amount, basis_points },
        })
    };
    add("introduction none", vend(9, intro(CommissionBasis::None, None, None, None, None)));
    add(
        "introduction flat",
        vend(9, intro(CommissionBasis::Flat, Some(eur(1_000)), None, Some(c), Some("/dns4/roof.example/tcp/4001"))),
    );
    add(
        "introduction percent",
        cust(9, intro(CommissionBasis::Percent, None, Some(10_000), None, Some("https://roof.example"))),
    );
    add(
        "separation_notice",
        cust(10, Body::SeparationNotice(SeparationNotice { effective: T0, reason: None, disposition: vec![] })),
    );
    add(
        "separation_notice dispositions",
        vend(
            10,
            Body::SeparationNotice(SeparationNotice {
                effective: T0 + 30 * 86_400_000,
                reason: Some("moving away".into()),
                disposition: vec![
                    Disposition { category: category("pd:Location"), action: Action::Return },
                    Disposition { category: category("pd:Name"), action: Action::Delete },
                    Disposition { category: category("urn:example:shoe-size"), action: Action::ReturnAndDelete },
                ],
            }),
        ),
    );
    add(
        "disposition_statement",
        vend(
            11,
            Body::DispositionStatement(DispositionStatement {
                notice: id(12),
                items: vec![
                    item("pd:Location", Outcome::Returned),
                    item("pd:Name", Outcome::Deleted),
                    item("urn:example:shoe-size", Outcome::ReturnedAndDeleted),
                    item("pd:Financial", Outcome::Retained),
                ],
            }),
        ),
    );
    add(
        "disposition_statement empty",
        vend(11, Body::DispositionStatement(DispositionStatement { notice: id(12), items: vec![] })),
    );
    add("closure_receipt", cust(12, Body::ClosureReceipt(ClosureReceipt { statement: id(13) })));
    let ack = |rel, from: &SigningKey, to| Header::ack(rel, Keys::kid(from), to, T0);
    add(
        "receipt",
        (Payload { header: ack(Some(REL), &k.vendor, c), body: Body::Receipt(Receipt { message: id(14) }) }, &k.vendor),
    );
    let mut acked = ack(Some(REL), &k.customer, v).with_reply_to(id(15));
    acked.ack = Some(id(16));
    add("receipt with ack", (Payload { header: acked, body: Body::Receipt(Receipt { message: id(15) }) }, &k.customer));
    let problem =
        |code: &str, message| Body::ProblemReport(ProblemReport { code: code.into(), message, text: "detail".into() });
    add(
        "problem_report",
        (Payload { header: ack(Some(REL), &k.customer, v), body: problem("out-of-state", Some(id(17))) }, &k.customer),
    );
    add(
        "problem_report no rel",
        (Payload { header: ack(None, &k.vendor, c), body: problem("malformed", None) }, &k.vendor),
    );
    add(
        "problem_report future code",
        (Payload { header: ack(None, &k.vendor, c), body: problem("some-future-code", None) }, &k.vendor),
    );
    out.into_iter().map(|(label, (p, key))| (label, p, key)).collect()
}

#[test]
fn every_kind_validates() {
    let keys = Keys::new();
    let (payload_schema, envelope_schema) = (schema(), envelope_schema());
    let protected_schema = format!("protected = rapport-protected\n{payload_schema}");
    let mut kinds = BTreeSet::new();
    let mut failures = Vec::new();
    let samples = samples(&keys);
    for (label, payload, key) in &samples {
        kinds.insert(payload.kind());
        let m =
            Message::seal(payload.clone(), key).unwrap_or_else(|e| panic!("{label}: the code refuses the sample: {e}"));
        let reopened = Message::open(m.bytes()).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(reopened.payload(), payload, "{label}");
        if let Err(e) = conforms(&payload_schema, &m.payload_bytes()) {
            failures.push(format!("{label}: payload: {e}"));
        }
        if let Err(e) = validate(&envelope_schema, m.bytes()) {
            failures.push(format!("{label}: envelope: {e}"));
        }
        // d2 84 58 26 <38 bytes of protected header> ...
        if let Err(e) = validate(&protected_schema, &m.bytes()[4..42]) {
            failures.push(format!("{label}: protected header: {e}"));
        }
    }
    let missing: Vec<_> = Kind::ALL.iter().filter(|k| !kinds.contains(*k)).collect();
    assert!(missing.is_empty(), "no sample for {missing:?}");
    println!("{} samples over {} kinds: {} failed", samples.len(), kinds.len(), failures.len());
    assert!(failures.is_empty(), "samples the code accepts but the CDDL refuses:\n{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Payloads the code refuses as schema violations must not match the CDDL either.

fn payload_value(label: &str, samples: &[(String, Payload, &SigningKey)]) -> Value {
    let (_, p, key) = samples.iter().find(|(l, ..)| l == label).unwrap_or_else(|| panic!("no sample {label}"));
    let bytes = Message::seal(p.clone(), key).unwrap().payload_bytes();
    ciborium::from_reader(bytes.as_slice()).unwrap()
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
        &mut e.iter_mut().find(|(k, _)| k.as_text() == Some(key)).unwrap_or_else(|| panic!("no key {key}")).1
    })
}

/// Sets (inserting if absent) `key` in the map at `path`.
fn set(v: &mut Value, path: &[&str], key: &str, new: Value) {
    let e = entries(at(v, path));
    match e.iter_mut().find(|(k, _)| k.as_text() == Some(key)) {
        Some((_, old)) => *old = new,
        None => e.push((Value::Text(key.into()), new)),
    }
}

fn remove(v: &mut Value, path: &[&str], key: &str) {
    let e = entries(at(v, path));
    let before = e.len();
    e.retain(|(k, _)| k.as_text() != Some(key));
    assert_eq!(e.len() + 1, before, "no key {key} to remove");
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn uint(n: u64) -> Value {
    Value::Integer(n.into())
}

fn bytes(n: usize) -> Value {
    Value::Bytes(vec![0xab; n])
}

type Mutation = (&'static str, &'static str, fn(&mut Value));

/// (sample, what is wrong, mutation). Each must be refused by the code with
/// `schema-violation` and by the CDDL.
const MUTATIONS: &[Mutation] = &[
    ("terms_acceptance", "unknown body field", |v| set(v, &["body"], "extra", uint(1))),
    ("terms_acceptance", "unknown header field", |v| set(v, &[], "x", uint(1))),
    ("terms_acceptance", "missing at", |v| remove(v, &[], "at")),
    ("terms_acceptance", "missing body field", |v| remove(v, &["body"], "proposal")),
    ("terms_acceptance", "body not a map", |v| set(v, &[], "body", Value::Array(vec![]))),
    ("terms_acceptance", "message id of 31 bytes", |v| set(v, &["body"], "proposal", bytes(31))),
    ("terms_acceptance", "message id as an array", |v| set(v, &["body"], "proposal", Value::Array(vec![uint(1); 32]))),
    ("terms_acceptance", "rel of 15 bytes", |v| set(v, &[], "rel", bytes(15))),
    ("terms_acceptance", "from of 33 bytes", |v| set(v, &[], "from", bytes(33))),
    ("terms_acceptance", "seq as text", |v| set(v, &[], "seq", text("2"))),
    ("terms_acceptance", "negative at", |v| set(v, &[], "at", Value::Integer((-1).into()))),
    ("terms_acceptance", "chained seq 0", |v| {
        set(v, &[], "seq", uint(0));
        remove(v, &[], "prev");
    }),
    ("terms_acceptance", "seq 2 without prev", |v| remove(v, &[], "prev")),
    ("terms_acceptance", "chained without to", |v| remove(v, &[], "to")),
    ("terms_acceptance", "chained without rel and to", |v| {
        remove(v, &[], "rel");
        remove(v, &[], "to");
    }),
    ("terms_proposal opening upfront", "seq 1 with prev", |v| set(v, &[], "prev", bytes(32))),
    ("terms_proposal opening upfront", "public terms_proposal", |v| {
        remove(v, &[], "rel");
        remove(v, &[], "to");
        set(v, &[], "seq", uint(0));
    }),
    ("terms_proposal opening upfront", "upfront price with metric", |v| {
        set(v, &["body", "terms", "price"], "metric", text("kWh"))
    }),
    ("terms_proposal opening upfront", "upfront price with threshold", |v| {
        set(v, &["body", "terms", "price"], "threshold", uint(1))
    }),
    ("terms_proposal opening per impact", "per-impact price without threshold", |v| {
        remove(v, &["body", "terms", "price"], "threshold")
    }),
    ("terms_proposal opening per usage", "per-usage price without metric", |v| {
        remove(v, &["body", "terms", "price"], "metric")
    }),
    ("terms_proposal opening per usage", "per-usage price with empty metric", |v| {
        set(v, &["body", "terms", "price"], "metric", text(""))
    }),
    ("terms_proposal opening upfront", "unknown price model", |v| {
        set(v, &["body", "terms", "price"], "model", text("per_month"))
    }),
    ("terms_proposal opening upfront", "currency of four letters", |v| {
        set(v, &["body", "terms", "price", "amount"], "currency", text("EURO"))
    }),
    ("terms_proposal opening upfront", "lower-case currency", |v| {
        set(v, &["body", "terms", "exit_fee"], "currency", text("eur"))
    }),
    ("terms_proposal opening upfront", "duration 0", |v| set(v, &["body", "terms"], "duration", uint(0))),
    ("terms_proposal opening upfront", "unknown renewal", |v| set(v, &["body", "terms"], "renewal", text("yearly"))),
    ("terms_proposal opening upfront", "unknown role", |v| set(v, &["body"], "role", text("admin"))),
    ("terms_proposal opening upfront", "empty export format", |v| {
        set(v, &["body", "terms", "portability"], "format", text(""))
    }),
    ("terms_proposal opening upfront", "unknown purpose", |v| {
        set(v, &["body", "terms", "data"], "purposes", Value::Array(vec![text("dpv:Nope")]))
    }),
    ("terms_proposal opening upfront", "a category as a purpose", |v| {
        set(v, &["body", "terms", "data"], "purposes", Value::Array(vec![text("pd:Name")]))
    }),
    ("terms_proposal opening upfront", "extension URI without a path", |v| {
        set(v, &["body", "terms", "data"], "categories", Value::Array(vec![text("https://")]))
    }),
    ("terms_proposal opening upfront", "extension URI with a space", |v| {
        set(v, &["body", "terms", "data"], "categories", Value::Array(vec![text("urn:a b")]))
    }),
    ("terms_proposal opening upfront", "extension URI too long", |v| {
        set(v, &["body", "terms", "data"], "categories", Value::Array(vec![text(&format!("urn:{}", "a".repeat(253)))]))
    }),
    ("terms_proposal opening upfront", "65 purposes", |v| {
        let many = (0..65).map(|i| text(&format!("urn:p:{i}"))).collect();
        set(v, &["body", "terms", "data"], "purposes", Value::Array(many))
    }),
    ("intent", "intent with rel and to", |v| {
        set(v, &[], "rel", bytes(16));
        set(v, &[], "to", bytes(32));
    }),
    ("intent", "intent with seq 1", |v| set(v, &[], "seq", uint(1))),
    ("intent", "intent with ack", |v| set(v, &[], "ack", bytes(32))),
    ("intent", "empty title", |v| set(v, &["body"], "title", text(""))),
    ("intent", "title over 4096 bytes", |v| set(v, &["body"], "title", text(&"é".repeat(2049)))),
    ("intent", "empty tag", |v| set(v, &["body"], "tags", Value::Array(vec![text("")]))),
    ("intent", "65 tags", |v| set(v, &["body"], "tags", Value::Array(vec![text("t"); 65]))),
    ("intent", "null budget", |v| set(v, &["body"], "budget", Value::Null)),
    ("intent", "v as text", |v| set(v, &[], "v", text("1"))),
    ("offer public", "public offer with ack", |v| set(v, &[], "ack", bytes(32))),
    ("offer public", "public offer with seq 1", |v| set(v, &[], "seq", uint(1))),
    ("offer public", "rel without to", |v| set(v, &[], "rel", bytes(16))),
    ("consent_grant", "no purposes", |v| set(v, &["body"], "purposes", Value::Array(vec![]))),
    ("consent_grant", "no categories", |v| set(v, &["body"], "categories", Value::Array(vec![]))),
    ("consent_grant", "sharing flag as integer", |v| set(v, &["body"], "third_party_sharing", uint(0))),
    ("data_share export", "export with a purpose", |v| set(v, &["body"], "purpose", text("dpv:Marketing"))),
    ("data_share data", "data without a purpose", |v| remove(v, &["body"], "purpose")),
    ("data_share data", "unknown content", |v| set(v, &["body"], "content", text("gift"))),
    ("data_share data", "commitment of 16 bytes", |v| set(v, &["body"], "commitment", bytes(16))),
    ("data_share data", "no categories", |v| set(v, &["body"], "categories", Value::Array(vec![]))),
    ("introduction none", "none commission with an amount", |v| {
        set(
            v,
            &["body", "commission"],
            "amount",
            Value::Map(vec![(text("currency"), text("EUR")), (text("minor_units"), uint(1))]),
        )
    }),
    ("introduction flat", "flat commission without amount", |v| remove(v, &["body", "commission"], "amount")),
    ("introduction percent", "more than 10000 basis points", |v| {
        set(v, &["body", "commission"], "basis_points", uint(10_001))
    }),
    ("introduction percent", "percent with an amount", |v| {
        set(
            v,
            &["body", "commission"],
            "amount",
            Value::Map(vec![(text("currency"), text("EUR")), (text("minor_units"), uint(1))]),
        )
    }),
    ("introduction flat", "flat commission with basis points", |v| {
        set(v, &["body", "commission"], "basis_points", uint(5))
    }),
    ("introduction none", "none commission with basis points", |v| {
        set(v, &["body", "commission"], "basis_points", uint(5))
    }),
    ("introduction flat", "empty contact", |v| set(v, &["body", "party"], "contact", text(""))),
    ("introduction none", "empty offering", |v| set(v, &["body"], "offering", text(""))),
    ("separation_notice dispositions", "unknown action", |v| {
        let list = at(v, &["body", "disposition"]);
        let Value::Array(items) = list else { panic!("not an array") };
        set(&mut items[0], &[], "action", text("burn"));
    }),
    ("disposition_statement", "retained without legal basis", |v| {
        let Value::Array(items) = at(v, &["body", "items"]) else { panic!("not an array") };
        remove(&mut items[3], &[], "legal_basis");
    }),
    ("disposition_statement", "deleted with an export hash", |v| {
        let Value::Array(items) = at(v, &["body", "items"]) else { panic!("not an array") };
        set(&mut items[1], &[], "export", bytes(32));
    }),
    ("disposition_statement", "returned without an export hash", |v| {
        let Value::Array(items) = at(v, &["body", "items"]) else { panic!("not an array") };
        remove(&mut items[0], &[], "export");
    }),
    ("disposition_statement", "retained with an export hash", |v| {
        let Value::Array(items) = at(v, &["body", "items"]) else { panic!("not an array") };
        set(&mut items[3], &[], "export", bytes(32));
    }),
    ("disposition_statement", "returned with a legal basis", |v| {
        let Value::Array(items) = at(v, &["body", "items"]) else { panic!("not an array") };
        set(&mut items[0], &[], "legal_basis", text("law"));
        set(&mut items[0], &[], "until", uint(1));
    }),
    ("disposition_statement", "unknown outcome", |v| {
        let Value::Array(items) = at(v, &["body", "items"]) else { panic!("not an array") };
        set(&mut items[1], &[], "outcome", text("sold"));
    }),
    ("offer later", "chained offer without prev", |v| remove(v, &[], "prev")),
    ("offer opening", "offer with seq 0 and rel", |v| set(v, &[], "seq", uint(0))),
    ("data_share insight", "unknown purpose", |v| set(v, &["body"], "purpose", text("dpv:Nope"))),
    ("problem_report", "problem report with seq 1", |v| set(v, &[], "seq", uint(1))),
    ("receipt", "receipt without rel", |v| remove(v, &[], "rel")),
    ("receipt", "receipt with seq 1", |v| set(v, &[], "seq", uint(1))),
    ("receipt", "receipt with prev", |v| set(v, &[], "prev", bytes(32))),
    ("problem_report no rel", "problem report without to", |v| remove(v, &[], "to")),
    ("problem_report", "empty code", |v| set(v, &["body"], "code", text(""))),
];

#[test]
fn schema_violations_do_not_validate() {
    let keys = Keys::new();
    let samples = samples(&keys);
    let cddl = schema();
    let mut failures = Vec::new();
    for (sample, what, mutate) in MUTATIONS {
        let mut value = payload_value(sample, &samples);
        mutate(&mut value);
        let bytes = rapport_protocol::cbor::to_canonical_vec(&value).unwrap();
        match Payload::decode(&bytes) {
            Err(e) if e.code() == Code::SchemaViolation => {}
            other => failures.push(format!("{sample} / {what}: the code gives {other:?}, not schema-violation")),
        }
        if conforms(&cddl, &bytes).is_ok() {
            failures.push(format!("{sample} / {what}: validates against the CDDL"));
        }
    }
    println!("{} schema violations checked: {} failed", MUTATIONS.len(), failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The test vectors.

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(read) = std::fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = read.map(|e| e.unwrap().path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    valid_passed: usize,
    invalid_refused: usize,
    skipped: usize,
    failures: Vec<String>,
}

impl Tally {
    fn check(&mut self, cddl: &(String, String), name: &str, entry: &serde_json::Value) {
        let Some(hex_payload) = entry.get("payload_hex").and_then(|p| p.as_str()) else {
            self.skipped += 1;
            return;
        };
        let payload = hex::decode(hex_payload).unwrap_or_else(|e| panic!("{name}: payload_hex: {e}"));
        let valid =
            entry.get("valid").and_then(serde_json::Value::as_bool).unwrap_or_else(|| panic!("{name}: no valid"));
        let code = entry.get("problem_code").and_then(|c| c.as_str());
        if valid {
            match conforms(&cddl.0, &payload) {
                Ok(()) => self.valid_passed += 1,
                Err(e) => self.failures.push(format!("{name}: valid payload does not validate: {e}")),
            }
            if let Some(cose) = entry.get("cose_hex").and_then(|c| c.as_str()) {
                let cose = hex::decode(cose).unwrap_or_else(|e| panic!("{name}: cose_hex: {e}"));
                if let Err(e) = validate(&cddl.1, &cose) {
                    self.failures.push(format!("{name}: valid envelope does not validate: {e}"));
                }
            }
        } else if code == Some("schema-violation") {
            match conforms(&cddl.0, &payload) {
                Err(_) => self.invalid_refused += 1,
                Ok(()) => self.failures.push(format!("{name}: schema-violation payload validates against the CDDL")),
            }
        } else {
            self.skipped += 1;
        }
    }
}

#[test]
fn vectors_match_the_schema() {
    let root = workspace().join("spec/vectors");
    let mut files = Vec::new();
    json_files(&root, &mut files);
    let cddl = (schema(), envelope_schema());
    let mut tally = Tally::default();
    for file in &files {
        let name = file.strip_prefix(&root).unwrap_or(file).display().to_string();
        let text = std::fs::read_to_string(file).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        match json.get("messages").and_then(|m| m.as_array()) {
            Some(messages) => {
                for (i, m) in messages.iter().enumerate() {
                    tally.check(&cddl, &format!("{name}[{i}]"), m);
                }
            }
            None => tally.check(&cddl, &name, &json),
        }
    }
    println!(
        "{} vector files: {} valid payloads validated, {} schema-violation payloads refused, {} not checked by CDDL, {} failed",
        files.len(),
        tally.valid_passed,
        tally.invalid_refused,
        tally.skipped,
        tally.failures.len()
    );
    assert!(tally.failures.is_empty(), "{}", tally.failures.join("\n"));
    assert!(
        tally.valid_passed + tally.invalid_refused > 0,
        "no vector was checked against the CDDL: generate them with `cargo run -p rapport-tests --bin rapport-vectors`"
    );
}

/// The export seals of `spec/vectors/seals/` (spec/node.md §7.2): in every valid vector the
/// seal matches `export-seal` and its payload `seal-statement`; a message's envelope, put where
/// a seal belongs, matches neither.
#[test]
fn seal_vectors_match_the_schema() {
    let root = workspace().join("spec/vectors/seals");
    let mut files = Vec::new();
    json_files(&root, &mut files);
    let statement = format!("seal = seal-statement\n{}", schema());
    let sealed = format!("seal = export-seal\n{}", schema());
    let mut checked = 0;
    for file in &files {
        let name = file.display().to_string();
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let seal = json["bundle"]["seal"].as_str().map(|h| hex::decode(h).unwrap());
        if json["valid"] == serde_json::Value::Bool(true) {
            let payload = hex::decode(json["seal_payload_hex"].as_str().unwrap()).unwrap();
            validate(&statement, &payload).unwrap_or_else(|e| panic!("{name}: seal payload: {e}"));
            validate(&sealed, &seal.unwrap()).unwrap_or_else(|e| panic!("{name}: seal: {e}"));
            checked += 1;
        } else if file.ends_with("seal-is-a-message.json") {
            assert!(validate(&sealed, &seal.unwrap()).is_err(), "{name}: a message validates as a seal");
            let payload = hex::decode(json["seal_payload_hex"].as_str().unwrap()).unwrap();
            assert!(validate(&statement, &payload).is_err(), "{name}: a message payload validates as a statement");
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} seal vectors checked against the CDDL");
}
