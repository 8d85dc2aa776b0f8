//! State machine tests: a two-party harness over simulated time.

use ed25519_dalek::SigningKey;

use super::*;
use crate::message::{self as msg, Body, Header, Kind, Role};
use crate::vocab::{Category, Purpose};
use crate::{Digest32, Payload};
use msg::*;

const T0: Timestamp = 1_750_000_000_000;
const DAY: u64 = 86_400_000;

pub(crate) fn terms(notice_days: u64) -> Terms {
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
        data: DataTerms {
            purposes: vec![Purpose::new("dpv:ServiceProvision").unwrap()],
            categories: vec![Category::new("pd:Location").unwrap()],
        },
        portability: Portability { format: "application/json".into(), deadline: 30 * 86_400 },
        deletion_deadline: 30 * 86_400,
        exit_fee: Money::new("EUR", 0),
    }
}

struct Pair {
    keys: [SigningKey; 2],
    rel: Option<Relationship>,
    now: Timestamp,
}

fn role_key(p: &Pair, r: Role) -> &SigningKey {
    &p.keys[slot(r)]
}

impl Pair {
    fn new() -> Pair {
        Pair { keys: [SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32])], rel: None, now: T0 }
    }
    fn kid(&self, r: Role) -> KeyId {
        KeyId::from_bytes(role_key(self, r).verifying_key().to_bytes())
    }
    fn seal(&self, header: Header, body: Body) -> Message {
        let role = if header.from == self.kid(Role::Customer) { Role::Customer } else { Role::Vendor };
        Message::seal(Payload { header, body }, role_key(self, role)).unwrap()
    }
    fn open_with(&mut self, role: Role, body: Body) -> Vec<Event> {
        let h = Header::opening(RelationshipId::from_bytes([5; 16]), self.kid(role), self.kid(role.other()), self.now);
        let m = self.seal(h, body);
        let (rel, events) = Relationship::open(&m, self.now, Policy::LIVE).unwrap();
        self.rel = Some(rel);
        events
    }
    fn make(&self, role: Role, body: Body) -> Message {
        let h = self.rel.as_ref().unwrap().next_header(role, self.now);
        self.seal(h, body)
    }
    fn send(&mut self, role: Role, body: Body) -> Result<Vec<Event>, super::Error> {
        self.now += 1000;
        let m = self.make(role, body);
        self.rel.as_mut().unwrap().handle(&m, self.now, Policy::LIVE)
    }
    fn ok(&mut self, role: Role, body: Body) -> MessageId {
        let events = self.send(role, body).unwrap();
        match events[0] {
            Event::Accepted { id, .. } => id,
            ref other => panic!("unexpected {other:?}"),
        }
    }
    fn code(&mut self, role: Role, body: Body) -> Code {
        self.send(role, body).unwrap_err().code
    }
    fn phase(&self) -> Phase {
        self.rel.as_ref().unwrap().phase()
    }
}

fn offer() -> Body {
    Body::Offer(Offer {
        title: "Solar panel lease".into(),
        description: String::new(),
        price: terms(0).price,
        terms: None,
    })
}

fn proposal(role: Role, t: Terms) -> Body {
    Body::TermsProposal(TermsProposal { role, terms: t })
}

fn grant() -> Body {
    Body::ConsentGrant(ConsentGrant {
        purposes: vec![Purpose::new("dpv:ServiceProvision").unwrap()],
        categories: vec![Category::new("pd:Location").unwrap()],
        third_party_sharing: false,
        retention: 90 * 86_400,
        expires: None,
    })
}

fn share() -> Body {
    Body::DataShare(DataShare {
        content: ShareContent::Insight,
        purpose: Some(Purpose::new("dpv:ServiceProvision").unwrap()),
        categories: vec![Category::new("pd:Location").unwrap()],
        commitment: Digest32::commit(&[3; 32], b"{\"kwh\": 12}"),
        media_type: "application/json".into(),
        size: 11,
    })
}

