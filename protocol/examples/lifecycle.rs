//! A relationship from intent to friendly separation, on the protocol core alone.
//!
//! A customer and a vendor, each with its own key and its own copy of the relationship,
//! exchange signed messages: every message is sealed by its sender, opened (strictly verified)
//! and applied by both sides, and at the end each side's log is exported and verified as an
//! auditor would. No network: the node daemon carries the same bytes over libp2p.
//!
//! `cargo run -p rapport-protocol --example lifecycle`; exits 0 only if every step held.

use std::process::ExitCode;

use ed25519_dalek::SigningKey;
use rapport_protocol::*;

/// 2026-01-01T00:00:00Z.
const T0: Timestamp = 1_767_225_600_000;
const DAY: u64 = 86_400_000;

/// One party: its key and its copy of the relationship.
struct Party {
    name: &'static str,
    key: SigningKey,
    rel: Option<Relationship>,
}

impl Party {
    fn kid(&self) -> KeyId {
        KeyId::from_bytes(self.key.verifying_key().to_bytes())
    }
}

struct Demo {
    customer: Party,
    vendor: Party,
    now: Timestamp,
    step: usize,
}

type Result<T> = std::result::Result<T, String>;

impl Demo {
    fn party(&mut self, role: Role) -> (&mut Party, &mut Party) {
        match role {
            Role::Customer => (&mut self.customer, &mut self.vendor),
            Role::Vendor => (&mut self.vendor, &mut self.customer),
        }
    }

    /// `role` seals `body` as its next message; both parties open and apply it.
    fn send(&mut self, role: Role, body: Body, what: &str) -> Result<MessageId> {
        self.now += 60_000;
        let now = self.now;
        let (sender, receiver) = self.party(role);
        let header = match (&sender.rel, body.kind().class()) {
            (Some(rel), Class::Ack) => Header::ack(Some(rel.id()), sender.kid(), receiver.kid(), now),
            (Some(rel), _) => rel.next_header(role, now),
            (None, _) => Header::opening(RelationshipId::from_bytes([7; 16]), sender.kid(), receiver.kid(), now),
        };
        let sealed = Message::seal(Payload { header, body }, &sender.key).map_err(|e| e.to_string())?;
        for party in [&mut *sender, &mut *receiver] {
            // Each side verifies the bytes it holds; nobody trusts the other's parse.
            let m = Message::open(sealed.bytes()).map_err(|e| format!("{}: {e}", party.name))?;
            match party.rel.as_mut() {
                Some(rel) => rel.handle(&m, now, Policy::LIVE).map(drop),
                None => Relationship::open(&m, now, Policy::LIVE).map(|(rel, _)| party.rel = Some(rel)),
            }
            .map_err(|e| format!("{} refused {}: {e}", party.name, m.kind()))?;
        }
        self.step += 1;
        let phase = self.customer.rel.as_ref().map_or(Phase::Proposed, Relationship::phase);
        println!(
            "{:>2}. {:<8} {:<22} {:<11} {}  {}",
            self.step,
            sender_name(role),
            sealed.kind().as_str(),
            phase.as_str(),
            &sealed.id().to_hex()[..12],
            what
        );
        Ok(sealed.id())
    }

    /// `role` tries something the protocol forbids; both sides must refuse it.
    fn refused(&mut self, role: Role, body: Body, expect: Code, what: &str) -> Result<()> {
        let now = self.now + 60_000;
        let (sender, receiver) = self.party(role);
        let rel = receiver.rel.as_mut().ok_or("no relationship")?;
        let m = Message::seal(Payload { header: rel.next_header(role, now), body }, &sender.key)
            .map_err(|e| e.to_string())?;
        match rel.handle(&m, now, Policy::LIVE) {
            Err(e) if e.code == expect => {
                println!("    {:<8} {:<22} refused: {}  {}", sender_name(role), m.kind().as_str(), e.code, what);
                Ok(())
            }
            other => Err(format!("expected {expect}, got {other:?}")),
        }
    }
}

fn sender_name(role: Role) -> &'static str {
    match role {
        Role::Customer => "customer",
        Role::Vendor => "vendor",
    }
}

fn terms() -> Result<Terms> {
    Ok(Terms {
        duration: 365 * 86_400,
        renewal: Renewal::OptIn,
        notice_period: 30 * 86_400,
        price: Price {
            model: PriceModel::PerUsage,
            amount: Money::new("EUR", 20),
            metric: Some("kWh delivered".into()),
            threshold: None,
        },
        data: DataTerms { purposes: vec![purpose()?], categories: vec![location()?] },
        portability: Portability { format: "application/json".into(), deadline: 30 * 86_400 },
        deletion_deadline: 60 * 86_400,
        exit_fee: Money::new("EUR", 0),
    })
}

fn purpose() -> Result<Purpose> {
    Purpose::new("dpv:ServiceProvision")
}

fn location() -> Result<Category> {
    Category::new("pd:Location")
}

