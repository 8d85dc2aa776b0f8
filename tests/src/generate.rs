//! The generator of `spec/vectors/`: one relationship walked from offer to closure receipt,
//! and, from it, every valid kind and every class of defect the spec names.
//!
//! Each vector states the verdict the reference implementation reaches, computed here by the
//! same judges the `vectors` test applies; the generator also states the verdict it *means* to
//! show and stops if the two differ, so no vector can silently show something else.
// A generator that cannot build what it means to build stops loudly; it is a development tool.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use ciborium::Value;
use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::traits::IsIdentity as _;
use ed25519_dalek::SigningKey;
use rand_chacha::rand_core::{RngCore as _, SeedableRng as _};
use rand_chacha::ChaCha20Rng;
use rapport_protocol::*;
use sha2::{Digest as _, Sha256};

use crate::raw;

mod seals;
use crate::{first_refusal, judge_envelope, judge_log, judge_sequence, File, Sequence, Vector};

/// 2026-01-01T00:00:00Z.
const T0: Timestamp = 1_767_225_600_000;
const MINUTE: u64 = 60_000;
const DAY: u64 = 86_400_000;

fn digest(label: &str) -> [u8; 32] {
    Sha256::digest(format!("rapport-vectors:{label}").as_bytes()).into()
}

fn key(label: &str) -> SigningKey {
    SigningKey::from_bytes(&digest(&format!("key:{label}")))
}

fn kid(key: &SigningKey) -> KeyId {
    KeyId::from_bytes(key.verifying_key().to_bytes())
}

fn rel_id(label: &str) -> RelationshipId {
    let d = digest(&format!("relationship:{label}"));
    RelationshipId::from_bytes(d[..16].try_into().unwrap())
}

fn salt(label: &str) -> [u8; SALT_LEN] {
    digest(&format!("salt:{label}"))
}

fn purpose(s: &str) -> Purpose {
    Purpose::new(s).unwrap()
}

fn category(s: &str) -> Category {
    Category::new(s).unwrap()
}

fn eur(minor_units: u64) -> Money {
    Money::new("EUR", minor_units)
}

/// The people in the vectors: a customer, a solar vendor, and an outsider to their relationship.
struct Cast {
    customer: SigningKey,
    vendor: SigningKey,
    outsider: SigningKey,
}

impl Cast {
    fn new() -> Cast {
        Cast { customer: key("customer"), vendor: key("vendor"), outsider: key("outsider") }
    }

    fn key_of(&self, from: &KeyId) -> &SigningKey {
        [&self.customer, &self.vendor, &self.outsider].into_iter().find(|k| kid(k) == *from).expect("a cast member")
    }

    fn seal(&self, header: Header, body: Body) -> Message {
        let key = self.key_of(&header.from);
        Message::seal(Payload { header, body }, key).expect("a valid payload")
    }
}

// ---------------------------------------------------------------------------------------------
// Bodies

fn terms(notice_days: u64, price: Price) -> Terms {
    Terms {
        duration: 365 * 86_400,
        renewal: Renewal::OptIn,
        notice_period: notice_days * 86_400,
        price,
        data: DataTerms {
            purposes: vec![purpose("dpv:ServiceProvision"), purpose("dpv:ServiceOptimisation")],
            categories: vec![category("pd:Location"), category("https://solar.example/vocab/PanelTelemetry")],
        },
        portability: Portability { format: "application/json".into(), deadline: 30 * 86_400 },
        deletion_deadline: 60 * 86_400,
        exit_fee: eur(0),
    }
}

fn per_kwh(cents: u64) -> Price {
    Price { model: PriceModel::PerUsage, amount: eur(cents), metric: Some("kWh delivered".into()), threshold: None }
}

fn offer() -> Body {
    Body::Offer(Offer {
        title: "Rooftop solar lease".into(),
        description: "Twelve panels and a 10 kWh battery, installed and maintained. Pay per kWh delivered.".into(),
        price: per_kwh(21),
        terms: Some(terms(30, per_kwh(21))),
    })
}

fn intent() -> Body {
    Body::Intent(Intent {
        title: "Solar panels for a terraced house".into(),
        description: "South-facing roof, about 20 m². Looking for a lease with maintenance; no data resale.".into(),
        tags: vec!["solar".into(), "energy".into(), "lease".into()],
        budget: Some(eur(400_000)),
    })
}

fn grant() -> Body {
    Body::ConsentGrant(ConsentGrant {
        purposes: vec![purpose("dpv:ServiceProvision"), purpose("dpv:ServiceOptimisation")],
        categories: vec![category("pd:Location"), category("https://solar.example/vocab/PanelTelemetry")],
        third_party_sharing: false,
        retention: 365 * 86_400,
        expires: Some(T0 + 400 * DAY),
    })
}

fn share(content: ShareContent, purpose_name: Option<&str>, categories: &[&str], data: &[u8], label: &str) -> Body {
    Body::DataShare(DataShare {
        content,
        purpose: purpose_name.map(purpose),
        categories: categories.iter().map(|c| category(c)).collect(),
        commitment: Digest32::commit(&salt(label), data),
        media_type: "application/json".into(),
        size: data.len() as u64,
    })
}

fn insight() -> Body {
    share(
        ShareContent::Insight,
        Some("dpv:ServiceOptimisation"),
        &["https://solar.example/vocab/PanelTelemetry"],
        br#"{"panel_7":"output 18% below the others; shading from the chimney after 15:00"}"#,
        "insight",
    )
}

fn report(metric: &str, unit: &str, start: Timestamp, value: u64) -> Report {
    Report { metric: metric.into(), unit: unit.into(), start, end: start + 30 * DAY, value }
}

/// The export bundle the vendor returns on separation.
const EXPORT_BUNDLE: &[u8] = br#"{"location":"51.5072,-0.1276","telemetry":"months 1-2, 1,440 hourly readings"}"#;

// ---------------------------------------------------------------------------------------------
// A relationship being walked

/// A relationship as both parties see it, and every message sent so far, by name.
struct Walk<'a> {
    cast: &'a Cast,
    rel: Relationship,
    now: Timestamp,
    messages: Vec<(String, Message)>,
}

impl<'a> Walk<'a> {
    /// Opens a relationship with `body`, sent by `role`.
    fn open(cast: &'a Cast, label: &str, role: Role, name: &str, body: Body) -> Walk<'a> {
        let (from, to) = match role {
            Role::Customer => (kid(&cast.customer), kid(&cast.vendor)),
            Role::Vendor => (kid(&cast.vendor), kid(&cast.customer)),
        };
        let first = cast.seal(Header::opening(rel_id(label), from, to, T0), body);
        let (rel, _) = Relationship::open(&first, T0, Policy::LOG).expect("the opening is accepted");
        Walk { cast, rel, now: T0, messages: vec![(name.into(), first)] }
    }

    /// The walk as it stood right after the message named `name`.
    fn upto(&self, name: &str) -> Walk<'a> {
        let end = self.position(name) + 1;
        let messages = self.messages[..end].to_vec();
        let (first, rest) = messages.split_first().expect("an opening");
        let (mut rel, _) = Relationship::open(&first.1, first.1.header().created_at, Policy::LOG).unwrap();
        for (_, m) in rest {
            rel.handle(m, m.header().created_at, Policy::LOG).unwrap();
        }
        let now = messages.iter().map(|(_, m)| m.header().created_at).max().unwrap_or(T0);
        Walk { cast: self.cast, rel, now, messages }
    }