fn active(p: &mut Pair, notice_days: u64) -> MessageId {
    p.open_with(Role::Vendor, offer());
    let prop = p.ok(Role::Customer, proposal(Role::Customer, terms(notice_days)));
    p.ok(Role::Vendor, Body::TermsAcceptance(TermsAcceptance { proposal: prop }));
    prop
}

#[test]
fn full_lifecycle_emits_exact_events() {
    let mut p = Pair::new();
    let events = p.open_with(Role::Vendor, offer());
    assert!(matches!(events.as_slice(), [Event::Accepted { kind: Kind::Offer, from: Role::Vendor, .. }]));
    assert_eq!(p.phase(), Phase::Proposed);

    let events = p.send(Role::Customer, proposal(Role::Customer, terms(7))).unwrap();
    assert!(matches!(
        events.as_slice(),
        [
            Event::Accepted { kind: Kind::TermsProposal, .. },
            Event::PhaseChanged { from: Phase::Proposed, to: Phase::Negotiating }
        ]
    ));
    let prop = match events[0] {
        Event::Accepted { id, .. } => id,
        _ => unreachable!(),
    };
    let events = p.send(Role::Vendor, Body::TermsAcceptance(TermsAcceptance { proposal: prop })).unwrap();
    let acc = match events[0] {
        Event::Accepted { id, .. } => id,
        _ => unreachable!(),
    };
    assert_eq!(
        events[1..],
        [
            Event::Agreed { proposal: prop, acceptance: acc },
            Event::PhaseChanged { from: Phase::Negotiating, to: Phase::Active }
        ]
    );
    let g = p.ok(Role::Customer, grant());
    assert_eq!(p.rel.as_ref().unwrap().grants().len(), 1);
    let report = p.ok(
        Role::Vendor,
        Body::UsageReport(Report { metric: "kWh".into(), unit: "kWh".into(), start: T0, end: T0 + DAY, value: 42 }),
    );
    let events = p.send(Role::Customer, Body::Countersignature(Countersignature { report })).unwrap();
    assert!(matches!(events[1], Event::Countersigned { report: r, .. } if r == report));
    p.ok(Role::Vendor, share());
    p.ok(
        Role::Vendor,
        Body::Introduction(Introduction {
            party: ThirdParty { name: "Roof Co".into(), key: None, contact: None },
            offering: "roof inspection".into(),
            commission: Commission { basis: CommissionBasis::None, amount: None, basis_points: None },
        }),
    );
    let events = p.send(Role::Customer, Body::ConsentRevocation(ConsentRevocation { grant: g, reason: None })).unwrap();
    assert!(matches!(events[1], Event::ConsentRevoked { grant, .. } if grant == g));
    assert_eq!(p.code(Role::Vendor, share()), Code::ConsentRequired, "revocation takes effect at once");

    let effective = p.now + 1000 + 7 * DAY;
    let loc = Category::new("pd:Location").unwrap();
    let notice = p.ok(
        Role::Customer,
        Body::SeparationNotice(SeparationNotice {
            effective,
            reason: None,
            disposition: vec![Disposition { category: loc.clone(), action: Action::ReturnAndDelete }],
        }),
    );
    assert_eq!(p.phase(), Phase::Separating);
    assert_eq!(p.code(Role::Vendor, share()), Code::OutOfState);
    let export = Body::DataShare(DataShare {
        content: ShareContent::Export,
        purpose: None,
        categories: vec![loc.clone()],
        commitment: Digest32::commit(&[4; 32], b"export"),
        media_type: "application/json".into(),
        size: 6,
    });
    p.ok(Role::Vendor, export);
    let bad = Body::DispositionStatement(DispositionStatement {
        notice,
        items: vec![DispositionItem {
            category: loc.clone(),
            outcome: Outcome::Deleted,
            export: None,
            legal_basis: None,
            until: None,
        }],
    });
    assert_eq!(p.code(Role::Vendor, bad), Code::IncompleteDisposition);
    let stmt = p.ok(
        Role::Vendor,
        Body::DispositionStatement(DispositionStatement {
            notice,
            items: vec![DispositionItem {
                category: loc,
                outcome: Outcome::ReturnedAndDeleted,
                export: Some(Digest32::of(b"export")),
                legal_basis: None,
                until: None,
            }],
        }),
    );
    assert_eq!(p.code(Role::Vendor, Body::ClosureReceipt(ClosureReceipt { statement: stmt })), Code::NotPermitted);
    let events = p.send(Role::Customer, Body::ClosureReceipt(ClosureReceipt { statement: stmt })).unwrap();
    assert_eq!(events[1], Event::PhaseChanged { from: Phase::Separating, to: Phase::Closed });
    assert_eq!(p.code(Role::Vendor, offer()), Code::Closed, "no contact after closure");
    assert_eq!(p.code(Role::Customer, grant()), Code::Closed);
}

