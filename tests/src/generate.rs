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

mod invalid;
mod logs;
mod seals;
mod sequences;
mod strict;
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
    invalid::invalid(&mut out, &cast, &walk);
    strict::strict(&mut out, &cast);
    sequences::sequences(&mut out, &cast, &walk);
    logs::logs(&mut out, &cast, &walk);
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