    fn position(&self, name: &str) -> usize {
        self.messages.iter().position(|(n, _)| n == name).unwrap_or_else(|| panic!("no message {name}"))
    }

    fn id(&self, name: &str) -> MessageId {
        self.messages[self.position(name)].1.id()
    }

    fn message(&self, name: &str) -> &Message {
        &self.messages[self.position(name)].1
    }

    /// The header `role`'s next chained message would carry, one minute on.
    fn next(&mut self, role: Role) -> Header {
        self.now += MINUTE;
        self.rel.next_header(role, self.now)
    }

    /// Signs a message without applying it.
    fn craft(&self, header: Header, body: Body) -> Message {
        self.cast.seal(header, body)
    }

    /// Sends a message built from `header`, which must be accepted.
    fn send_with(&mut self, name: &str, header: Header, body: Body) -> MessageId {
        let m = self.craft(header, body);
        if let Err(e) = self.rel.handle(&m, m.header().created_at, Policy::LOG) {
            panic!("{name} refused: {e}");
        }
        self.messages.push((name.into(), m.clone()));
        m.id()
    }

    /// Sends `role`'s next chained message, which must be accepted.
    fn send(&mut self, name: &str, role: Role, body: Body) -> MessageId {
        let h = self.next(role);
        self.send_with(name, h, body)
    }

    /// Sends an acknowledgement (`receipt` or `problem_report`) from `role`.
    fn acknowledge(&mut self, name: &str, role: Role, body: Body) -> MessageId {
        self.now += MINUTE;
        let h = Header::ack(Some(self.rel.id()), self.rel.key(role), self.rel.key(role.other()), self.now);
        self.send_with(name, h, body)
    }

    /// Every message so far, as sequence entries.
    fn items(&self) -> Vec<Item> {
        self.messages.iter().map(|(name, m)| Item::of(name, describe(m), m)).collect()
    }
}

/// "vendor's offer (seq 1)" and the like.
fn describe(m: &Message) -> String {
    let h = m.header();
    match m.kind().class() {
        Class::Ack => format!("{} (acknowledgement)", m.kind()),
        Class::Public => format!("public {}", m.kind()),
        _ => format!("{} (seq {})", m.kind(), h.seq),
    }
}

// ---------------------------------------------------------------------------------------------
// The lifecycle

/// The relationship of every valid vector: a customer leases rooftop solar from a vendor, and
/// a year on they part as friends.
fn lifecycle(cast: &Cast) -> Walk<'_> {
    use Role::{Customer as C, Vendor as V};
    let mut w = Walk::open(cast, "lifecycle", V, "offer", offer());
    w.acknowledge("receipt", C, Body::Receipt(Receipt { message: w.id("offer") }));
    let h = w.next(C);
    let exp = h.created_at + 7 * DAY;
    w.send_with(
        "proposal",
        h.with_expiry(exp),
        Body::TermsProposal(TermsProposal { role: C, terms: terms(30, per_kwh(18)) }),
    );
    w.send(
        "rejection",
        V,
        Body::TermsRejection(TermsRejection {
            proposal: w.id("proposal"),
            reason: "18 cents does not cover maintenance; 20 cents, with the battery included.".into(),
            counter: Some(terms(30, per_kwh(20))),
        }),
    );
    w.send("acceptance", C, Body::TermsAcceptance(TermsAcceptance { proposal: w.id("rejection") }));
    w.send("grant", C, grant());
    w.send("usage-report", V, Body::UsageReport(report("energy delivered", "kWh", T0 + DAY, 412)));
    w.send("countersignature", C, Body::Countersignature(Countersignature { report: w.id("usage-report") }));
    w.send("impact-report", V, Body::ImpactReport(report("CO2 emissions avoided", "kg", T0 + DAY, 96)));
    w.send("insight", V, insight());
    w.send(
        "data",
        C,
        share(
            ShareContent::Data,
            Some("dpv:ServiceProvision"),
            &["pd:Location"],
            br#"{"address":"12 Acacia Avenue","roof_azimuth_deg":180}"#,
            "data",
        ),
    );
    w.acknowledge(
        "problem-report",
        V,
        Body::ProblemReport(ProblemReport {
            code: Code::Internal.as_str().into(),
            message: Some(w.id("data")),
            text: "The disk holding your data share filled up; please send it again later.".into(),
        }),
    );
    w.send(
        "introduction",
        V,
        Body::Introduction(Introduction {
            party: ThirdParty {
                name: "Northwind Roofing".into(),
                key: Some(kid(&cast.outsider)),
                contact: Some("https://northwind.example/rapport".into()),
            },
            offering: "A roof inspection before the panels go up".into(),
            commission: Commission { basis: CommissionBasis::Percent, amount: None, basis_points: Some(500) },
        }),
    );
    w.send(
        "revocation",
        C,
        Body::ConsentRevocation(ConsentRevocation {
            grant: w.id("grant"),
            reason: Some("We are selling the house.".into()),
        }),
    );
    let h = w.next(C);
    let effective = h.created_at + 30 * DAY;
    w.send_with(
        "notice",
        h,
        Body::SeparationNotice(SeparationNotice {
            effective,
            reason: Some("Moving abroad".into()),
            disposition: vec![
                Disposition { category: category("pd:Location"), action: Action::ReturnAndDelete },
                Disposition {
                    category: category("https://solar.example/vocab/PanelTelemetry"),
                    action: Action::Delete,
                },
            ],
        }),
    );
    w.send(
        "export",
        V,
        Body::DataShare(DataShare {
            content: ShareContent::Export,
            purpose: None,
            categories: vec![category("pd:Location"), category("https://solar.example/vocab/PanelTelemetry")],
            commitment: Digest32::commit(&salt("export"), EXPORT_BUNDLE),
            media_type: "application/json".into(),
            size: EXPORT_BUNDLE.len() as u64,
        }),
    );
    w.send(
        "statement",
        V,
        Body::DispositionStatement(DispositionStatement {
            notice: w.id("notice"),
            items: vec![
                DispositionItem {
                    category: category("pd:Location"),
                    outcome: Outcome::ReturnedAndDeleted,
                    export: Some(Digest32::of(EXPORT_BUNDLE)),
                    legal_basis: None,
                    until: None,
                },
                DispositionItem {
                    category: category("https://solar.example/vocab/PanelTelemetry"),
                    outcome: Outcome::Retained,
                    export: None,
                    legal_basis: Some("Warranty claims on the inverter: records kept for two years".into()),
                    until: Some(T0 + 2 * 365 * DAY),
                },
            ],
        }),
    );
    w.send("closure", C, Body::ClosureReceipt(ClosureReceipt { statement: w.id("statement") }));
    w.acknowledge("closure-receipt-ack", V, Body::Receipt(Receipt { message: w.id("closure") }));
    w
}

// ---------------------------------------------------------------------------------------------
// Output