#[test]
fn consent_is_default_deny_and_scoped() {
    let mut p = Pair::new();
    active(&mut p, 0);
    assert_eq!(p.code(Role::Vendor, share()), Code::ConsentRequired);
    p.ok(Role::Customer, grant());
    let mut other_purpose = share();
    if let Body::DataShare(s) = &mut other_purpose {
        s.purpose = Some(Purpose::new("dpv:Marketing").unwrap());
    }
    assert_eq!(p.code(Role::Vendor, other_purpose), Code::ConsentRequired);
    let mut more = share();
    if let Body::DataShare(s) = &mut more {
        s.categories.push(Category::new("pd:Health").unwrap());
    }
    assert_eq!(p.code(Role::Vendor, more), Code::ConsentRequired);
    p.ok(Role::Vendor, share());
    assert_eq!(p.code(Role::Vendor, grant()), Code::NotPermitted, "only the customer grants");
}

#[test]
fn consent_expires() {
    let mut p = Pair::new();
    active(&mut p, 0);
    let Body::ConsentGrant(mut g) = grant() else { unreachable!() };
    g.expires = Some(p.now + 5_000);
    p.ok(Role::Customer, Body::ConsentGrant(g));
    p.ok(Role::Vendor, share());
    p.now += 10_000;
    assert_eq!(p.code(Role::Vendor, share()), Code::ConsentRequired);
}

#[test]
fn negotiation_rules() {
    let mut p = Pair::new();
    p.open_with(Role::Vendor, offer());
    assert_eq!(p.code(Role::Customer, grant()), Code::OutOfState);
    let first = p.ok(Role::Customer, proposal(Role::Customer, terms(7)));
    assert_eq!(p.code(Role::Customer, Body::TermsAcceptance(TermsAcceptance { proposal: first })), Code::NotPermitted);
    assert_eq!(
        p.code(Role::Vendor, proposal(Role::Customer, terms(7))),
        Code::NotPermitted,
        "role must be the sender's"
    );
    let counter = p.ok(
        Role::Vendor,
        Body::TermsRejection(TermsRejection { proposal: first, reason: "price".into(), counter: Some(terms(30)) }),
    );
    assert_eq!(
        p.code(Role::Vendor, Body::TermsAcceptance(TermsAcceptance { proposal: first })),
        Code::StaleProposal,
        "rejected"
    );
    assert_eq!(
        p.code(Role::Customer, Body::TermsAcceptance(TermsAcceptance { proposal: MessageId::from_bytes([0; 32]) })),
        Code::UnknownReference
    );
    p.ok(Role::Customer, Body::TermsAcceptance(TermsAcceptance { proposal: counter }));
    assert_eq!(p.phase(), Phase::Active);
    assert_eq!(p.rel.as_ref().unwrap().agreement().unwrap().terms.notice_period, 30 * 86_400);
}

