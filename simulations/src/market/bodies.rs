//! The bodies a script's steps send, and the earlier messages they refer to.

use rapport_protocol::{
    Action as Dispose, Body, ClosureReceipt, Commission, CommissionBasis, ConsentGrant, ConsentRevocation,
    Countersignature, DataTerms, Disposition, DispositionStatement, Intent, Introduction, MessageId, Money, Offer,
    Portability, Price, PriceModel, Renewal, Report, Role, SeparationNotice, ShareContent, Terms, TermsAcceptance,
    TermsProposal, ThirdParty, Timestamp,
};

use super::plan::Action;
use crate::dst::workload::{location, purpose, returned_and_deleted, share};

const DAY_MS: u64 = 86_400_000;

/// The messages of a relationship that later steps name.
#[derive(Debug, Clone, Default)]
pub(super) struct Refs {
    /// Her latest terms proposal.
    pub(super) proposal: Option<MessageId>,
    /// Her consent grant.
    pub(super) grant: Option<MessageId>,
    /// His latest usage report.
    pub(super) report: Option<MessageId>,
    /// Her separation notice (or decline).
    pub(super) notice: Option<MessageId>,
    /// His disposition statement.
    pub(super) statement: Option<MessageId>,
}

impl Refs {
    /// Remembers message `id`, sent by `action`.
    pub(super) fn record(&mut self, action: Action, id: MessageId) {
        match action {
            Action::Proposal { .. } => self.proposal = Some(id),
            Action::Grant => self.grant = Some(id),
            Action::Usage => self.report = Some(id),
            Action::Notice | Action::Decline => self.notice = Some(id),
            Action::Statement | Action::DeclineStatement => self.statement = Some(id),
            _ => {}
        }
    }
}

fn terms(usage: bool, notice_days: u32) -> Terms {
    Terms {
        duration: 365 * 86_400,
        renewal: Renewal::OptIn,
        notice_period: u64::from(notice_days) * 86_400,
        price: price(usage),
        data: DataTerms { purposes: vec![purpose()], categories: vec![location()] },
        portability: Portability { format: "application/json".into(), deadline: 30 * 86_400 },
        deletion_deadline: 60 * 86_400,
        exit_fee: Money::new("EUR", 0),
    }
}

fn price(usage: bool) -> Price {
    if usage {
        Price {
            model: PriceModel::PerUsage,
            amount: Money::new("EUR", 25),
            metric: Some("kWh".into()),
            threshold: None,
        }
    } else {
        Price { model: PriceModel::Upfront, amount: Money::new("EUR", 900), metric: None, threshold: None }
    }
}

/// Her intent, gossiped to every vendor.
pub(super) fn intent() -> Body {
    Body::Intent(Intent {
        title: "Home energy, per kWh".into(),
        description: "Solar lease or green tariff; I keep my meter data".into(),
        tags: vec!["energy".into(), "solar".into()],
        budget: Some(Money::new("EUR", 1200)),
    })
}

/// The body of `action` at time `now`. `slack` is added to a notice's effective time: the
/// engine signs a moment after `now`, and the notice period counts from its signature.
/// `None` if a message it must name was never sent (a script out of order: a bug).
pub(super) fn body(action: Action, refs: &Refs, now: Timestamp, notice_days: u32, slack: u64) -> Option<Body> {
    Some(match action {
        Action::Offer => Body::Offer(Offer {
            title: "Rooftop solar lease".into(),
            description: "Panels, inverter and upkeep".into(),
            price: price(true),
            terms: Some(terms(true, notice_days)),
        }),
        Action::Proposal { usage } => {
            Body::TermsProposal(TermsProposal { role: Role::Customer, terms: terms(usage, notice_days) })
        }
        Action::Acceptance => Body::TermsAcceptance(TermsAcceptance { proposal: refs.proposal? }),
        Action::Grant => Body::ConsentGrant(ConsentGrant {
            purposes: vec![purpose()],
            categories: vec![location()],
            third_party_sharing: false,
            retention: 90 * 86_400,
            expires: None,
        }),
        Action::Usage => Body::UsageReport(Report {
            metric: "kWh".into(),
            unit: "kWh".into(),
            start: now.saturating_sub(30 * DAY_MS),
            end: now.saturating_sub(1),
            value: 412,
        }),
        Action::Countersign => Body::Countersignature(Countersignature { report: refs.report? }),
        Action::Insight => share(ShareContent::Insight),
        Action::Introduction => Body::Introduction(Introduction {
            party: ThirdParty { name: "Battery recyclers".into(), key: None, contact: None },
            offering: "Battery recycling".into(),
            commission: Commission { basis: CommissionBasis::None, amount: None, basis_points: None },
        }),
        Action::Revocation => Body::ConsentRevocation(ConsentRevocation { grant: refs.grant?, reason: None }),
        Action::Notice => Body::SeparationNotice(SeparationNotice {
            effective: now + u64::from(notice_days) * DAY_MS + slack,
            reason: Some("The year is up".into()),
            disposition: vec![Disposition { category: location(), action: Dispose::ReturnAndDelete }],
        }),
        Action::Decline => Body::SeparationNotice(SeparationNotice {
            effective: now + slack,
            reason: Some("I took another offer".into()),
            disposition: vec![],
        }),
        Action::Export => share(ShareContent::Export),
        Action::Statement => Body::DispositionStatement(DispositionStatement {
            notice: refs.notice?,
            items: vec![returned_and_deleted()],
        }),
        Action::DeclineStatement => {
            Body::DispositionStatement(DispositionStatement { notice: refs.notice?, items: vec![] })
        }
        Action::Closure => Body::ClosureReceipt(ClosureReceipt { statement: refs.statement? }),
    })
}