/// One message of a vector, before it is judged.
#[derive(Clone)]
struct Item {
    name: String,
    description: String,
    bytes: Vec<u8>,
    signer: Vec<u8>,
    payload: Option<Vec<u8>>,
}

impl Item {
    fn of(name: &str, description: impl Into<String>, m: &Message) -> Item {
        Item {
            name: name.into(),
            description: description.into(),
            bytes: m.bytes().to_vec(),
            signer: m.signer().as_bytes().to_vec(),
            payload: Some(m.payload_bytes()),
        }
    }

    fn raw(name: &str, description: &str, bytes: Vec<u8>, signer: &[u8], payload: Option<&[u8]>) -> Item {
        Item {
            name: name.into(),
            description: description.into(),
            bytes,
            signer: signer.to_vec(),
            payload: payload.map(<[u8]>::to_vec),
        }
    }

    /// An item whose envelope is this payload, correctly signed by `key`.
    fn signed(name: &str, description: &str, key: &SigningKey, payload: &[u8]) -> Item {
        Item::raw(name, description, raw::sign(key, payload), key.verifying_key().as_bytes(), Some(payload))
    }

    fn vector(&self, verdict: &crate::Verdict) -> Vector {
        Vector {
            name: self.name.clone(),
            description: self.description.clone(),
            valid: verdict.is_ok(),
            problem_code: verdict.clone().err(),
            cose_hex: hex::encode(&self.bytes),
            signer_public_key_hex: hex::encode(&self.signer),
            payload_hex: self.payload.as_ref().map(hex::encode),
            message_id_hex: MessageId::of(&self.bytes).to_hex(),
        }
    }
}

fn expected(code: Option<Code>) -> crate::Verdict {
    code.map_or(Ok(()), |c| Err(c.as_str().to_owned()))
}

fn json<T: serde::Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("vectors serialize");
    text.push('\n');
    text
}

#[derive(Default)]
struct Out {
    files: Vec<File>,
}

impl Out {
    /// A single-message vector in `folder`, judged by the envelope checks.
    fn single(&mut self, folder: &str, item: Item, code: Option<Code>) {
        let verdict = judge_envelope(&item.bytes);
        assert_eq!(verdict, expected(code), "{folder}/{}", item.name);
        let vector = item.vector(&verdict);
        self.files.push(File { path: format!("{folder}/{}.json", item.name), text: json(&vector) });
    }

    /// A sequence: every message accepted but, if `code` is given, the last, refused with it.
    fn sequence(&mut self, name: &str, description: &str, items: Vec<Item>, code: Option<Code>) {
        let verdicts = judge_sequence(&items.iter().map(|i| &i.bytes).collect::<Vec<_>>());
        let last = verdicts.len() - 1;
        for (i, v) in verdicts.iter().enumerate() {
            let want = if i == last { expected(code) } else { Ok(()) };
            assert_eq!(*v, want, "sequences/{name}: message {i} ({})", items[i].name);
        }
        let whole = first_refusal(&verdicts);
        let sequence = Sequence {
            name: name.into(),
            description: description.into(),
            valid: whole.is_ok(),
            problem_code: whole.err(),
            messages: items.iter().zip(&verdicts).map(|(item, v)| item.vector(v)).collect(),
        };
        self.files.push(File { path: format!("sequences/{name}.json"), text: json(&sequence) });
    }

    /// A log given to log verification; each entry carries its own envelope verdict.
    fn log(&mut self, name: &str, description: &str, items: Vec<Item>, code: Option<Code>) {
        let envelopes: Vec<&Vec<u8>> = items.iter().map(|i| &i.bytes).collect();
        let verdict = judge_log(&envelopes);
        assert_eq!(verdict, expected(code), "logs/{name}");
        let log = Sequence {
            name: name.into(),
            description: description.into(),
            valid: verdict.is_ok(),
            problem_code: verdict.err(),
            messages: items.iter().map(|item| item.vector(&judge_envelope(&item.bytes))).collect(),
        };
        self.files.push(File { path: format!("logs/{name}.json"), text: json(&log) });
    }
}

/// Every vector file, in a fixed order.
pub fn generate() -> Vec<File> {
    let cast = Cast::new();
    let walk = lifecycle(&cast);
    let mut out = Out::default();
    kinds(&mut out, &cast, &walk);
    invalid(&mut out, &cast, &walk);
    strict(&mut out, &cast);
    sequences(&mut out, &cast, &walk);
    logs(&mut out, &cast, &walk);
    seals::seals(&mut out, &cast, &walk);
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    out.files
}

// ---------------------------------------------------------------------------------------------
// kinds/

fn kinds(out: &mut Out, cast: &Cast, w: &Walk<'_>) {
    let public_intent = cast.seal(Header::public(kid(&cast.customer), T0 - DAY), intent());
    out.single(
        "kinds",
        Item::of("intent", "A customer's public request for proposals, with a budget.", &public_intent),
        None,
    );
    let public_offer =
        cast.seal(Header::public(kid(&cast.vendor), T0 - DAY + MINUTE).with_reply_to(public_intent.id()), offer());
    out.single(
        "kinds",
        Item::of(
            "offer-public",
            "A vendor's public offer, answering the intent (`re`); no relationship yet.",
            &public_offer,
        ),
        None,
    );
    let described: &[(&str, &str, &str)] = &[
        ("offer", "offer", "The vendor's offer to one customer; it opens the relationship (seq 1, no prev)."),
        ("receipt", "receipt", "The customer's signed receipt for the offer."),
        ("proposal", "terms_proposal", "The customer proposes terms: a year, opt-in renewal, 30 days' notice, 18 cents per kWh, data and portability terms, no exit fee; it expires in 7 days."),
        ("rejection", "terms_rejection", "The vendor rejects the proposal with a reason and a counter-proposal at 20 cents per kWh."),
        ("acceptance", "terms_acceptance", "The customer accepts the counter-proposal; the two messages prove the agreement."),
        ("grant", "consent_grant", "The customer consents to two purposes over two categories (one an extension URI), no third-party sharing, with retention and expiry."),
        ("usage-report", "usage_report", "The vendor reports 412 kWh delivered over 30 days."),
        ("countersignature", "countersignature", "The customer countersigns the usage report: a jointly signed basis for the bill."),
        ("impact-report", "impact_report", "The vendor reports 96 kg of CO2 avoided over 30 days."),
        ("insight", "data_share", "The vendor shares an insight back to the customer: only a salted commitment to it is signed."),
        ("data", "data_share", "The customer shares data within the consent's scope."),
        ("problem-report", "problem_report", "The vendor reports a problem (`internal`) with the customer's data share."),
        ("introduction", "introduction", "The vendor introduces a third party, with a 5% commission stated."),
        ("revocation", "consent_revocation", "The customer revokes the consent; it takes effect on receipt."),
        ("notice", "separation_notice", "The customer gives 30 days' notice and asks for its data back and deleted."),
        ("export", "data_share", "The vendor returns the customer's data as an export bundle, by commitment."),
        ("statement", "disposition_statement", "The vendor states what it did with each category: returned and deleted, or retained under a stated legal basis until a date."),
        ("closure", "closure_receipt", "The customer confirms the disposition; the relationship is closed."),
        ("closure-receipt-ack", "receipt", "The vendor's receipt for the closure receipt."),
    ];
    for (name, kind, description) in described {
        let m = w.message(name);
        assert_eq!(m.kind().as_str(), *kind, "{name}");
        let file = match *name {
            "insight" => "data_share-insight".to_owned(),
            "data" => "data_share-data".to_owned(),
            "export" => "data_share-export".to_owned(),
            "receipt" => "receipt".to_owned(),
            "closure-receipt-ack" => "receipt-of-closure".to_owned(),
            _ => kind.to_string(),
        };
        out.single("kinds", Item::of(&file, *description, m), None);
    }
}