#[test]
fn expired_proposal_cannot_be_accepted() {
    let mut p = Pair::new();
    p.open_with(Role::Vendor, offer());
    p.now += 1000;
    let h = p.rel.as_ref().unwrap().next_header(Role::Customer, p.now).with_expiry(p.now + 2000);
    let m = p.seal(h, proposal(Role::Customer, terms(0)));
    p.rel.as_mut().unwrap().handle(&m, p.now, Policy::LIVE).unwrap();
    p.now += 5000;
    assert_eq!(p.code(Role::Vendor, Body::TermsAcceptance(TermsAcceptance { proposal: m.id() })), Code::Expired);
}

#[test]
fn notice_period_is_enforced() {
    let mut p = Pair::new();
    active(&mut p, 30);
    let short = Body::SeparationNotice(SeparationNotice {
        effective: p.now + 1000 + 29 * DAY,
        reason: None,
        disposition: vec![],
    });
    assert_eq!(p.code(Role::Vendor, short), Code::NoticeTooShort);
    let ok = Body::SeparationNotice(SeparationNotice {
        effective: p.now + 1000 + 30 * DAY,
        reason: None,
        disposition: vec![],
    });
    p.ok(Role::Vendor, ok);
    assert_eq!(p.phase(), Phase::Separating);
}

#[test]
fn term_end_stops_activity() {
    let mut p = Pair::new();
    active(&mut p, 0);
    p.ok(Role::Customer, grant());
    p.now += 366 * DAY;
    assert_eq!(p.code(Role::Vendor, share()), Code::OutOfState);
}

#[test]
fn chain_defects_are_named_and_change_nothing() {
    let mut p = Pair::new();
    active(&mut p, 0);
    let rel = p.rel.as_ref().unwrap().clone();
    let mut h = rel.next_header(Role::Customer, p.now);
    h.seq += 1;
    let gap = p.seal(h.clone(), grant());
    assert_eq!(p.rel.as_mut().unwrap().handle(&gap, p.now, Policy::LIVE).unwrap_err().code, Code::ChainGap);
    h.seq -= 2;
    h.prev = None;
    let fork = p.seal(h, grant());
    assert_eq!(p.rel.as_mut().unwrap().handle(&fork, p.now, Policy::LIVE).unwrap_err().code, Code::Fork);
    let mut h = rel.next_header(Role::Customer, p.now);
    h.prev = Some(MessageId::from_bytes([9; 32]));
    let bad_prev = p.seal(h, grant());
    assert_eq!(p.rel.as_mut().unwrap().handle(&bad_prev, p.now, Policy::LIVE).unwrap_err().code, Code::Fork);
    let mut h = rel.next_header(Role::Customer, p.now);
    h.ack = Some(MessageId::from_bytes([9; 32]));
    let bad_ack = p.seal(h, grant());
    assert_eq!(p.rel.as_mut().unwrap().handle(&bad_ack, p.now, Policy::LIVE).unwrap_err().code, Code::BadAck);
    let mut h = rel.next_header(Role::Customer, p.now);
    h.relationship = Some(RelationshipId::from_bytes([6; 16]));
    let other = p.seal(h, grant());
    assert_eq!(p.rel.as_mut().unwrap().handle(&other, p.now, Policy::LIVE).unwrap_err().code, Code::WrongRelationship);
    let stranger = SigningKey::from_bytes(&[7; 32]);
    let mut h = rel.next_header(Role::Customer, p.now);
    h.from = KeyId::from_bytes(stranger.verifying_key().to_bytes());
    let m = Message::seal(Payload { header: h, body: grant() }, &stranger).unwrap();
    assert_eq!(p.rel.as_mut().unwrap().handle(&m, p.now, Policy::LIVE).unwrap_err().code, Code::NotAParty);
    // Nothing changed: the next well-formed message is still accepted at the expected seq.
    assert_eq!(p.rel.as_ref().unwrap().next_seq(Role::Customer), rel.next_seq(Role::Customer));
    p.ok(Role::Customer, grant());
}

