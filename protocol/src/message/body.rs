//! Typed message bodies (spec §5). Each body is a CBOR map with text keys; optional fields are
//! omitted when absent, never `null`. [`Validate`] adds the rules a schema alone cannot say.

use serde::{Deserialize, Serialize};

use crate::id::{Digest32, KeyId, MessageId};
use crate::problem::Code;
use crate::vocab::{Category, Purpose};
use crate::Timestamp;

/// Longest free-text field, in bytes.
pub const MAX_TEXT: usize = 4096;
/// Longest list in any body.
pub const MAX_ITEMS: usize = 64;

/// Semantic checks beyond the CBOR shape; the error names the offending field.
pub trait Validate {
    /// Checks the value.
    fn validate(&self) -> Result<(), Invalid>;
}

/// Why a body that has its kind's CBOR shape breaks one of its rules (spec §5). A peer's
/// message that breaks one is refused with `schema-violation`, whose text is this error's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// A required text or list field is empty.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// A text field is longer than [`MAX_TEXT`] bytes.
    #[error("{0} is longer than {MAX_TEXT} bytes")]
    TooLong(&'static str),
    /// A list has more than [`MAX_ITEMS`] items.
    #[error("{0} has more than {MAX_ITEMS} items")]
    TooMany(&'static str),
    /// A list that is a set names an entry twice.
    #[error("{0} repeats an entry")]
    Repeated(&'static str),
    /// Not three capital letters. Holds the currency as sent (a problem report cuts its text).
    #[error("currency {0:?} is not an ISO 4217 code")]
    Currency(String),
    /// An upfront price with a metric or threshold.
    #[error("an upfront price has no metric or threshold")]
    UpfrontMetric,
    /// A per-usage price with no metric.
    #[error("a per-usage price needs a metric")]
    UsageMetric,
    /// A per-impact price without both metric and threshold.
    #[error("a per-impact price needs a metric and a threshold")]
    ImpactMetric,
    /// Terms of duration 0.
    #[error("terms.duration must be positive")]
    Duration,
    /// A report's period that does not end after it starts.
    #[error("period end must be after its start")]
    Period,
    /// An `export` share that names a purpose.
    #[error("an export carries no purpose")]
    ExportPurpose,
    /// A `data` or `insight` share with no purpose.
    #[error("data and insights must name a purpose")]
    SharePurpose,
    /// A commission whose fields do not fit its basis.
    #[error("commission: none has no amount; flat has only amount; percent has only basis_points ≤ 10000")]
    Commission,
    /// A disposition item with an export hash it must not have, or without one it must.
    #[error("export hash is required for, and only for, returned outcomes")]
    ExportHash,
    /// A disposition item whose `legal_basis` and `until` do not match `retained`.
    #[error("legal_basis and until are required for, and only for, retained")]
    Retention,
}

pub(crate) fn text(field: &'static str, s: &str, required: bool) -> Result<(), Invalid> {
    if required && s.is_empty() {
        return Err(Invalid::Empty(field));
    }
    if s.len() > MAX_TEXT {
        return Err(Invalid::TooLong(field));
    }
    Ok(())
}

fn list<T>(field: &'static str, items: &[T], required: bool) -> Result<(), Invalid> {
    if required && items.is_empty() {
        return Err(Invalid::Empty(field));
    }
    if items.len() > MAX_ITEMS {
        return Err(Invalid::TooMany(field));
    }
    Ok(())
}

fn unique<T: Ord + Clone>(field: &'static str, items: &[T]) -> Result<(), Invalid> {
    let mut sorted = items.to_vec();
    sorted.sort();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(Invalid::Repeated(field));
    }
    Ok(())
}

/// Which side of the relationship a party is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The individual; her consent governs her data.
    Customer,
    /// The business.
    Vendor,
}

impl Role {
    /// The other side.
    pub fn other(self) -> Role {
        match self {
            Role::Customer => Role::Vendor,
            Role::Vendor => Role::Customer,
        }
    }
}