// ---------------------------------------------------------------------------------------------
// invalid/

/// A payload's CBOR value, to be edited.
fn value_of(m: &Message) -> Value {
    ciborium::from_reader(m.payload_bytes().as_slice()).unwrap()
}

fn canonical(v: &Value) -> Vec<u8> {
    cbor::to_canonical_vec(v).unwrap()
}

/// Encodes `v` as it stands, without sorting map keys.
fn as_is(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

fn entries(v: &mut Value) -> &mut Vec<(Value, Value)> {
    match v {
        Value::Map(entries) => entries,
        _ => panic!("not a map"),
    }
}

fn field<'v>(v: &'v mut Value, key: &str) -> &'v mut Value {
    entries(v).iter_mut().find(|(k, _)| k.as_text() == Some(key)).map(|(_, v)| v).unwrap()
}

fn without(mut v: Value, key: &str) -> Value {
    entries(&mut v).retain(|(k, _)| k.as_text() != Some(key));
    v
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    let e = entries(&mut v);
    e.retain(|(k, _)| k.as_text() != Some(key));
    e.push((Value::Text(key.into()), value));
    v
}

/// Replaces the first occurrence of `from` in `bytes` with `to`.
fn splice(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = bytes.windows(from.len()).position(|w| w == from).expect("the pattern occurs");
    [&bytes[..at], to, &bytes[at + from.len()..]].concat()
}

