//! The rule for every kind in every phase (spec §7.3), and the effect each accepted message
//! has (spec §7.4). Effects commute: the phase only moves forward, grants, reports and notices
//! are sets, and the agreement is the one whose acceptance sorts last. So two parties that
//! apply the same messages in different orders reach the same state.

use std::collections::HashMap;

use crate::envelope::Message;
use crate::id::{KeyId, MessageId};
use crate::message::*;
use crate::problem::Code;
use crate::vocab::{Category, Purpose};
use crate::Timestamp;

use super::{Error, Phase};

/// A total order on messages used to break ties between concurrent ones: creation time, then
/// sender key, then sequence number.
pub(super) type Order = (Timestamp, KeyId, u64);

pub(super) fn order(m: &Message) -> Order {
    let h = m.header();
    (h.created_at, h.from, h.seq)
}

#[derive(Debug, Clone)]
pub(super) struct Proposal {
    pub by: Role,
    pub terms: Terms,
    pub expires_at: Option<Timestamp>,
    pub order: Order,
    pub closed: bool,
}

/// The accepted terms in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    /// Id of the accepted proposal (a `terms_proposal`, or a `terms_rejection` with a counter).
    pub proposal: MessageId,
    /// Id of the `terms_acceptance`.
    pub acceptance: MessageId,
    /// The terms.
    pub terms: Terms,
    /// When the acceptance was created; the term runs from here.
    pub start: Timestamp,
    pub(super) order: Order,
}

impl Agreement {
    /// When the term ends, or `None` if it renews automatically.
    pub fn end(&self) -> Option<Timestamp> {
        match self.terms.renewal {
            Renewal::Automatic => None,
            Renewal::None | Renewal::OptIn => Some(self.start.saturating_add(self.terms.duration.saturating_mul(1000))),
        }
    }
}

/// A consent grant and whether it was revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The grant as signed.
    pub grant: ConsentGrant,
    /// Id of the revocation, once revoked.
    pub revoked_by: Option<MessageId>,
}

impl Grant {
    /// Whether it allows sharing `categories` for `purpose` at time `at`.
    pub fn covers(&self, purpose: &Purpose, categories: &[Category], at: Timestamp) -> bool {
        self.revoked_by.is_none()
            && self.grant.expires.is_none_or(|e| at < e)
            && self.grant.purposes.contains(purpose)
            && categories.iter().all(|c| self.grant.categories.contains(c))
    }
}

#[derive(Debug, Clone)]
pub(super) struct Notice {
    pub disposition: Vec<Disposition>,
}

/// The relationship's state as of some set of messages (spec §7.2).
#[derive(Debug, Clone, Default)]
pub(super) struct State {
    pub phase: Phase,
    pub proposals: HashMap<MessageId, Proposal>,
    pub agreement: Option<Agreement>,
    pub grants: HashMap<MessageId, Grant>,
    /// Report id → (sender, countersigned by).
    pub reports: HashMap<MessageId, (Role, Option<MessageId>)>,
    pub notices: HashMap<MessageId, Notice>,
    pub statements: HashMap<MessageId, MessageId>,
    pub closure: Option<MessageId>,
}

fn reject(code: Code, detail: impl Into<String>) -> Result<(), Error> {
    Err(Error::new(code, detail))
}

fn require_phase(phase: Phase, allowed: &[Phase], kind: Kind) -> Result<(), Error> {
    if phase == Phase::Closed {
        return reject(Code::Closed, "the relationship is closed");
    }
    if allowed.contains(&phase) {
        Ok(())
    } else {
        reject(Code::OutOfState, format!("{kind} is not allowed while {phase}"))
    }
}

fn require_role(sender: Role, role: Role, kind: Kind) -> Result<(), Error> {
    if sender == role {
        Ok(())
    } else {
        reject(Code::NotPermitted, format!("only the {role:?} may send {kind}").to_lowercase())
    }
}

impl State {
    /// The open proposal: the latest not yet accepted or rejected.
    fn open_proposal(&self) -> Option<(&MessageId, &Proposal)> {
        self.proposals.iter().max_by_key(|(_, p)| p.order).filter(|(_, p)| !p.closed)
    }

    fn check_term_running(&self, at: Timestamp, kind: Kind) -> Result<(), Error> {
        match self.agreement.as_ref().and_then(Agreement::end) {
            Some(end) if at >= end => reject(
                Code::OutOfState,
                format!("{kind} after the agreed term ended at {end}; renew by a new proposal or separate"),
            ),
            _ => Ok(()),
        }
    }