#[test]
fn duplicates_are_idempotent() {
    let mut p = Pair::new();
    active(&mut p, 0);
    p.now += 1000;
    let m = p.make(Role::Customer, grant());
    let rel = p.rel.as_mut().unwrap();
    assert!(matches!(rel.handle(&m, p.now, Policy::LIVE).unwrap()[0], Event::Accepted { .. }));
    for _ in 0..3 {
        assert_eq!(rel.handle(&m, p.now, Policy::LIVE).unwrap(), vec![Event::Duplicate { id: m.id() }]);
    }
    assert_eq!(rel.grants().len(), 1);
}

#[test]
fn time_window() {
    let mut p = Pair::new();
    active(&mut p, 0);
    let h = p.rel.as_ref().unwrap().next_header(Role::Customer, p.now + 10 * 60 * 1000);
    let future = p.seal(h, grant());
    assert_eq!(p.rel.as_mut().unwrap().handle(&future, p.now, Policy::LIVE).unwrap_err().code, Code::ClockSkew);
    let h = p.rel.as_ref().unwrap().next_header(Role::Customer, p.now).with_expiry(p.now + 1);
    let exp = p.seal(h, grant());
    assert_eq!(p.rel.as_mut().unwrap().handle(&exp, p.now + 2, Policy::LIVE).unwrap_err().code, Code::Expired);
    let h = p.rel.as_ref().unwrap().next_header(Role::Customer, p.now);
    let old = p.seal(h, grant());
    assert_eq!(p.rel.as_mut().unwrap().handle(&old, p.now + 31 * DAY, Policy::LIVE).unwrap_err().code, Code::ClockSkew);
}

#[test]
fn concurrent_messages_are_judged_by_the_senders_view() {
    // The customer shares data while the vendor, not having seen it, gives notice. Each is
    // valid in its sender's view, and both orders of arrival give the same verdicts and phase.
    let mut p = Pair::new();
    active(&mut p, 0);
    p.ok(Role::Customer, grant());
    let base = p.rel.clone().unwrap();
    p.now += 1000;
    let cust = p.make(
        Role::Customer,
        Body::DataShare(match share() {
            Body::DataShare(mut s) => {
                s.content = ShareContent::Data;
                s
            }
            _ => unreachable!(),
        }),
    );
    let vend = p.make(
        Role::Vendor,
        Body::SeparationNotice(SeparationNotice { effective: p.now, reason: None, disposition: vec![] }),
    );
    let mut a = base.clone();
    a.handle(&cust, p.now, Policy::LIVE).unwrap();
    a.handle(&vend, p.now, Policy::LIVE).unwrap();
    let mut b = base;
    b.handle(&vend, p.now, Policy::LIVE).unwrap();
    b.handle(&cust, p.now, Policy::LIVE).unwrap();
    assert_eq!(a.phase(), Phase::Separating);
    assert_eq!(b.phase(), Phase::Separating);
}

#[test]
fn receipts_must_name_the_other_partys_message() {
    let mut p = Pair::new();
    let prop = active(&mut p, 0);
    let rel = p.rel.as_mut().unwrap();
    let h = Header::ack(
        Some(rel.id()),
        KeyId::from_bytes(p.keys[1].verifying_key().to_bytes()),
        KeyId::from_bytes(p.keys[0].verifying_key().to_bytes()),
        p.now,
    );
    let ok = Message::seal(Payload { header: h.clone(), body: Body::Receipt(Receipt { message: prop }) }, &p.keys[1])
        .unwrap();
    assert_eq!(rel.handle(&ok, p.now, Policy::LIVE).unwrap(), vec![Event::Receipted { message: prop }]);
    let own = rel.last_id(Role::Vendor).unwrap();
    let bad = Message::seal(Payload { header: h, body: Body::Receipt(Receipt { message: own }) }, &p.keys[1]).unwrap();
    assert_eq!(rel.handle(&bad, p.now, Policy::LIVE).unwrap_err().code, Code::UnknownReference);
}