fn invalid(out: &mut Out, cast: &Cast, w: &Walk<'_>) {
    let vendor = &cast.vendor;
    let v_kid = *kid(vendor).as_bytes();
    let offer = w.message("offer");
    let offer_payload = offer.payload_bytes();
    let good = offer.bytes().to_vec();
    let single = |out: &mut Out, item: Item, code: Code| out.single("invalid", item, Some(code));

    // Signatures and keys.
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 0x01;
    single(
        out,
        Item::raw("bad-signature", "The last byte of the signature is changed.", flipped, &v_kid, Some(&offer_payload)),
        Code::BadSignature,
    );
    let tampered_payload = splice(&offer_payload, b"Twelve panels", b"Twenty panels");
    let tampered = raw::envelope(&raw::protected(&v_kid), &tampered_payload, &good[good.len() - 64..]);
    single(
        out,
        Item::raw(
            "bad-signature-tampered-payload",
            "The payload is changed (\"Twelve\" to \"Twenty\") under the original signature; it is still a valid payload.",
            tampered,
            &v_kid,
            Some(&tampered_payload),
        ),
        Code::BadSignature,
    );
    let as_customer = Payload { header: Header::public(kid(&cast.customer), T0), body: intent() }.encode().unwrap();
    single(
        out,
        Item::signed(
            "wrong-key",
            "The payload's `from` is the customer, but the vendor's key signed it (kid = vendor): kid ≠ from.",
            vendor,
            &as_customer,
        ),
        Code::WrongKey,
    );
    let not_a_point = (0u8..=255).find(|k| raw::small_y(*k).is_none()).map(raw_y).unwrap();
    let forged = payload_from(w, &not_a_point);
    single(
        out,
        Item::raw(
            "invalid-key",
            "The kid (and `from`) is 32 bytes that decode to no curve point.",
            raw::envelope(&raw::protected(&not_a_point), &forged, &[0x55; 64]),
            &not_a_point,
            Some(&forged),
        ),
        Code::InvalidKey,
    );

    // Envelope structure.
    single(
        out,
        Item::raw(
            "malformed-truncated",
            "The envelope is cut 10 bytes short.",
            good[..good.len() - 10].to_vec(),
            &v_kid,
            None,
        ),
        Code::Malformed,
    );
    single(
        out,
        Item::raw(
            "malformed-trailing-bytes",
            "A zero byte follows the envelope: more than one CBOR data item.",
            [good.as_slice(), &[0x00]].concat(),
            &v_kid,
            Some(&offer_payload),
        ),
        Code::Malformed,
    );
    single(
        out,
        Item::raw(
            "malformed-untagged",
            "The COSE_Sign1 array without its tag 18.",
            good[1..].to_vec(),
            &v_kid,
            Some(&offer_payload),
        ),
        Code::Malformed,
    );
    single(
        out,
        Item::raw("malformed-not-cbor", "Text, not CBOR.", b"hello, vendor".to_vec(), &v_kid, None),
        Code::Malformed,
    );
    let short_kid = [&[0xa2, 0x01, 0x27, 0x04][..], &raw::bstr(&v_kid[..31])].concat();
    single(
        out,
        Item::raw(
            "malformed-short-kid",
            "The kid is 31 bytes.",
            raw::envelope(&short_kid, &offer_payload, &good[good.len() - 64..]),
            &v_kid,
            Some(&offer_payload),
        ),
        Code::Malformed,
    );
    let extra = [&[0xa3, 0x01, 0x27, 0x03, 0x00, 0x04][..], &raw::bstr(&v_kid)].concat();
    single(
        out,
        Item::signed_with_protected(
            "malformed-extra-header",
            "The protected header also carries a content type (label 3), which the profile forbids.",
            vendor,
            &extra,
            &offer_payload,
        ),
        Code::Malformed,
    );
    let mut with_unprotected = raw::envelope(&raw::protected(&v_kid), &offer_payload, &good[good.len() - 64..]);
    let at = 2 + 40;
    with_unprotected.splice(at..at + 1, [0xa1, 0x04, 0x42, 0x31, 0x31]);
    single(
        out,
        Item::raw(
            "malformed-unprotected-header",
            "The unprotected header carries a kid; it must be empty.",
            with_unprotected,
            &v_kid,
            Some(&offer_payload),
        ),
        Code::Malformed,
    );
    let detached =
        [&[0xd2, 0x84][..], &raw::bstr(&raw::protected(&v_kid)), &[0xa0, 0xf6], &raw::bstr(&[0x11; 64])].concat();
    single(
        out,
        Item::raw("malformed-detached-payload", "The payload is detached (nil).", detached, &v_kid, None),
        Code::Malformed,
    );
    let short_sig = raw::envelope(&raw::protected(&v_kid), &offer_payload, &good[good.len() - 64..good.len() - 1]);
    single(
        out,
        Item::raw("malformed-short-signature", "The signature is 63 bytes.", short_sig, &v_kid, Some(&offer_payload)),
        Code::Malformed,
    );
    single(
        out,
        Item::signed("malformed-payload", "The signed payload is not CBOR.", vendor, b"\xff\xfe not cbor"),
        Code::Malformed,
    );
    let es256 = [&[0xa2, 0x01, 0x26, 0x04][..], &raw::bstr(&v_kid)].concat();
    single(
        out,
        Item::signed_with_protected(
            "unsupported-algorithm",
            "The protected header names ES256 (-7), not EdDSA (-8).",
            vendor,
            &es256,
            &offer_payload,
        ),
        Code::UnsupportedAlgorithm,
    );
    let cose_sign = [
        &[0xd8, 0x62, 0x84, 0x40, 0xa0][..],
        &raw::bstr(&offer_payload),
        &[0x81, 0x83],
        &raw::bstr(&raw::protected(&v_kid)),
        &[0xa0],
        &raw::bstr(&good[good.len() - 64..]),
    ]
    .concat();
    single(
        out,
        Item::raw(
            "unsupported-structure",
            "A COSE_Sign (tag 98) with one signer; Rapport uses only COSE_Sign1.",
            cose_sign,
            &v_kid,
            Some(&offer_payload),
        ),
        Code::UnsupportedStructure,
    );
    let big = "x".repeat(cbor::MAX_MESSAGE_SIZE);
    let mut big_offer = value_of(offer);
    *field(field(&mut big_offer, "body"), "description") = Value::Text(big);
    let big_payload = canonical(&big_offer);
    single(
        out,
        Item::signed(
            "too-large",
            "A 64 KiB description makes the envelope larger than 65 536 bytes.",
            vendor,
            &big_payload,
        ),
        Code::TooLarge,
    );

    // Determinism.
    let long_len = [
        &[0xd2, 0x84][..],
        &raw::bstr(&raw::protected(&v_kid)),
        &[0xa0, 0x5a],
        &(offer_payload.len() as u32).to_be_bytes(),
        &offer_payload,
        &raw::bstr(&good[good.len() - 64..]),
    ]
    .concat();
    single(
        out,
        Item::raw(
            "non-deterministic-envelope-length",
            "The payload's length is written in 4 bytes where 2 suffice; the signature is valid.",
            long_len,
            &v_kid,
            Some(&offer_payload),
        ),
        Code::NonDeterministic,
    );
    let long_tag = [&[0xd8, 0x12][..], &good[1..]].concat();
    single(
        out,
        Item::raw(
            "non-deterministic-tag",
            "Tag 18 written in two bytes (d8 12) instead of one (d2).",
            long_tag,
            &v_kid,
            Some(&offer_payload),
        ),
        Code::NonDeterministic,
    );
    let mut reordered = value_of(offer);
    entries(&mut reordered).reverse();
    single(
        out,
        Item::signed(
            "non-deterministic-key-order",
            "The payload's map keys are in reverse order; correctly signed.",
            vendor,
            &as_is(&reordered),
        ),
        Code::NonDeterministic,
    );
    single(
        out,
        Item::signed(
            "non-deterministic-integer",
            "The payload's `seq` 1 is written in two bytes (18 01); correctly signed.",
            vendor,
            &splice(&offer_payload, b"cseq\x01", b"cseq\x18\x01"),
        ),
        Code::NonDeterministic,
    );
    let mut indefinite = offer_payload.clone();
    indefinite[0] = 0xbf;
    indefinite.push(0xff);
    single(
        out,
        Item::signed(
            "non-deterministic-indefinite-length",
            "The payload's top-level map has indefinite length; correctly signed.",
            vendor,
            &indefinite,
        ),
        Code::NonDeterministic,
    );
    let mut undefined = value_of(offer);
    *field(field(&mut undefined, "body"), "title") = Value::Null;
    single(
        out,
        Item::signed(
            "non-deterministic-undefined",
            "The title is `undefined` (f7), which a deterministic encoder never writes for any value of the schema.",
            vendor,
            &splice(&canonical(&undefined), b"etitle\xf6", b"etitle\xf7"),
        ),
        Code::NonDeterministic,
    );

    // The payload: depth, version, kind, schema.
    let mut deep = Value::Array(vec![]);
    for _ in 0..20 {
        deep = Value::Array(vec![deep]);
    }
    single(
        out,
        Item::signed(
            "too-deep",
            "An extra header field nests 21 arrays: deeper than the limit of 16.",
            vendor,
            &canonical(&with(value_of(offer), "x", deep)),
        ),
        Code::TooDeep,
    );
    single(
        out,
        Item::signed(
            "unsupported-version",
            "The payload says `v: 2`.",
            vendor,
            &canonical(&with(value_of(offer), "v", Value::Integer(2.into()))),
        ),
        Code::UnsupportedVersion,
    );
    single(
        out,
        Item::signed(
            "unknown-kind",
            "The kind is `gift`, which version 1 does not define.",
            vendor,
            &canonical(&with(value_of(offer), "kind", Value::Text("gift".into()))),
        ),
        Code::UnknownKind,
    );
    let schema: Vec<(&str, &str, Value)> = vec![
        ("schema-violation-missing-field", "The offer's body has no `title`.", {
            let mut v = value_of(offer);
            let body = field(&mut v, "body").clone();
            *field(&mut v, "body") = without(body, "title");
            v
        }),
        ("schema-violation-unknown-field", "The header has an unknown key `color`.", {
            with(value_of(offer), "color", Value::Text("blue".into()))
        }),
        ("schema-violation-wrong-type", "`seq` is a text string.", {
            with(value_of(offer), "seq", Value::Text("1".into()))
        }),
        ("schema-violation-null", "`re` is null; optional fields are left out, never null.", {
            with(value_of(offer), "re", Value::Null)
        }),
        ("schema-violation-float", "`at` is a floating-point number.", {
            with(value_of(offer), "at", Value::Float(1.5))
        }),
        ("schema-violation-short-id", "`rel` is 15 bytes, not 16.", {
            with(value_of(offer), "rel", Value::Bytes(vec![7; 15]))
        }),
        (
            "schema-violation-public-intent-with-rel",
            "An intent, which is always public, carries `rel`, `to` and `seq` 1.",
            {
                let mut v = value_of(offer);
                *field(&mut v, "kind") = Value::Text("intent".into());
                let mut body = value_of(&cast.seal(Header::public(kid(vendor), T0), intent()));
                *field(&mut v, "body") = field(&mut body, "body").clone();
                v
            },
        ),
        (
            "schema-violation-bad-vocabulary",
            "A consent purpose is `dpv:Nonsense`, neither a built-in DPV term nor a URI.",
            {
                let mut v = value_of(w.message("grant"));
                *field(&mut v, "from") = Value::Bytes(v_kid.to_vec());
                let purposes = field(field(&mut v, "body"), "purposes");
                *purposes = Value::Array(vec![Value::Text("dpv:Nonsense".into())]);
                v
            },
        ),
    ];
    for (name, description, value) in schema {
        single(out, Item::signed(name, description, vendor, &canonical(&value)), Code::SchemaViolation);
    }
}

fn raw_y(k: u8) -> [u8; 32] {
    let mut b = [0; 32];
    b[0] = k;
    b
}

/// The offer's payload with `from` set to `key`.
fn payload_from(w: &Walk<'_>, key: &[u8; 32]) -> Vec<u8> {
    canonical(&with(value_of(w.message("offer")), "from", Value::Bytes(key.to_vec())))
}