    /// Checks `m` from `sender` against this state (the sender's view).
    pub(super) fn check(&self, m: &Message, sender: Role) -> Result<(), Error> {
        use Phase::*;
        let kind = m.kind();
        let at = m.header().created_at;
        match m.body() {
            Body::Offer(_) => {
                require_phase(self.phase, &[Proposed], kind)?;
                require_role(sender, Role::Vendor, kind)
            }
            Body::Intent(_) | Body::Receipt(_) | Body::ProblemReport(_) => {
                reject(Code::SchemaViolation, format!("{kind} is not a chained message"))
            }
            Body::TermsProposal(p) => {
                require_phase(self.phase, &[Proposed, Negotiating, Active], kind)?;
                if p.role != sender {
                    return reject(Code::NotPermitted, "terms_proposal role is not the sender's role");
                }
                Ok(())
            }
            Body::TermsAcceptance(TermsAcceptance { proposal })
            | Body::TermsRejection(TermsRejection { proposal, .. }) => {
                require_phase(self.phase, &[Negotiating, Active], kind)?;
                let Some(p) = self.proposals.get(proposal) else {
                    return reject(Code::UnknownReference, format!("no proposal {proposal}"));
                };
                if p.by == sender {
                    return reject(Code::NotPermitted, "a party cannot answer its own proposal");
                }
                if self.open_proposal().map(|(id, _)| id) != Some(proposal) {
                    return reject(Code::StaleProposal, format!("proposal {proposal} is no longer open"));
                }
                if p.expires_at.is_some_and(|e| e <= at) {
                    return reject(Code::Expired, format!("proposal {proposal} expired before it was answered"));
                }
                Ok(())
            }
            Body::ConsentGrant(_) => {
                require_phase(self.phase, &[Active], kind)?;
                require_role(sender, Role::Customer, kind)?;
                self.check_term_running(at, kind)
            }
            Body::ConsentRevocation(r) => {
                require_phase(self.phase, &[Active, Separating], kind)?;
                require_role(sender, Role::Customer, kind)?;
                match self.grants.get(&r.grant) {
                    None => reject(Code::UnknownReference, format!("no consent grant {}", r.grant)),
                    Some(g) if g.revoked_by.is_some() => reject(Code::OutOfState, "grant already revoked"),
                    Some(_) => Ok(()),
                }
            }
            Body::UsageReport(_) | Body::ImpactReport(_) | Body::Introduction(_) => {
                require_phase(self.phase, &[Active], kind)?;
                self.check_term_running(at, kind)
            }
            Body::Countersignature(c) => {
                require_phase(self.phase, &[Active, Separating], kind)?;
                match self.reports.get(&c.report) {
                    None => reject(Code::UnknownReference, format!("no usage or impact report {}", c.report)),
                    Some((by, _)) if *by == sender => {
                        reject(Code::NotPermitted, "a party cannot countersign its own report")
                    }
                    Some((_, Some(_))) => reject(Code::OutOfState, "report already countersigned"),
                    Some(_) => Ok(()),
                }
            }
            Body::DataShare(share) => match share.content {
                ShareContent::Export => {
                    require_phase(self.phase, &[Separating], kind)?;
                    require_role(sender, Role::Vendor, kind)
                }
                ShareContent::Data | ShareContent::Insight => {
                    require_phase(self.phase, &[Active], kind)?;
                    self.check_term_running(at, kind)?;
                    let purpose =
                        share.purpose.as_ref().ok_or_else(|| Error::new(Code::SchemaViolation, "no purpose"))?;
                    if self.grants.values().any(|g| g.covers(purpose, &share.categories, at)) {
                        Ok(())
                    } else {
                        reject(Code::ConsentRequired, format!("no live consent covers {purpose} for these categories"))
                    }
                }
            },
            Body::SeparationNotice(n) => {
                require_phase(self.phase, &[Proposed, Negotiating, Active], kind)?;
                let notice = self.agreement.as_ref().map_or(0, |a| a.terms.notice_period);
                let earliest = at.saturating_add(notice.saturating_mul(1000));
                if n.effective < earliest {
                    return reject(Code::NoticeTooShort, format!("effective {} is before {earliest}", n.effective));
                }
                Ok(())
            }
            Body::DispositionStatement(s) => {
                require_phase(self.phase, &[Separating], kind)?;
                require_role(sender, Role::Vendor, kind)?;
                let Some(notice) = self.notices.get(&s.notice) else {
                    return reject(Code::UnknownReference, format!("no separation notice {}", s.notice));
                };
                check_disposition(notice, s)
            }
            Body::ClosureReceipt(c) => {
                require_phase(self.phase, &[Separating], kind)?;
                require_role(sender, Role::Customer, kind)?;
                if self.statements.contains_key(&c.statement) {
                    Ok(())
                } else {
                    reject(Code::UnknownReference, format!("no disposition statement {}", c.statement))
                }
            }
        }
    }