/// An amount of money in the currency's minor units (cents for EUR), so no floats are needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Money {
    /// ISO 4217 alphabetic code, e.g. `EUR`.
    pub currency: String,
    /// Amount in minor units.
    pub minor_units: u64,
}

impl Money {
    /// `minor_units` of `currency`.
    pub fn new(currency: &str, minor_units: u64) -> Self {
        Money { currency: currency.to_owned(), minor_units }
    }
}

impl Validate for Money {
    fn validate(&self) -> Result<(), Invalid> {
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Invalid::Currency(self.currency.clone()));
        }
        Ok(())
    }
}

/// How the price is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceModel {
    /// A fixed amount for the term.
    Upfront,
    /// `amount` per unit of `metric`, above an optional free `threshold`.
    PerUsage,
    /// `amount` once `metric` reaches `threshold`.
    PerImpact,
}

/// A price: upfront, per usage or per impact (spec §5.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// The model.
    pub model: PriceModel,
    /// Amount per term (upfront), per unit (per usage) or per achieved impact.
    pub amount: Money,
    /// The measured quantity; required for per-usage and per-impact prices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Free allowance (per usage) or the level that triggers payment (per impact, required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u64>,
}

impl Validate for Price {
    fn validate(&self) -> Result<(), Invalid> {
        self.amount.validate()?;
        match (self.model, &self.metric, self.threshold) {
            (PriceModel::Upfront, None, None) => Ok(()),
            (PriceModel::Upfront, ..) => Err(Invalid::UpfrontMetric),
            (PriceModel::PerUsage, Some(m), _) => text("price.metric", m, true),
            (PriceModel::PerImpact, Some(m), Some(_)) => text("price.metric", m, true),
            (PriceModel::PerUsage, None, _) => Err(Invalid::UsageMetric),
            (PriceModel::PerImpact, ..) => Err(Invalid::ImpactMetric),
        }
    }
}

/// Whether the agreement renews when its duration ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Renewal {
    /// It ends.
    None,
    /// It renews only by a new accepted proposal.
    OptIn,
    /// It renews for the same duration unless a party gives notice.
    Automatic,
}

/// What the vendor may do with data under the agreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataTerms {
    /// Purposes the vendor may ask consent for.
    pub purposes: Vec<Purpose>,
    /// Data categories the vendor may ask consent for.
    pub categories: Vec<Category>,
}

/// How the customer gets her data out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Portability {
    /// Media type of the export, e.g. `application/json`.
    pub format: String,
    /// Seconds after a separation notice by which the export is due.
    pub deadline: u64,
}

/// The terms of an agreement (spec §5.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Terms {
    /// Length of one term, in seconds ("a one-year stand" is 31 536 000).
    pub duration: u64,
    /// Renewal rule.
    pub renewal: Renewal,
    /// Minimum seconds between a separation notice and its effective date.
    pub notice_period: u64,
    /// Price.
    pub price: Price,
    /// Data terms.
    pub data: DataTerms,
    /// Export of the customer's data.
    pub portability: Portability,
    /// Seconds after the separation's effective date by which data is deleted.
    pub deletion_deadline: u64,
    /// Fee for leaving; stated even when zero.
    pub exit_fee: Money,
}

impl Validate for Terms {
    fn validate(&self) -> Result<(), Invalid> {
        if self.duration == 0 {
            return Err(Invalid::Duration);
        }
        self.price.validate()?;
        list("terms.data.purposes", &self.data.purposes, false)?;
        list("terms.data.categories", &self.data.categories, false)?;
        unique("terms.data.purposes", &self.data.purposes)?;
        unique("terms.data.categories", &self.data.categories)?;
        text("terms.portability.format", &self.portability.format, true)?;
        self.exit_fee.validate()
    }
}

/// A vendor's offer, to one customer (opening a relationship) or public (spec §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    /// Short title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Headline price.
    pub price: Price,
    /// Suggested terms, if the vendor has them ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms: Option<Terms>,
}