impl Item {
    /// An envelope with this protected header, correctly signed by `key`.
    fn signed_with_protected(
        name: &str,
        description: &str,
        key: &SigningKey,
        protected: &[u8],
        payload: &[u8],
    ) -> Item {
        use ed25519_dalek::Signer as _;
        let sig = key.sign(&raw::sig_structure(protected, payload));
        Item::raw(
            name,
            description,
            raw::envelope(protected, payload, &sig.to_bytes()),
            key.verifying_key().as_bytes(),
            Some(payload),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// strict/

/// A public intent from `from`, made different by `nonce`, as payload bytes.
fn intent_payload(from: &[u8; 32], nonce: u32) -> Vec<u8> {
    let mut body = intent();
    if let Body::Intent(i) = &mut body {
        i.description = format!("Edge-case vector, attempt {nonce}.");
    }
    Payload { header: Header::public(KeyId::from_bytes(*from), T0), body }.encode().unwrap()
}

/// Signs `payload` under the kid `a` with secret scalar `secret` (so that `a` may be any
/// point, including a mixed-order one) and nonce `r`: S = r + k·secret.
fn sign_as(
    a: &[u8; 32],
    secret: &curve25519_dalek::Scalar,
    r: &curve25519_dalek::Scalar,
    payload: &[u8],
) -> (Vec<u8>, curve25519_dalek::Scalar) {
    let protected = raw::protected(a);
    let tbs = raw::sig_structure(&protected, payload);
    let big_r = EdwardsPoint::mul_base(r).compress().to_bytes();
    let k = raw::challenge(&big_r, a, &tbs);
    let s = r + k * secret;
    (raw::envelope(&protected, payload, &raw::signature(&big_r, &s.to_bytes())), k)
}

fn strict(out: &mut Out, cast: &Cast) {
    let strict = |out: &mut Out, item: Item, code: Option<Code>| out.single("strict", item, code);
    let identity = EdwardsPoint::default().compress().to_bytes();
    let zero = [0u8; 32];

    // Small-order keys: accepted by ZIP-215 (8·S·B = 8·R + 8·k·A holds with S = 0), refused here.
    let payload = intent_payload(&identity, 0);
    strict(
        out,
        Item::raw(
            "weak-key-identity",
            "kid is the identity point (order 1), R is the identity and S = 0: ZIP-215 accepts; strict verification refuses the small-order key.",
            raw::envelope(&raw::protected(&identity), &payload, &raw::signature(&identity, &zero)),
            &identity,
            Some(&payload),
        ),
        Some(Code::WeakKey),
    );
    let order8 = EIGHT_TORSION[1].compress().to_bytes();
    let payload = intent_payload(&order8, 0);
    strict(
        out,
        Item::raw(
            "weak-key-order-8",
            "kid is a point of order 8, R is the identity and S = 0: ZIP-215 accepts; strict verification refuses the small-order key.",
            raw::envelope(&raw::protected(&order8), &payload, &raw::signature(&identity, &zero)),
            &order8,
            Some(&payload),
        ),
        Some(Code::WeakKey),
    );

    // Non-canonical key encodings.
    let mut negative_zero = identity;
    negative_zero[31] |= 0x80;
    let payload = intent_payload(&negative_zero, 0);
    strict(
        out,
        Item::raw(
            "invalid-key-negative-zero",
            "kid is the identity with the sign bit set (x = 0 written as \"-0\"): RFC 8032 decoding fails; lenient decoders read the identity.",
            raw::envelope(&raw::protected(&negative_zero), &payload, &raw::signature(&identity, &zero)),
            &negative_zero,
            Some(&payload),
        ),
        Some(Code::InvalidKey),
    );
    let k = (0..19u8).find(|k| raw::small_y(*k).is_some_and(|p| !p.is_small_order())).unwrap();
    let unreduced = raw::unreduced_y(k);
    let payload = intent_payload(&unreduced, 0);
    strict(
        out,
        Item::raw(
            "invalid-key-unreduced-y",
            &format!("kid encodes y = p + {k} (not reduced mod p) for a point of large order: RFC 8032 decoding fails; lenient decoders reduce y."),
            raw::envelope(&raw::protected(&unreduced), &payload, &[0x22; 64]),
            &unreduced,
            Some(&payload),
        ),
        Some(Code::InvalidKey),
    );

    // Signatures from a real key, bent.
    let key = &cast.customer;
    let a = *key.verifying_key().as_bytes();
    let m = cast.seal(Header::public(KeyId::from_bytes(a), T0), intent());
    let good = m.bytes().to_vec();
    let payload = m.payload_bytes();
    let sig: [u8; 64] = good[good.len() - 64..].try_into().unwrap();
    let (r, s) = sig.split_at(32);
    let s_plus_l = raw::add_order(s.try_into().unwrap());
    let bent = raw::envelope(&raw::protected(&a), &payload, &raw::signature(r.try_into().unwrap(), &s_plus_l));
    strict(
        out,
        Item::raw(
            "non-canonical-s",
            "A valid signature with S replaced by S + L (same value mod L): refused as malleable.",
            bent,
            &a,
            Some(&payload),
        ),
        Some(Code::BadSignature),
    );

    // A key whose secret scalar we hold, for hand-made signatures.
    let secret = raw::scalar("strict-key");
    let big_a = EdwardsPoint::mul_base(&secret);
    let a = big_a.compress().to_bytes();
    let payload = intent_payload(&a, 0);
    let protected = raw::protected(&a);
    let tbs = raw::sig_structure(&protected, &payload);
    let k = raw::challenge(&identity, &a, &tbs);
    let s = k * secret;
    strict(
        out,
        Item::raw(
            "small-order-r",
            "R is the identity and S = k·a, so [S]B − [k]A = R holds exactly (cofactorless and cofactored); strict verification refuses a small-order R.",
            raw::envelope(&protected, &payload, &raw::signature(&identity, &s.to_bytes())),
            &a,
            Some(&payload),
        ),
        Some(Code::BadSignature),
    );
    let unreduced_identity = raw::unreduced_y(1);
    let k = raw::challenge(&unreduced_identity, &a, &tbs);
    let s = k * secret;
    strict(
        out,
        Item::raw(
            "non-canonical-r",
            "R is the identity written as y = p + 1, with S = k·a: ZIP-215 accepts; strict verification refuses (small order, and not the canonical encoding of [S]B − [k]A).",
            raw::envelope(&protected, &payload, &raw::signature(&unreduced_identity, &s.to_bytes())),
            &a,
            Some(&payload),
        ),
        Some(Code::BadSignature),
    );

    // A mixed-order key A = a·B + T, T of order 8. An honest-looking signature S = r + k·a
    // satisfies [S]B − [k]A = R − [k]T: the cofactorless equation holds exactly when k·T = 0
    // (k ≡ 0 mod 8); the cofactored equation of ZIP-215 always holds.
    let mixed = (big_a + EIGHT_TORSION[1]).compress().to_bytes();
    let mut found = (None, None);
    for nonce in 0u32.. {
        let payload = intent_payload(&mixed, nonce);
        let (envelope, k) = sign_as(&mixed, &secret, &raw::scalar(&format!("strict-nonce-{nonce}")), &payload);
        let holds = (EIGHT_TORSION[1] * k).is_identity();
        match (holds, &found) {
            (true, (None, _)) => found.0 = Some((envelope, payload)),
            (false, (_, None)) => found.1 = Some((envelope, payload)),
            _ => {}
        }
        if let (Some(_), Some(_)) = found {
            break;
        }
    }
    let (Some((accepted, accepted_payload)), Some((refused, refused_payload))) = found else { unreachable!() };
    strict(
        out,
        Item::raw(
            "mixed-order-key-accepted",
            "kid is a·B + T with T of order 8 (mixed order, not small): such keys are allowed, and this signature satisfies the cofactorless equation because k ≡ 0 mod 8.",
            accepted,
            &mixed,
            Some(&accepted_payload),
        ),
        None,
    );
    strict(
        out,
        Item::raw(
            "mixed-order-key-refused",
            "The same mixed-order key, a signature whose k is not ≡ 0 mod 8: ZIP-215's cofactored equation holds, the strict cofactorless one does not.",
            refused,
            &mixed,
            Some(&refused_payload),
        ),
        Some(Code::BadSignature),
    );
}

// ---------------------------------------------------------------------------------------------
// sequences/

fn sequences(out: &mut Out, cast: &Cast, w: &Walk<'_>) {
    use Role::{Customer as C, Vendor as V};
    out.sequence(
        "lifecycle",
        "A whole relationship, from the vendor's offer to the customer's closure receipt: negotiation with a counter-proposal, consent, a countersigned usage report, an impact report, data both ways, a problem report, an introduction, revocation, and friendly separation with export, disposition and closure. Every message is accepted.",
        w.items(),
        None,
    );

    // Each defect follows a prefix of the lifecycle.
    let defect = |out: &mut Out,
                  name: &str,
                  description: &str,
                  after: &str,
                  make: &dyn Fn(&mut Walk<'_>) -> Message,
                  code: Code| {
        let mut p = w.upto(after);
        let m = make(&mut p);
        let mut items = p.items();
        items.push(Item::of("defect", describe(&m), &m));
        out.sequence(name, description, items, Some(code));
    };

    defect(out, "duplicate-is-idempotent-then-out-of-state", "The offer is delivered twice (a duplicate is accepted and changes nothing); then the customer grants consent before any terms: `consent_grant` is not allowed in phase proposed.", "offer", &|p| {
        p.messages.push(("offer-again".into(), p.message("offer").clone()));
        let h = p.next(C);
        p.craft(h, grant())
    }, Code::OutOfState);
    defect(
        out,
        "out-of-state-share-while-separating",
        "After the separation notice, the vendor shares an insight: only the separation flow may follow.",
        "notice",
        &|p| {
            let h = p.next(V);
            p.craft(h, insight())
        },
        Code::OutOfState,
    );
    defect(
        out,
        "not-permitted-vendor-grant",
        "The vendor sends a consent grant; only the customer grants consent.",
        "acceptance",
        &|p| {
            let h = p.next(V);
            p.craft(h, grant())
        },
        Code::NotPermitted,
    );
    defect(
        out,
        "consent-required-no-grant",
        "Terms are agreed but no consent was granted; the vendor shares an insight. Consent is default-deny.",
        "acceptance",
        &|p| {
            let h = p.next(V);
            p.craft(h, insight())
        },
        Code::ConsentRequired,
    );
    defect(
        out,
        "consent-required-out-of-scope",
        "The grant covers location and panel telemetry; the vendor shares data about the customer's finances.",
        "grant",
        &|p| {
            let h = p.next(V);
            p.craft(h, share(ShareContent::Insight, Some("dpv:ServiceOptimisation"), &["pd:Financial"], b"{}", "scope"))
        },
        Code::ConsentRequired,
    );
    defect(out, "consent-required-after-revocation", "The customer revoked the grant; the vendor's next share, covered by the revoked grant alone, is refused at once.", "revocation", &|p| {
        let h = p.next(V);
        p.craft(h, insight())
    }, Code::ConsentRequired);
    defect(
        out,
        "chain-gap",
        "The vendor's next message says seq n + 2: message n + 1 is missing.",
        "grant",
        &|p| {
            let mut h = p.next(V);
            h.seq += 1;
            p.craft(h, Body::UsageReport(report("energy delivered", "kWh", T0, 1)))
        },
        Code::ChainGap,
    );
    defect(
        out,
        "fork",
        "The vendor sends a second, different message in the place (seq and prev) of its usage report.",
        "usage-report",
        &|p| {
            let h = p.message("usage-report").header().clone();
            p.craft(h, Body::UsageReport(report("energy delivered", "kWh", T0 + DAY, 999)))
        },
        Code::Fork,
    );
    defect(
        out,
        "wrong-relationship-replay",
        "A message signed by the vendor for another relationship with the same customer is replayed into this one.",
        "grant",
        &|p| {
            let other = Header::opening(rel_id("other"), kid(&cast.vendor), kid(&cast.customer), p.now + MINUTE);
            p.craft(other, offer())
        },
        Code::WrongRelationship,
    );
    defect(
        out,
        "not-a-party",
        "An outsider sends a message into the relationship.",
        "grant",
        &|p| {
            let mut h = p.next(V);
            h.from = kid(&cast.outsider);
            h.seq = 1;
            h.prev = None;
            h.ack = None;
            p.craft(h, Body::UsageReport(report("energy delivered", "kWh", T0, 1)))
        },
        Code::NotAParty,
    );
    defect(
        out,
        "wrong-recipient",
        "The vendor addresses its next message to an outsider instead of the customer.",
        "grant",
        &|p| {
            let mut h = p.next(V);
            h.to = Some(kid(&cast.outsider));
            p.craft(h, Body::UsageReport(report("energy delivered", "kWh", T0, 1)))
        },
        Code::WrongRecipient,
    );
    defect(
        out,
        "bad-ack",
        "The vendor's `ack` names a message the customer never sent.",
        "grant",
        &|p| {
            let mut h = p.next(V);
            h.ack = Some(MessageId::of(b"no such message"));
            p.craft(h, Body::UsageReport(report("energy delivered", "kWh", T0, 1)))
        },
        Code::BadAck,
    );
    defect(
        out,
        "clock-skew-backwards",
        "The vendor's next message is dated before its previous one.",
        "usage-report",
        &|p| {
            let mut h = p.next(V);
            h.created_at = p.message("usage-report").header().created_at - MINUTE;
            p.craft(h, Body::ImpactReport(report("CO2 emissions avoided", "kg", T0, 1)))
        },
        Code::ClockSkew,
    );
    defect(
        out,
        "expired-proposal",
        "The customer's proposal expires 7 days after it was made; the vendor accepts it 8 days later.",
        "proposal",
        &|p| {
            let mut h = p.next(V);
            h.created_at = p.message("proposal").header().created_at + 8 * DAY;
            p.craft(h, Body::TermsAcceptance(TermsAcceptance { proposal: p.id("proposal") }))
        },
        Code::Expired,
    );
    defect(out, "stale-proposal", "The vendor made a counter-proposal, which supersedes the customer's; the vendor then tries to accept the customer's original proposal.", "rejection", &|p| {
        let h = p.next(V);
        p.craft(h, Body::TermsAcceptance(TermsAcceptance { proposal: p.id("proposal") }))
    }, Code::StaleProposal);
    defect(
        out,
        "unknown-reference",
        "The customer countersigns a report that does not exist.",
        "grant",
        &|p| {
            let h = p.next(C);
            p.craft(h, Body::Countersignature(Countersignature { report: MessageId::of(b"no such report") }))
        },
        Code::UnknownReference,
    );
    defect(
        out,
        "notice-too-short",
        "The agreed notice period is 30 days; the customer gives notice effective in 10.",
        "grant",
        &|p| {
            let h = p.next(C);
            let effective = h.created_at + 10 * DAY;
            p.craft(h, Body::SeparationNotice(SeparationNotice { effective, reason: None, disposition: vec![] }))
        },
        Code::NoticeTooShort,
    );
    defect(out, "incomplete-disposition", "The notice asked for location data to be returned and deleted; the vendor's statement says only deleted, and omits the telemetry.", "export", &|p| {
        let h = p.next(V);
        p.craft(h, Body::DispositionStatement(DispositionStatement {
            notice: p.id("notice"),
            items: vec![DispositionItem { category: category("pd:Location"), outcome: Outcome::Deleted, export: None, legal_basis: None, until: None }],
        }))
    }, Code::IncompleteDisposition);
    defect(out, "closed", "After the closure receipt, the vendor sends another usage report: a closed relationship takes nothing but acknowledgements.", "closure-receipt-ack", &|p| {
        let h = p.next(V);
        p.craft(h, Body::UsageReport(report("energy delivered", "kWh", T0, 1)))
    }, Code::Closed);

    let m = cast.seal(Header::opening(rel_id("unopened"), kid(&cast.customer), kid(&cast.vendor), T0), grant());
    out.sequence(
        "unknown-relationship",
        "The first message of an unknown relationship is a consent grant; only an offer or a terms proposal opens one.",
        vec![Item::of("grant", describe(&m), &m)],
        Some(Code::UnknownRelationship),
    );
    let mut p = w.upto("grant");
    let h = p.next(V);
    let m = p.craft(h, Body::UsageReport(report("energy delivered", "kWh", T0 + DAY, 412)));
    let mut bytes = m.bytes().to_vec();
    let at = bytes.len() - 1;
    bytes[at] ^= 0x80;
    let mut items = p.items();
    items.push(Item::raw(
        "tampered",
        "usage_report with a changed signature byte",
        bytes,
        m.signer().as_bytes(),
        Some(&m.payload_bytes()),
    ));
    out.sequence(
        "bad-signature",
        "A usage report arrives with one signature byte changed: refused before the relationship sees it.",
        items,
        Some(Code::BadSignature),
    );
}

// ---------------------------------------------------------------------------------------------
// logs/

/// The lifecycle's envelopes in a fixed shuffled order (Fisher–Yates from a seeded ChaCha20).
fn shuffled(items: &[Item]) -> Vec<Item> {
    let mut rng = ChaCha20Rng::from_seed(digest("shuffle"));
    let mut out = items.to_vec();
    for i in (1..out.len()).rev() {
        let j = (rng.next_u32() as usize) % (i + 1);
        out.swap(i, j);
    }
    out
}

fn logs(out: &mut Out, cast: &Cast, w: &Walk<'_>) {
    use Role::Vendor as V;
    let all = w.items();
    out.log("lifecycle", "The whole lifecycle as an export holds it, in causal order: it verifies.", all.clone(), None);
    out.log(
        "lifecycle-shuffled",
        "The same messages in a shuffled order: a log's verdict does not depend on the order of its envelopes.",
        shuffled(&all),
        None,
    );
    let mut replayed = all.clone();
    replayed.insert(9, all[6].clone());
    out.log("replay", "One envelope (the grant) appears twice.", replayed, Some(Code::Replay));
    let mut gap = all.clone();
    let usage = gap.iter().position(|i| i.name == "usage-report").unwrap();
    gap.remove(usage);
    out.log("chain-gap", "The vendor's usage report is missing from the export.", gap, Some(Code::ChainGap));
    let mut p = w.upto("usage-report");
    let fork_header = p.message("usage-report").header().clone();
    let fork = p.craft(fork_header, Body::UsageReport(report("energy delivered", "kWh", T0 + DAY, 999)));
    let mut forked = all.clone();
    forked.push(Item::of("fork", "a second usage_report in the same place of the vendor's chain", &fork));
    out.log("fork", "Two different vendor messages share one seq and prev.", forked, Some(Code::Fork));
    let mut tampered = all.clone();
    let i = tampered.iter().position(|i| i.name == "countersignature").unwrap();
    let payload = tampered[i].payload.clone().unwrap();
    let report_id = *w.id("usage-report").as_bytes();
    let mut other_report = report_id;
    other_report[31] ^= 0x01;
    let bad_payload = splice(&payload, &report_id, &other_report);
    let bytes = &tampered[i].bytes;
    tampered[i].bytes = raw::envelope(&bytes[4..42], &bad_payload, &bytes[bytes.len() - 64..]);
    tampered[i].payload = Some(bad_payload);
    tampered[i].name = "countersignature-tampered".into();
    out.log(
        "tampered",
        "After signing, one byte of the report id in the countersignature's payload is changed.",
        tampered,
        Some(Code::BadSignature),
    );
    let outsider = {
        let mut h = p.next(V);
        h.from = kid(&cast.outsider);
        h.seq = 1;
        h.prev = None;
        p.craft(h, Body::UsageReport(report("energy delivered", "kWh", T0, 1)))
    };
    let mut with_outsider = all.clone();
    with_outsider.push(Item::of("outsider", "a message from an outsider", &outsider));
    out.log(
        "not-a-party",
        "The export holds a message signed by someone who is not a party.",
        with_outsider,
        Some(Code::NotAParty),
    );
    let mut other = Walk::open(
        cast,
        "other",
        Role::Customer,
        "proposal",
        Body::TermsProposal(TermsProposal { role: Role::Customer, terms: terms(30, per_kwh(18)) }),
    );
    other.send("acceptance", V, Body::TermsAcceptance(TermsAcceptance { proposal: other.id("proposal") }));
    let mut mixed = all.clone();
    mixed.push(Item::of(
        "foreign",
        "the vendor's acceptance in another relationship with the same customer",
        other.message("acceptance"),
    ));
    out.log(
        "wrong-relationship",
        "The export mixes in a message of another relationship between the same two parties.",
        mixed,
        Some(Code::WrongRelationship),
    );
    let mut no_opener = all.clone();
    no_opener.remove(0);
    out.log(
        "unknown-relationship",
        "The opening offer is missing: no message opens the relationship.",
        no_opener,
        Some(Code::UnknownRelationship),
    );
    let mut p = w.upto("proposal");
    let mut h = p.next(V);
    h.created_at = p.message("proposal").header().created_at + 8 * DAY;
    let late = p.craft(h, Body::TermsAcceptance(TermsAcceptance { proposal: p.id("proposal") }));
    let mut expired = p.items();
    expired.push(Item::of("late-acceptance", describe(&late), &late));
    out.log(
        "expired",
        "The vendor accepts the customer's proposal a day after it expired.",
        expired,
        Some(Code::Expired),
    );
}