    /// Applies an accepted message. Returns the events it caused, other than `Accepted`.
    pub(super) fn apply(&mut self, m: &Message, sender: Role) -> Vec<super::Event> {
        use super::Event;
        let id = m.id();
        let before = self.phase;
        let mut events = Vec::new();
        let advance = |state: &mut State, to: Phase| state.phase = state.phase.max(to);
        match m.body() {
            Body::Offer(_) => advance(self, Phase::Proposed),
            Body::TermsProposal(p) => {
                self.add_proposal(id, sender, p.terms.clone(), m);
                advance(self, Phase::Negotiating);
            }
            Body::TermsRejection(r) => {
                if let Some(p) = self.proposals.get_mut(&r.proposal) {
                    p.closed = true;
                }
                if let Some(counter) = &r.counter {
                    self.add_proposal(id, sender, counter.clone(), m);
                }
            }
            Body::TermsAcceptance(a) => {
                if let Some(p) = self.proposals.get_mut(&a.proposal) {
                    p.closed = true;
                    let new = Agreement {
                        proposal: a.proposal,
                        acceptance: id,
                        terms: p.terms.clone(),
                        start: m.header().created_at,
                        order: order(m),
                    };
                    if self.agreement.as_ref().is_none_or(|old| old.order < new.order) {
                        self.agreement = Some(new);
                    }
                    events.push(Event::Agreed { proposal: a.proposal, acceptance: id });
                }
                advance(self, Phase::Active);
            }
            Body::ConsentGrant(g) => {
                self.grants.entry(id).or_insert(Grant { grant: g.clone(), revoked_by: None });
                events.push(Event::ConsentGranted { grant: id });
            }
            Body::ConsentRevocation(r) => {
                if let Some(g) = self.grants.get_mut(&r.grant) {
                    g.revoked_by.get_or_insert(id);
                }
                events.push(Event::ConsentRevoked { grant: r.grant, revocation: id });
            }
            Body::UsageReport(_) | Body::ImpactReport(_) => {
                self.reports.entry(id).or_insert((sender, None));
            }
            Body::Countersignature(c) => {
                if let Some((_, by)) = self.reports.get_mut(&c.report) {
                    by.get_or_insert(id);
                }
                events.push(Event::Countersigned { report: c.report, countersignature: id });
            }
            Body::SeparationNotice(n) => {
                self.notices.insert(id, Notice { disposition: n.disposition.clone() });
                advance(self, Phase::Separating);
            }
            Body::DispositionStatement(s) => {
                self.statements.insert(id, s.notice);
            }
            Body::ClosureReceipt(_) => {
                self.closure.get_or_insert(id);
                advance(self, Phase::Closed);
            }
            Body::DataShare(_)
            | Body::Introduction(_)
            | Body::Intent(_)
            | Body::Receipt(_)
            | Body::ProblemReport(_) => {}
        }
        if self.phase != before {
            events.push(Event::PhaseChanged { from: before, to: self.phase });
        }
        events
    }

    fn add_proposal(&mut self, id: MessageId, by: Role, terms: Terms, m: &Message) {
        let expires_at = m.header().expires_at;
        self.proposals.insert(id, Proposal { by, terms, expires_at, order: order(m), closed: false });
    }
}

/// Every category the notice named must be answered, with an outcome that fits the requested
/// action; retention under a legal basis is always an allowed answer.
fn check_disposition(notice: &Notice, s: &DispositionStatement) -> Result<(), Error> {
    for want in &notice.disposition {
        let Some(item) = s.items.iter().find(|i| i.category == want.category) else {
            return reject(Code::IncompleteDisposition, format!("no outcome for {}", want.category));
        };
        let fits = matches!(
            (want.action, item.outcome),
            (_, Outcome::Retained)
                | (Action::Return, Outcome::Returned | Outcome::ReturnedAndDeleted)
                | (Action::Delete, Outcome::Deleted | Outcome::ReturnedAndDeleted)
                | (Action::ReturnAndDelete, Outcome::ReturnedAndDeleted)
        );
        if !fits {
            return reject(
                Code::IncompleteDisposition,
                format!("{:?} does not answer a request to {:?} {}", item.outcome, want.action, want.category),
            );
        }
    }
    Ok(())
}
