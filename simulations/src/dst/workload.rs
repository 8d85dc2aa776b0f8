//! The workload: relationships walked from offer to closure, as `node/src/demo.rs` and the
//! protocol's `lifecycle` example walk them, each party acting on its own node's view.
//!
//! Each party has its own list of steps and acts when its view allows the next one, so the
//! two parties of a relationship act concurrently where the protocol lets them (her consent
//! and his usage report; his insight and her revocation; his introduction and her notice).
//! A step counts as done when the node tells its caller the message is durable; a node
//! that crashed before that is asked again, unless its store kept the message.

use rapport_protocol::{
    Body, Commission, CommissionBasis, ConsentGrant, ConsentRevocation, Countersignature, DataShare, DataTerms,
    Digest32, Disposition, DispositionItem, DispositionStatement, KeyId, Message, MessageId, Money, Offer, Outcome,
    Phase, Portability, Price, PriceModel, Relationship, RelationshipId, Renewal, Report, Role, SeparationNotice,
    ShareContent, Terms, TermsAcceptance, TermsProposal, Timestamp,
};
use rapport_protocol::{ClosureReceipt, Introduction, ThirdParty};

/// One step of a party: the market simulation's actions (`market::plan`), of which the
/// workload takes the lifecycle's (no decline), with per-usage terms.
pub(crate) use crate::market::plan::Action;

const VENDOR: &[Action] = &[
    Action::Offer,
    Action::Acceptance,
    Action::Usage,
    Action::Insight,
    Action::Introduction,
    Action::Export,
    Action::Statement,
];
const CUSTOMER: &[Action] = &[
    Action::Proposal { usage: true },
    Action::Grant,
    Action::Countersign,
    Action::Revocation,
    Action::Notice,
    Action::Closure,
];

/// A message waiting for its node to say it is durable.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Submitted {
    pub id: MessageId,
    /// The node crashed meanwhile: check its store at restart.
    pub orphaned: bool,
}

/// One party's progress through its steps.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cursor {
    pub next: usize,
    pub pending: Option<Submitted>,
}

/// One relationship's script.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    pub vendor: usize,
    pub customer: usize,
    pub rel: Option<RelationshipId>,
    /// Whether her notice waits for his introduction.
    pub patient: bool,
    /// Vendor, customer.
    pub cursors: [Cursor; 2],
    /// Steps their own node refused (the race the protocol allows), by step.
    pub refused: Vec<(Action, rapport_protocol::Code)>,
}

pub(crate) fn slot(role: Role) -> usize {
    match role {
        Role::Vendor => 0,
        Role::Customer => 1,
    }
}

fn steps(role: Role) -> &'static [Action] {
    match role {
        Role::Vendor => VENDOR,
        Role::Customer => CUSTOMER,
    }
}

/// What a party asks its node to send.
#[derive(Debug)]
pub(crate) struct Ask {
    pub step: Action,
    pub relationship: Option<RelationshipId>,
    pub to: Option<KeyId>,
    pub body: Body,
}

fn terms() -> Terms {
    Terms {
        duration: 365 * 86_400,
        renewal: Renewal::OptIn,
        notice_period: 1,
        price: price(),
        data: DataTerms { purposes: vec![purpose()], categories: vec![location()] },
        portability: Portability { format: "application/json".into(), deadline: 30 * 86_400 },
        deletion_deadline: 60 * 86_400,
        exit_fee: Money::new("EUR", 0),
    }
}

fn price() -> Price {
    Price { model: PriceModel::PerUsage, amount: Money::new("EUR", 25), metric: Some("kWh".into()), threshold: None }
}

#[allow(clippy::expect_used)]
pub(crate) fn purpose() -> rapport_protocol::Purpose {
    rapport_protocol::Purpose::new("dpv:ServiceProvision").expect("a registered purpose")
}

#[allow(clippy::expect_used)]
pub(crate) fn location() -> rapport_protocol::Category {
    rapport_protocol::Category::new("pd:Location").expect("a registered category")
}

/// The latest message of `kind` that `from` sent in `rel`, as this view holds it.
fn latest(rel: &Relationship, from: Role, pick: impl Fn(&Body) -> bool) -> Option<&Message> {
    let key = rel.key(from);
    rel.log().iter().rev().find(|m| m.header().from == key && pick(m.body()))
}

impl Script {
    pub(crate) fn new(vendor: usize, customer: usize, patient: bool) -> Script {
        Script { vendor, customer, rel: None, patient, cursors: Default::default(), refused: Vec::new() }
    }

    pub(crate) fn node(&self, role: Role) -> usize {
        match role {
            Role::Vendor => self.vendor,
            Role::Customer => self.customer,
        }
    }

    /// Every step of both parties done.
    pub(crate) fn done(&self) -> bool {
        self.cursors[0].next == VENDOR.len() && self.cursors[1].next == CUSTOMER.len()
    }