impl Validate for Offer {
    fn validate(&self) -> Result<(), Invalid> {
        text("title", &self.title, true)?;
        text("description", &self.description, false)?;
        self.price.validate()?;
        self.terms.as_ref().map_or(Ok(()), Validate::validate)
    }
}

/// A customer's public request for proposals (spec §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intent {
    /// What she is looking for.
    pub title: String,
    /// Details.
    pub description: String,
    /// Free-form tags vendors filter on.
    pub tags: Vec<String>,
    /// The most she wants to pay, if she says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Money>,
}

impl Validate for Intent {
    fn validate(&self) -> Result<(), Invalid> {
        text("title", &self.title, true)?;
        text("description", &self.description, false)?;
        list("tags", &self.tags, false)?;
        self.tags.iter().try_for_each(|t| text("tags[]", t, true))?;
        self.budget.as_ref().map_or(Ok(()), Validate::validate)
    }
}

/// Proposed terms; either party may propose (spec §5.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TermsProposal {
    /// The proposer's role; fixes the roles when the proposal opens a relationship.
    pub role: Role,
    /// The terms.
    pub terms: Terms,
}

impl Validate for TermsProposal {
    fn validate(&self) -> Result<(), Invalid> {
        self.terms.validate()
    }
}

/// Acceptance of one exact proposal: `proposal` is its message id, the SHA-256 of its signed
/// bytes, so the two signed messages alone prove the agreement (spec §5.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TermsAcceptance {
    /// Id of the accepted `terms_proposal`, or of a `terms_rejection` carrying a counter.
    pub proposal: MessageId,
}

/// Rejection of a proposal, optionally with a counter-proposal (spec §5.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TermsRejection {
    /// Id of the rejected proposal (or counter).
    pub proposal: MessageId,
    /// Why.
    pub reason: String,
    /// Counter-proposal; the other party may accept this message by its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<Terms>,
}

impl Validate for TermsRejection {
    fn validate(&self) -> Result<(), Invalid> {
        text("reason", &self.reason, false)?;
        self.counter.as_ref().map_or(Ok(()), Validate::validate)
    }
}

/// The customer's consent for a scope (spec §5.6). Consent is default-deny: only what a live
/// grant names is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentGrant {
    /// Purposes allowed.
    pub purposes: Vec<Purpose>,
    /// Data categories allowed.
    pub categories: Vec<Category>,
    /// Whether the vendor may pass the data to third parties.
    pub third_party_sharing: bool,
    /// Seconds the vendor may keep data received under this grant.
    pub retention: u64,
    /// When the grant lapses (Unix ms); absent: until revoked or the relationship closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Timestamp>,
}

impl Validate for ConsentGrant {
    fn validate(&self) -> Result<(), Invalid> {
        list("purposes", &self.purposes, true)?;
        list("categories", &self.categories, true)?;
        unique("purposes", &self.purposes)?;
        unique("categories", &self.categories)
    }
}

/// Withdraws a grant; it takes effect on receipt (spec §5.7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentRevocation {
    /// Id of the `consent_grant` withdrawn.
    pub grant: MessageId,
    /// Why, if she says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Validate for ConsentRevocation {
    fn validate(&self) -> Result<(), Invalid> {
        self.reason.as_deref().map_or(Ok(()), |r| text("reason", r, false))
    }
}

/// A usage or impact measurement for a period (spec §5.8). The other party countersigns it
/// with a [`Countersignature`], giving per-usage and per-impact prices a jointly signed basis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// What was measured, matching the price's metric.
    pub metric: String,
    /// Unit of `value`.
    pub unit: String,
    /// Start of the period (Unix ms, inclusive).
    pub start: Timestamp,
    /// End of the period (Unix ms, exclusive).
    pub end: Timestamp,
    /// Measured value in `unit`.
    pub value: u64,
}

impl Validate for Report {
    fn validate(&self) -> Result<(), Invalid> {
        text("metric", &self.metric, true)?;
        text("unit", &self.unit, true)?;
        if self.end <= self.start {
            return Err(Invalid::Period);
        }
        Ok(())
    }
}