fn run() -> Result<()> {
    use Role::{Customer as C, Vendor as V};
    let mut d = Demo {
        customer: Party { name: "customer", key: SigningKey::from_bytes(&[1; 32]), rel: None },
        vendor: Party { name: "vendor", key: SigningKey::from_bytes(&[2; 32]), rel: None },
        now: T0,
        step: 0,
    };

    // The intent is public: it names no relationship, and anyone can verify it.
    let intent = Payload {
        header: Header::public(d.customer.kid(), T0),
        body: Body::Intent(Intent {
            title: "Solar panels for a terraced house".into(),
            description: "About 20 m² of south-facing roof; lease with maintenance.".into(),
            tags: vec!["solar".into()],
            budget: Some(Money::new("EUR", 400_000)),
        }),
    };
    let intent = Message::seal(intent, &d.customer.key).map_err(|e| e.to_string())?;
    Message::open(intent.bytes()).map_err(|e| e.to_string())?;
    println!(" #  sender   kind                   phase       id            what");
    println!(
        " 0. customer intent (public)        -           {}  asks the market for solar",
        &intent.id().to_hex()[..12]
    );

    let offer = Body::Offer(Offer {
        title: "Rooftop solar lease".into(),
        description: "Twelve panels and a battery, installed and maintained.".into(),
        price: terms()?.price,
        terms: Some(terms()?),
    });
    d.send(V, offer, "answers with an offer, opening the relationship")?;
    let proposal = d.send(C, Body::TermsProposal(TermsProposal { role: C, terms: terms()? }), "proposes terms")?;
    d.send(V, Body::TermsAcceptance(TermsAcceptance { proposal }), "accepts: the two messages prove the deal")?;
    let share = |content| {
        Ok::<_, String>(Body::DataShare(DataShare {
            content,
            purpose: Some(purpose()?),
            categories: vec![location()?],
            commitment: Digest32::commit(&[9; SALT_LEN], b"{\"roof\":\"south\"}"),
            media_type: "application/json".into(),
            size: 16,
        }))
    };
    d.refused(V, share(ShareContent::Insight)?, Code::ConsentRequired, "consent is default-deny")?;
    let grant = d.send(
        C,
        Body::ConsentGrant(ConsentGrant {
            purposes: vec![purpose()?],
            categories: vec![location()?],
            third_party_sharing: false,
            retention: 365 * 86_400,
            expires: None,
        }),
        "grants consent: service provision, location only",
    )?;
    let usage =
        Report { metric: "energy delivered".into(), unit: "kWh".into(), start: T0, end: T0 + 30 * DAY, value: 412 };
    let report = d.send(V, Body::UsageReport(usage), "reports 412 kWh for the month")?;
    d.send(C, Body::Countersignature(Countersignature { report }), "countersigns: a jointly signed bill")?;
    d.send(V, share(ShareContent::Insight)?, "shares an insight back (only its salted hash is signed)")?;
    d.send(
        V,
        Body::Introduction(Introduction {
            party: ThirdParty { name: "Northwind Roofing".into(), key: None, contact: None },
            offering: "A roof inspection".into(),
            commission: Commission { basis: CommissionBasis::None, amount: None, basis_points: None },
        }),
        "introduces a roofer, stating no commission",
    )?;
    d.send(C, Body::ConsentRevocation(ConsentRevocation { grant, reason: None }), "revokes the consent")?;
    d.refused(V, share(ShareContent::Insight)?, Code::ConsentRequired, "revocation took effect at once")?;
    let effective = d.now + 60_000 + 30 * DAY;
    let notice = d.send(
        C,
        Body::SeparationNotice(SeparationNotice {
            effective,
            reason: Some("Moving abroad".into()),
            disposition: vec![Disposition { category: location()?, action: Action::ReturnAndDelete }],
        }),
        "gives 30 days' notice: return and delete my location data",
    )?;
    let bundle = b"{\"location\":\"51.5072,-0.1276\"}";
    d.send(
        V,
        Body::DataShare(DataShare {
            content: ShareContent::Export,
            purpose: None,
            categories: vec![location()?],
            commitment: Digest32::commit(&[8; SALT_LEN], bundle),
            media_type: "application/json".into(),
            size: bundle.len() as u64,
        }),
        "returns the data as an export bundle",
    )?;
    let statement = d.send(
        V,
        Body::DispositionStatement(DispositionStatement {
            notice,
            items: vec![DispositionItem {
                category: location()?,
                outcome: Outcome::ReturnedAndDeleted,
                export: Some(Digest32::of(bundle)),
                legal_basis: None,
                until: None,
            }],
        }),
        "states: returned, then deleted",
    )?;
    let closure =
        d.send(C, Body::ClosureReceipt(ClosureReceipt { statement }), "confirms; the relationship is closed")?;
    d.send(V, Body::Receipt(Receipt { message: closure }), "acknowledges the closure")?;
    d.refused(
        V,
        Body::UsageReport(Report { metric: "x".into(), unit: "x".into(), start: T0, end: T0 + 1, value: 1 }),
        Code::Closed,
        "nothing follows a closure",
    )?;

    // Each side exports its log; an auditor verifies both, and they hold the same messages.
    let mut exports = Vec::new();
    for party in [&d.customer, &d.vendor] {
        let rel = party.rel.as_ref().ok_or("no relationship")?;
        let export: Vec<Vec<u8>> = rel.log().iter().chain(rel.acknowledgements()).map(|m| m.bytes().to_vec()).collect();
        let verified = log::verify(&export).map_err(|e| format!("{}'s export: {e}", party.name))?;
        println!(
            "{}'s export: {} messages, {} acknowledgements, verified; final phase {}",
            party.name,
            verified.chained,
            verified.acknowledgements,
            verified.phase()
        );
        let mut ids: Vec<MessageId> = export.iter().map(|b| MessageId::of(b)).collect();
        ids.sort();
        exports.push(ids);
    }
    if exports[0] != exports[1] {
        return Err("the two exports hold different messages".into());
    }
    println!("both exports hold the same {} signed messages", exports[0].len());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lifecycle: {e}");
            ExitCode::FAILURE
        }
    }
}