    /// The step `role` would take now, given its node's view of the relationship (`None`
    /// before it knows it) and the other party's key; `None` if it must wait.
    pub(crate) fn ready(&self, role: Role, view: Option<&Relationship>, other: KeyId, now: Timestamp) -> Option<Ask> {
        let cursor = &self.cursors[slot(role)];
        if cursor.pending.is_some() {
            return None;
        }
        let step = *steps(role).get(cursor.next)?;
        if step == Action::Offer {
            let offer = Offer {
                title: "Rooftop solar lease".into(),
                description: "Panels, inverter and upkeep; you pay per kWh".into(),
                price: price(),
                terms: Some(terms()),
            };
            return Some(Ask { step, relationship: None, to: Some(other), body: Body::Offer(offer) });
        }
        let rel = view?;
        let phase = rel.phase();
        let other_role = role.other();
        match step {
            Action::Offer | Action::Decline | Action::DeclineStatement => None,
            Action::Proposal { .. } => {
                Some(Body::TermsProposal(TermsProposal { role: Role::Customer, terms: terms() }))
            }
            Action::Acceptance => {
                let p = latest(rel, other_role, |b| matches!(b, Body::TermsProposal(_)))?;
                Some(Body::TermsAcceptance(TermsAcceptance { proposal: p.id() }))
            }
            Action::Grant => (phase == Phase::Active).then(|| {
                Body::ConsentGrant(ConsentGrant {
                    purposes: vec![purpose()],
                    categories: vec![location()],
                    third_party_sharing: false,
                    retention: 90 * 86_400,
                    expires: None,
                })
            }),
            Action::Usage => (phase == Phase::Active).then(|| {
                Body::UsageReport(Report {
                    metric: "kWh".into(),
                    unit: "kWh".into(),
                    start: now.saturating_sub(30 * 86_400_000),
                    end: now.saturating_sub(1),
                    value: 412,
                })
            }),
            Action::Countersign => {
                let r = latest(rel, other_role, |b| matches!(b, Body::UsageReport(_)))?;
                Some(Body::Countersignature(Countersignature { report: r.id() }))
            }
            Action::Insight => {
                latest(rel, other_role, |b| matches!(b, Body::ConsentGrant(_)))?;
                Some(share(ShareContent::Insight))
            }
            Action::Introduction => Some(Body::Introduction(Introduction {
                party: ThirdParty { name: "Battery recyclers".into(), key: None, contact: None },
                offering: "Battery recycling".into(),
                commission: Commission { basis: CommissionBasis::None, amount: None, basis_points: None },
            })),
            Action::Revocation => {
                let g = latest(rel, role, |b| matches!(b, Body::ConsentGrant(_)))?;
                Some(Body::ConsentRevocation(ConsentRevocation { grant: g.id(), reason: None }))
            }
            Action::Notice => {
                if self.patient {
                    latest(rel, other_role, |b| matches!(b, Body::Introduction(_)))?;
                }
                Some(Body::SeparationNotice(SeparationNotice {
                    effective: now + 2_000,
                    reason: Some("Moving abroad".into()),
                    disposition: vec![Disposition {
                        category: location(),
                        action: rapport_protocol::Action::ReturnAndDelete,
                    }],
                }))
            }
            Action::Export => (phase == Phase::Separating).then(|| share(ShareContent::Export)),
            Action::Statement => {
                let notice = latest(rel, other_role, |b| matches!(b, Body::SeparationNotice(_)))?;
                Some(Body::DispositionStatement(DispositionStatement {
                    notice: notice.id(),
                    items: vec![returned_and_deleted()],
                }))
            }
            Action::Closure => {
                let s = latest(rel, other_role, |b| matches!(b, Body::DispositionStatement(_)))?;
                Some(Body::ClosureReceipt(ClosureReceipt { statement: s.id() }))
            }
        }
        .map(|body| Ask { step, relationship: self.rel, to: None, body })
    }
}

/// The vendor's answer to a notice asking for her location data back and deleted: done, with
/// the digest of the export.
pub(crate) fn returned_and_deleted() -> DispositionItem {
    DispositionItem {
        category: location(),
        outcome: Outcome::ReturnedAndDeleted,
        export: Some(Digest32::of(b"{\"location\":\"51.5,-0.12\"}")),
        legal_basis: None,
        until: None,
    }
}

pub(crate) fn share(content: ShareContent) -> Body {
    let (purpose, media) = match content {
        ShareContent::Export => (None, "application/json"),
        _ => (Some(purpose()), "application/json"),
    };
    Body::DataShare(DataShare {
        content,
        purpose,
        categories: vec![location()],
        commitment: Digest32::commit(&[9; rapport_protocol::SALT_LEN], b"{\"self_consumption\":\"71%\"}"),
        media_type: media.into(),
        size: 26,
    })
}