/// The other party's signature over a usage or impact report (spec §5.8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Countersignature {
    /// Id of the report countersigned.
    pub report: MessageId,
}

/// What a [`DataShare`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareContent {
    /// Personal data.
    Data,
    /// An insight derived from data, returned to the customer.
    Insight,
    /// The customer's export, returned during separation.
    Export,
}

/// Data or an insight sent beside the log (spec §5.9). The log holds only a salted
/// commitment; the data and salt travel beside it and can be deleted without breaking the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataShare {
    /// Data, insight or export.
    pub content: ShareContent,
    /// Purpose; required for data and insights, absent for an export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<Purpose>,
    /// Categories of personal data in it.
    pub categories: Vec<Category>,
    /// SHA-256(salt ‖ data), with a 32-byte random salt.
    pub commitment: Digest32,
    /// Media type of the data.
    pub media_type: String,
    /// Size of the data in bytes.
    pub size: u64,
}

impl Validate for DataShare {
    fn validate(&self) -> Result<(), Invalid> {
        list("categories", &self.categories, true)?;
        unique("categories", &self.categories)?;
        text("media_type", &self.media_type, true)?;
        match (self.content, &self.purpose) {
            (ShareContent::Export, None) | (ShareContent::Data | ShareContent::Insight, Some(_)) => Ok(()),
            (ShareContent::Export, Some(_)) => Err(Invalid::ExportPurpose),
            _ => Err(Invalid::SharePurpose),
        }
    }
}

/// The party introduced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThirdParty {
    /// Display name.
    pub name: String,
    /// Its key, if it runs a Rapport node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyId>,
    /// How to reach it: a multiaddr, URL or other address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
}

/// How a commission is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommissionBasis {
    /// No commission.
    None,
    /// A fixed `amount`.
    Flat,
    /// `basis_points` (1/100 of a percent) of what the customer pays the third party.
    Percent,
}

/// The introducer's commission: always stated, possibly none (spec §5.10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commission {
    /// Basis.
    pub basis: CommissionBasis,
    /// For `flat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    /// For `percent`; at most 10 000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis_points: Option<u64>,
}

impl Validate for Commission {
    fn validate(&self) -> Result<(), Invalid> {
        match (self.basis, &self.amount, self.basis_points) {
            (CommissionBasis::None, None, None) => Ok(()),
            (CommissionBasis::Flat, Some(m), None) => m.validate(),
            (CommissionBasis::Percent, None, Some(bp)) if bp <= 10_000 => Ok(()),
            _ => Err(Invalid::Commission),
        }
    }
}

/// An introduction to a third party (spec §5.10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Introduction {
    /// Who.
    pub party: ThirdParty,
    /// What it offers.
    pub offering: String,
    /// The introducer's commission.
    pub commission: Commission,
}

impl Validate for Introduction {
    fn validate(&self) -> Result<(), Invalid> {
        text("party.name", &self.party.name, true)?;
        self.party.contact.as_deref().map_or(Ok(()), |c| text("party.contact", c, true))?;
        text("offering", &self.offering, true)?;
        self.commission.validate()
    }
}

/// What the customer asks to happen to one data category on separation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Export it to her.
    Return,
    /// Delete it.
    Delete,
    /// Export it, then delete it.
    ReturnAndDelete,
}

/// One category's requested disposition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disposition {
    /// Category.
    pub category: Category,
    /// Requested action.
    pub action: Action,
}

/// Starts a friendly separation (spec §5.11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeparationNotice {
    /// When the relationship ends (Unix ms); at least the agreed notice period after the notice.
    pub effective: Timestamp,
    /// Why, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Requested disposition per category; each category at most once.
    pub disposition: Vec<Disposition>,
}

impl Validate for SeparationNotice {
    fn validate(&self) -> Result<(), Invalid> {
        self.reason.as_deref().map_or(Ok(()), |r| text("reason", r, false))?;
        list("disposition", &self.disposition, false)?;
        let cats: Vec<_> = self.disposition.iter().map(|d| d.category.clone()).collect();
        unique("disposition categories", &cats)
    }
}

/// What happened to one category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Exported; `export` is the bundle's SHA-256.
    Returned,
    /// Deleted.
    Deleted,
    /// Exported (`export`), then deleted.
    ReturnedAndDeleted,
    /// Kept under `legal_basis` until `until`.
    Retained,
}

/// One category's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispositionItem {
    /// Category.
    pub category: Category,
    /// Outcome.
    pub outcome: Outcome,
    /// SHA-256 of the export bundle; for returned outcomes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<Digest32>,
    /// Law or contract that requires retention; for `retained` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<String>,
    /// End of retention (Unix ms); for `retained` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
}

impl Validate for DispositionItem {
    fn validate(&self) -> Result<(), Invalid> {
        let returned = matches!(self.outcome, Outcome::Returned | Outcome::ReturnedAndDeleted);
        let retained = self.outcome == Outcome::Retained;
        if returned != self.export.is_some() {
            return Err(Invalid::ExportHash);
        }
        if retained != self.legal_basis.is_some() || retained != self.until.is_some() {
            return Err(Invalid::Retention);
        }
        self.legal_basis.as_deref().map_or(Ok(()), |b| text("legal_basis", b, true))
    }
}

/// The vendor's statement of what it did with each category (spec §5.12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispositionStatement {
    /// Id of the separation notice answered.
    pub notice: MessageId,
    /// One item per category; must cover every category the notice named.
    pub items: Vec<DispositionItem>,
}

impl Validate for DispositionStatement {
    fn validate(&self) -> Result<(), Invalid> {
        list("items", &self.items, false)?;
        let cats: Vec<_> = self.items.iter().map(|d| d.category.clone()).collect();
        unique("item categories", &cats)?;
        self.items.iter().try_for_each(Validate::validate)
    }
}

/// The customer's confirmation that closes the relationship (spec §5.13).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosureReceipt {
    /// Id of the disposition statement confirmed.
    pub statement: MessageId,
}

/// Signed acknowledgement that a message is stored durably (spec §5.14).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// Id of the message stored.
    pub message: MessageId,
}

/// Signed refusal of a message, with a stable code from spec §8 (spec §5.15).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProblemReport {
    /// Problem code, e.g. `bad-signature`.
    pub code: String,
    /// Id of the refused message, if its bytes were received whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageId>,
    /// Human-readable detail.
    pub text: String,
}

impl ProblemReport {
    /// The most bytes of `text` a problem report of this node carries: the detail is for a
    /// human reader, and it often quotes what a peer sent.
    pub const MAX_TEXT: usize = 1000;

    /// A problem report with `code`, naming `message`, whose detail is `text` cut to at most
    /// [`ProblemReport::MAX_TEXT`] bytes at a character boundary (the text often carries
    /// peer-chosen strings, and a cut inside a character would not be UTF-8).
    pub fn new(code: Code, message: Option<MessageId>, text: &str) -> ProblemReport {
        ProblemReport { code: code.as_str().into(), message, text: bounded(text, ProblemReport::MAX_TEXT).into_owned() }
    }
}

/// `text` cut to at most `max` bytes at a character boundary, with `…` marking the cut when
/// there was one and `max` has room for it (the mark counts towards `max`). Use it for every string a peer chose that
/// this node keeps or repeats.
pub fn bounded(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    const MARK: &str = "…";
    if text.len() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let mark = if max >= MARK.len() { MARK } else { "" };
    let mut end = max - mark.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}{mark}", &text[..end]))
}

impl Validate for ProblemReport {
    fn validate(&self) -> Result<(), Invalid> {
        text("code", &self.code, true)?;
        text("text", &self.text, false)
    }
}

macro_rules! always_valid {
    ($($t:ty),*) => { $(impl Validate for $t { fn validate(&self) -> Result<(), Invalid> { Ok(()) } })* };
}
always_valid!(TermsAcceptance, Countersignature, ClosureReceipt, Receipt);
