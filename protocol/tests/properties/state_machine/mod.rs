//! (d)–(e): the relationship state machine refuses exactly what the state table of spec §7.3.2
//! forbids (the table here), and a refused message changes nothing (`defects`).

mod defects;

use super::*;

// =============================================================================================
// d–e: the relationship state machine.

const T0: Timestamp = 1_750_000_000_000;
const LIVE: Policy = Policy::LIVE;
const DAY: u64 = 86_400_000;

/// The state table of spec §7.3.2, copied from the spec. Columns: the phase in the sender's
/// view, in the order of [`PHASES`]. A cell is "either", "C" (customer only, `not-permitted`
/// for the vendor), "V" (vendor only) or the code of a refusal; superscripts are the notes.
const STATE_TABLE: &str = "
| `offer` | V | `out-of-state` | `out-of-state` | `out-of-state` | `closed` |
| `terms_proposal` | either ¹ | either ¹ | either ¹ | `out-of-state` | `closed` |
| `terms_acceptance` | `out-of-state` | either ² | either ² | `out-of-state` | `closed` |
| `terms_rejection` | `out-of-state` | either ² | either ² | `out-of-state` | `closed` |
| `consent_grant` | `out-of-state` | `out-of-state` | C ³ | `out-of-state` | `closed` |
| `consent_revocation` | `out-of-state` | `out-of-state` | C ⁴ | C ⁴ | `closed` |
| `usage_report`, `impact_report` | `out-of-state` | `out-of-state` | either ³ | `out-of-state` | `closed` |
| `countersignature` | `out-of-state` | `out-of-state` | either ⁵ | either ⁵ | `closed` |
| `data_share` with `data` or `insight` | `out-of-state` | `out-of-state` | either ³ ⁶ | `out-of-state` | `closed` |
| `data_share` with `export` | `out-of-state` | `out-of-state` | `out-of-state` | V | `closed` |
| `introduction` | `out-of-state` | `out-of-state` | either ³ | `out-of-state` | `closed` |
| `separation_notice` | either ⁷ | either ⁷ | either ⁷ | `out-of-state` | `closed` |
| `disposition_statement` | `out-of-state` | `out-of-state` | `out-of-state` | V ⁸ | `closed` |
| `closure_receipt` | `out-of-state` | `out-of-state` | `out-of-state` | C ⁹ | `closed` |
| `receipt` | either ¹⁰ | either ¹⁰ | either ¹⁰ | either ¹⁰ | either ¹⁰ |
| `problem_report` | either | either | either | either | either |
";

const PHASES: [Phase; 5] = [Phase::Proposed, Phase::Negotiating, Phase::Active, Phase::Separating, Phase::Closed];
const ROLES: [Role; 2] = [Role::Customer, Role::Vendor];

/// What a message can be, one per distinct rule of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    Offer,
    TermsProposal,
    TermsAcceptance,
    TermsRejection,
    ConsentGrant,
    ConsentRevocation,
    UsageReport,
    ImpactReport,
    Countersignature,
    ShareData,
    ShareInsight,
    ShareExport,
    Introduction,
    SeparationNotice,
    DispositionStatement,
    ClosureReceipt,
    Receipt,
    ProblemReport,
}

impl Row {
    const ALL: [Row; 18] = [
        Row::Offer,
        Row::TermsProposal,
        Row::TermsAcceptance,
        Row::TermsRejection,
        Row::ConsentGrant,
        Row::ConsentRevocation,
        Row::UsageReport,
        Row::ImpactReport,
        Row::Countersignature,
        Row::ShareData,
        Row::ShareInsight,
        Row::ShareExport,
        Row::Introduction,
        Row::SeparationNotice,
        Row::DispositionStatement,
        Row::ClosureReceipt,
        Row::Receipt,
        Row::ProblemReport,
    ];

    /// The first cell of its row in [`STATE_TABLE`].
    fn label(self) -> &'static str {
        match self {
            Row::Offer => "`offer`",
            Row::TermsProposal => "`terms_proposal`",
            Row::TermsAcceptance => "`terms_acceptance`",
            Row::TermsRejection => "`terms_rejection`",
            Row::ConsentGrant => "`consent_grant`",
            Row::ConsentRevocation => "`consent_revocation`",
            Row::UsageReport | Row::ImpactReport => "`usage_report`, `impact_report`",
            Row::Countersignature => "`countersignature`",
            Row::ShareData | Row::ShareInsight => "`data_share` with `data` or `insight`",
            Row::ShareExport => "`data_share` with `export`",
            Row::Introduction => "`introduction`",
            Row::SeparationNotice => "`separation_notice`",
            Row::DispositionStatement => "`disposition_statement`",
            Row::ClosureReceipt => "`closure_receipt`",
            Row::Receipt => "`receipt`",
            Row::ProblemReport => "`problem_report`",
        }
    }

    fn is_ack(self) -> bool {
        matches!(self, Row::Receipt | Row::ProblemReport)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    Either,
    Only(Role),
    Refused(Code),
}

fn cell(row: Row, phase: Phase) -> Cell {
    let prefix = format!("| {} |", row.label());
    let line = STATE_TABLE.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no row {prefix}"));
    let cells: Vec<&str> = line.split('|').map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(cells.len(), 1 + PHASES.len(), "{line}");
    let column = 1 + PHASES.iter().position(|&p| p == phase).unwrap();
    match cells[column].split_whitespace().next().unwrap().trim_matches('`') {
        "either" => Cell::Either,
        "C" => Cell::Only(Role::Customer),
        "V" => Cell::Only(Role::Vendor),
        code => Cell::Refused(code.parse().unwrap_or_else(|e| panic!("{line}: {e}"))),
    }
}

/// The code the table gives `sender` for `row` in `phase`, or `None` if it allows it.
fn forbidden(row: Row, phase: Phase, sender: Role) -> Option<Code> {
    match cell(row, phase) {
        Cell::Either => None,
        Cell::Only(role) if role == sender => None,
        Cell::Only(_) => Some(Code::NotPermitted),
        Cell::Refused(code) => Some(code),
    }
}

#[test]
fn every_row_of_the_state_table_is_tested() {
    for line in STATE_TABLE.lines().filter(|l| !l.is_empty()) {
        assert!(Row::ALL.iter().any(|r| line.starts_with(&format!("| {} |", r.label()))), "untested row {line}");
    }
    for row in Row::ALL {
        for phase in PHASES {
            cell(row, phase);
        }
    }
}

fn slot(role: Role) -> usize {
    match role {
        Role::Customer => 0,
        Role::Vendor => 1,
    }
}

fn keys() -> [SigningKey; 2] {
    [SigningKey::from_bytes(&[0xc1; 32]), SigningKey::from_bytes(&[0x7e; 32])]
}

fn stranger() -> SigningKey {
    SigningKey::from_bytes(&[0x5a; 32])
}

fn p(s: &str) -> Purpose {
    Purpose::new(s).unwrap()
}

fn c(s: &str) -> Category {
    Category::new(s).unwrap()
}

const NOTICE_CATEGORIES: [&str; 3] = ["pd:Location", "pd:Name", "urn:example:meter-reading"];

fn fixed_terms(notice_days: u64) -> Terms {
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
        data: DataTerms { purposes: vec![p("dpv:ServiceProvision")], categories: vec![c("pd:Location")] },
        portability: Portability { format: "application/json".into(), deadline: 30 * 86_400 },
        deletion_deadline: 30 * 86_400,
        exit_fee: Money::new("EUR", 0),
    }
}

fn offer() -> Body {
    Body::Offer(Offer {
        title: "Solar panel lease".into(),
        description: String::new(),
        price: fixed_terms(0).price,
        terms: None,
    })
}

fn proposal(role: Role, notice_days: u64) -> Body {
    Body::TermsProposal(TermsProposal { role, terms: fixed_terms(notice_days) })
}

fn share(content: ShareContent) -> Body {
    Body::DataShare(DataShare {
        content,
        purpose: (content != ShareContent::Export).then(|| p("dpv:ServiceProvision")),
        categories: vec![c("pd:Location")],
        commitment: Digest32::commit(&[3; 32], b"{\"kwh\": 12}"),
        media_type: "application/json".into(),
        size: 11,
    })
}

fn statement(notice: MessageId, disposition: &[Disposition]) -> Body {
    let items = disposition
        .iter()
        .map(|d| {
            let (outcome, export) = match d.action {
                Action::Return => (Outcome::Returned, Some(Digest32::of(b"export"))),
                Action::Delete => (Outcome::Deleted, None),
                Action::ReturnAndDelete => (Outcome::ReturnedAndDeleted, Some(Digest32::of(b"export"))),
            };
            DispositionItem { category: d.category.clone(), outcome, export, legal_basis: None, until: None }
        })
        .collect();
    Body::DispositionStatement(DispositionStatement { notice, items })
}

#[derive(Debug, Clone, Copy)]
enum Opening {
    Offer,
    Proposal(Role),
}

/// How to walk a relationship into `phase` through real flows.
#[derive(Debug, Clone)]
struct Plan {
    phase: Phase,
    opening: Opening,
    /// Who proposes, when the relationship was opened by an offer.
    proposer: Role,
    /// Whether the other party answers the proposal with a counter-proposal.
    counter: bool,
    /// Who proposes a renewal once active, if anyone.
    renewal: Option<Role>,
    notice_by: Role,
    notice_days: u64,
    disposition: Vec<(usize, Action)>,
    /// Whether the vendor has answered the notice when the relationship is separating.
    statement: bool,
    /// Milliseconds between messages.
    step: u64,
    rel: [u8; 16],
}

fn plan() -> impl Strategy<Value = Plan> {
    let role = || select(ROLES.to_vec());
    let action = select(vec![Action::Return, Action::Delete, Action::ReturnAndDelete]);
    (
        (select(PHASES.to_vec()), prop_oneof![Just(Opening::Offer), role().prop_map(Opening::Proposal)]),
        (role(), any::<bool>(), prop::option::of(role())),
        (role(), 0..60u64, prop::collection::btree_map(0..NOTICE_CATEGORIES.len(), action, 0..=3)),
        (any::<bool>(), 1..3_600_000u64, any::<[u8; 16]>()),
    )
        .prop_map(
            |((phase, opening), (proposer, counter, renewal), (notice_by, notice_days, d), (statement, step, rel))| {
                // A relationship opened by a proposal starts out negotiating.
                let opening = if phase == Phase::Proposed { Opening::Offer } else { opening };
                Plan {
                    phase,
                    opening,
                    proposer,
                    counter,
                    renewal,
                    notice_by,
                    notice_days,
                    disposition: d.into_iter().collect(),
                    statement,
                    step,
                    rel,
                }
            },
        )
}

/// A relationship walked into some phase, with what the test needs to know about it.
#[derive(Debug, Clone)]
struct World {
    keys: [SigningKey; 2],
    rel: Relationship,
    now: Timestamp,
    step: u64,
    open_proposal: Option<(MessageId, Role)>,
    grant: Option<MessageId>,
    reports: [Option<MessageId>; 2],
    notice: Option<(MessageId, Vec<Disposition>)>,
    statement: Option<MessageId>,
}

/// A message before it is sealed.
#[derive(Debug, Clone)]
struct Draft {
    signer: SigningKey,
    header: Header,
    body: Body,
}

impl Draft {
    fn seal(self) -> Message {
        Message::seal(Payload { header: self.header, body: self.body }, &self.signer).unwrap()
    }
}

impl World {
    fn kid(&self, role: Role) -> KeyId {
        kid(&self.keys[slot(role)])
    }

    /// Sends `body` from `role` one step later; it must be accepted.
    fn ok(&mut self, role: Role, body: Body) -> MessageId {
        self.now += self.step;
        let kind = body.kind();
        let m =
            Draft { signer: self.keys[slot(role)].clone(), header: self.rel.next_header(role, self.now), body }.seal();
        let events = self.rel.handle(&m, self.now, LIVE).unwrap_or_else(|e| panic!("{kind} from {role:?}: {e}"));
        assert!(matches!(events[0], Event::Accepted { .. }), "{events:?}");
        m.id()
    }

    fn build(plan: &Plan) -> World {
        let keys = keys();
        let (first, body) = match plan.opening {
            Opening::Offer => (Role::Vendor, offer()),
            Opening::Proposal(role) => (role, proposal(role, plan.notice_days)),
        };
        let header = Header::opening(
            RelationshipId::from_bytes(plan.rel),
            kid(&keys[slot(first)]),
            kid(&keys[slot(first.other())]),
            T0,
        );
        let m = Draft { signer: keys[slot(first)].clone(), header, body }.seal();
        let (rel, _) = Relationship::open(&m, T0, LIVE).unwrap();
        let mut w = World {
            keys,
            rel,
            now: T0,
            step: plan.step,
            open_proposal: None,
            grant: None,
            reports: [None, None],
            notice: None,
            statement: None,
        };
        if let Opening::Proposal(role) = plan.opening {
            w.open_proposal = Some((m.id(), role));
        }
        if plan.phase == Phase::Proposed {
            return w;
        }
        if w.open_proposal.is_none() {
            let id = w.ok(plan.proposer, proposal(plan.proposer, plan.notice_days));
            w.open_proposal = Some((id, plan.proposer));
        }
        if plan.counter {
            let (id, by) = w.open_proposal.unwrap();
            let counter = TermsRejection {
                proposal: id,
                reason: "shorter notice, please".into(),
                counter: Some(fixed_terms(plan.notice_days)),
            };
            let id = w.ok(by.other(), Body::TermsRejection(counter));
            w.open_proposal = Some((id, by.other()));
        }
        if plan.phase == Phase::Negotiating {
            return w;
        }
        let (id, by) = w.open_proposal.take().unwrap();
        w.ok(by.other(), Body::TermsAcceptance(TermsAcceptance { proposal: id }));
        w.grant = Some(w.ok(
            Role::Customer,
            Body::ConsentGrant(ConsentGrant {
                purposes: vec![p("dpv:ServiceProvision")],
                categories: vec![c("pd:Location"), c("pd:Name")],
                third_party_sharing: false,
                retention: 90 * 86_400,
                expires: None,
            }),
        ));
        for role in ROLES {
            w.reports[slot(role)] = Some(w.ok(role, Self::report(role, w.now)));
        }
        if let Some(role) = plan.renewal {
            let id = w.ok(role, proposal(role, plan.notice_days));
            w.open_proposal = Some((id, role));
        }
        if plan.phase == Phase::Active {
            return w;
        }
        let disposition: Vec<_> = plan
            .disposition
            .iter()
            .map(|&(i, action)| Disposition { category: c(NOTICE_CATEGORIES[i]), action })
            .collect();
        let effective = w.notice_effective(w.now + w.step);
        let id = w.ok(
            plan.notice_by,
            Body::SeparationNotice(SeparationNotice { effective, reason: None, disposition: disposition.clone() }),
        );
        w.notice = Some((id, disposition));
        if plan.statement || plan.phase == Phase::Closed {
            let (id, d) = w.notice.clone().unwrap();
            w.statement = Some(w.ok(Role::Vendor, statement(id, &d)));
        }
        if plan.phase == Phase::Separating {
            return w;
        }
        w.ok(Role::Customer, Body::ClosureReceipt(ClosureReceipt { statement: w.statement.unwrap() }));
        w
    }

    fn report(role: Role, now: Timestamp) -> Body {
        let r = Report { metric: "kWh".into(), unit: "kWh".into(), start: now - DAY, end: now, value: 42 };
        match role {
            Role::Customer => Body::ImpactReport(r),
            Role::Vendor => Body::UsageReport(r),
        }
    }

    /// The earliest effective date a notice sent at `at` may name (spec §7.3.2 note 7).
    fn notice_effective(&self, at: Timestamp) -> Timestamp {
        at + self.rel.agreement().map_or(0, |a| a.terms.notice_period * 1000)
    }

    /// The most valid message of `row` that `sender` can send at `at`: the next header, and
    /// references to the messages the row's notes ask for, where they exist.
    fn draft(&self, row: Row, sender: Role, at: Timestamp) -> Draft {
        let unknown = MessageId::from_bytes([0xee; 32]);
        let other = sender.other();
        let header = if row.is_ack() {
            Header::ack(Some(self.rel.id()), self.kid(sender), self.kid(other), at)
        } else {
            self.rel.next_header(sender, at)
        };
        let open_proposal = self.open_proposal.map_or(unknown, |(id, _)| id);
        let body = match row {
            Row::Offer => offer(),
            Row::TermsProposal => proposal(sender, 7),
            Row::TermsAcceptance => Body::TermsAcceptance(TermsAcceptance { proposal: open_proposal }),
            Row::TermsRejection => Body::TermsRejection(TermsRejection {
                proposal: open_proposal,
                reason: String::new(),
                counter: Some(fixed_terms(3)),
            }),
            Row::ConsentGrant => Body::ConsentGrant(ConsentGrant {
                purposes: vec![p("dpv:Marketing")],
                categories: vec![c("pd:EmailAddress")],
                third_party_sharing: true,
                retention: 0,
                expires: Some(at + DAY),
            }),
            Row::ConsentRevocation => {
                Body::ConsentRevocation(ConsentRevocation { grant: self.grant.unwrap_or(unknown), reason: None })
            }
            Row::UsageReport | Row::ImpactReport => {
                let (Body::UsageReport(r) | Body::ImpactReport(r)) = Self::report(sender, at) else { unreachable!() };
                if row == Row::UsageReport {
                    Body::UsageReport(r)
                } else {
                    Body::ImpactReport(r)
                }
            }
            Row::Countersignature => {
                Body::Countersignature(Countersignature { report: self.reports[slot(other)].unwrap_or(unknown) })
            }
            Row::ShareData => share(ShareContent::Data),
            Row::ShareInsight => share(ShareContent::Insight),
            Row::ShareExport => share(ShareContent::Export),
            Row::Introduction => Body::Introduction(Introduction {
                party: ThirdParty { name: "Roof Co".into(), key: None, contact: Some("urn:roof".into()) },
                offering: "roof inspection".into(),
                commission: Commission { basis: CommissionBasis::None, amount: None, basis_points: None },
            }),
            Row::SeparationNotice => Body::SeparationNotice(SeparationNotice {
                effective: self.notice_effective(at),
                reason: Some("moving".into()),
                disposition: vec![],
            }),
            Row::DispositionStatement => match &self.notice {
                Some((id, d)) => statement(*id, d),
                None => statement(unknown, &[]),
            },
            Row::ClosureReceipt => {
                Body::ClosureReceipt(ClosureReceipt { statement: self.statement.unwrap_or(unknown) })
            }
            Row::Receipt => Body::Receipt(Receipt { message: self.rel.last_id(other).unwrap_or(unknown) }),
            Row::ProblemReport => Body::ProblemReport(ProblemReport {
                code: "consent-required".into(),
                message: self.rel.last_id(other),
                text: "no".into(),
            }),
        };
        Draft { signer: self.keys[slot(sender)].clone(), header, body }
    }

    /// The verdict on [`Self::draft`]: the table first (phase, then role), then the notes.
    fn expected(&self, row: Row, sender: Role) -> Result<(), Code> {
        if let Some(code) = forbidden(row, self.rel.phase(), sender) {
            return Err(code);
        }
        let present = |yes: bool| if yes { Ok(()) } else { Err(Code::UnknownReference) };
        match row {
            Row::TermsAcceptance | Row::TermsRejection => match self.open_proposal {
                None => Err(Code::UnknownReference),
                Some((_, by)) if by == sender => Err(Code::NotPermitted),
                Some(_) => Ok(()),
            },
            Row::ConsentRevocation => present(self.grant.is_some()),
            Row::Countersignature => present(self.reports[slot(sender.other())].is_some()),
            Row::DispositionStatement => present(self.notice.is_some()),
            Row::ClosureReceipt => present(self.statement.is_some()),
            Row::Receipt => present(self.rel.last_id(sender.other()).is_some()),
            _ => Ok(()),
        }
    }

    /// The `at` of the latest message of `role`'s chain.
    fn last_at(&self, role: Role) -> Option<Timestamp> {
        let last = self.rel.last_id(role)?;
        self.rel.log().iter().find(|m| m.id() == last).map(|m| m.header().created_at)
    }
}

/// Everything observable about a relationship, and a digest of its whole debug form.
#[derive(Debug, PartialEq)]
struct Snapshot {
    phase: Phase,
    log: Vec<MessageId>,
    acks: BTreeSet<MessageId>,
    next_seq: [u64; 2],
    last: [Option<MessageId>; 2],
    agreement: Option<Agreement>,
    grants: Vec<(MessageId, Grant)>,
    all: Digest32,
}

fn snapshot(rel: &Relationship) -> Snapshot {
    let mut grants: Vec<_> = rel.grants().iter().map(|(id, g)| (*id, g.clone())).collect();
    grants.sort_by_key(|(id, _)| *id);
    Snapshot {
        phase: rel.phase(),
        log: rel.log().iter().map(Message::id).collect(),
        acks: rel.acknowledgements().map(Message::id).collect(),
        next_seq: ROLES.map(|r| rel.next_seq(r)),
        last: ROLES.map(|r| rel.last_id(r)),
        agreement: rel.agreement().cloned(),
        grants,
        all: Digest32::of(format!("{rel:?}").as_bytes()),
    }
}

/// Applies `m` to a copy of the relationship: a refusal must carry `expected`'s code and
/// change nothing; an acceptance must be expected.
fn check(
    world: &World,
    m: &Message,
    at: Timestamp,
    expected: Result<(), Code>,
    what: &str,
) -> Result<(), TestCaseError> {
    let mut rel = world.rel.clone();
    let before = snapshot(&rel);
    match (expected, rel.handle(m, at, LIVE)) {
        (Err(want), Err(e)) => {
            prop_assert_eq!(e.code, want, "{}: {}", what, e);
            prop_assert_eq!(snapshot(&rel), before, "{}: refused, yet the relationship changed", what);
        }
        (Ok(()), Ok(events)) => prop_assert!(
            matches!(events[0], Event::Accepted { .. } | Event::Receipted { .. } | Event::Refused { .. }),
            "{}: {:?}",
            what,
            events
        ),
        (want, got) => prop_assert!(false, "{}: expected {:?}, got {:?}", what, want, got),
    }
    Ok(())
}

/// Every (kind, sender) pair against one relationship.
fn check_table(world: &World) -> Result<(), TestCaseError> {
    let at = world.now + world.step;
    for row in Row::ALL {
        for sender in ROLES {
            let m = world.draft(row, sender, at).seal();
            let what = format!("{row:?} from {sender:?} while {}", world.rel.phase());
            check(world, &m, at, world.expected(row, sender), &what)?;
        }
    }
    Ok(())
}

#[test]
fn every_cell_of_the_state_table() {
    for phase in PHASES {
        for (opening, renewal, statement) in
            [(Opening::Offer, None, false), (Opening::Proposal(Role::Customer), Some(Role::Vendor), true)]
        {
            let plan = Plan {
                phase,
                opening: if phase == Phase::Proposed { Opening::Offer } else { opening },
                proposer: Role::Vendor,
                counter: false,
                renewal,
                notice_by: Role::Customer,
                notice_days: 7,
                disposition: vec![(0, Action::Delete), (2, Action::ReturnAndDelete)],
                statement,
                step: 1000,
                rel: [5; 16],
            };
            let world = World::build(&plan);
            assert_eq!(world.rel.phase(), phase);
            check_table(&world).unwrap();
        }
    }
}

/// Spec §7.3.1: only an `offer` or a `terms_proposal` at `seq` 1 without `ack` opens a
/// relationship; anything else is `unknown-relationship`, and the time rules still apply.
#[test]
fn only_an_offer_or_a_proposal_opens_a_relationship() {
    let world = World::build(&Plan {
        phase: Phase::Proposed,
        opening: Opening::Offer,
        proposer: Role::Vendor,
        counter: false,
        renewal: None,
        notice_by: Role::Customer,
        notice_days: 0,
        disposition: vec![],
        statement: false,
        step: 1000,
        rel: [5; 16],
    });
    let fresh = RelationshipId::from_bytes([6; 16]);
    for row in Row::ALL {
        for sender in ROLES {
            let mut d = world.draft(row, sender, T0);
            d.header = if row.is_ack() {
                Header::ack(Some(fresh), world.kid(sender), world.kid(sender.other()), T0)
            } else {
                Header::opening(fresh, world.kid(sender), world.kid(sender.other()), T0)
            };
            let opens = matches!(row, Row::Offer | Row::TermsProposal);
            let r = Relationship::open(&d.clone().seal(), T0, LIVE);
            assert_eq!(r.as_ref().err().map(|e| e.code), (!opens).then_some(Code::UnknownRelationship), "{row:?}");
            if let Ok((rel, _)) = r {
                // An offer makes its sender the vendor; a proposal gives it the body's role.
                let opener = if row == Row::Offer { Role::Vendor } else { sender };
                assert_eq!(rel.opener(), opener);
                assert_eq!(rel.key(opener), world.kid(sender));
                assert_eq!(rel.key(opener.other()), world.kid(sender.other()));
                assert_eq!(rel.log().len(), 1);
            }
            if !opens {
                continue;
            }
            let refused = |header: Header, now: Timestamp| {
                let m = Draft { header, ..d.clone() }.seal();
                Relationship::open(&m, now, LIVE).err().map(|e| e.code)
            };
            let h = d.header.clone();
            assert_eq!(
                refused(Header { ack: Some(world.rel.last_id(Role::Vendor).unwrap()), ..h.clone() }, T0),
                Some(Code::UnknownRelationship)
            );
            assert_eq!(
                refused(Header { seq: 2, prev: Some(MessageId::from_bytes([1; 32])), ..h.clone() }, T0),
                Some(Code::UnknownRelationship)
            );
            if row == Row::Offer {
                assert_eq!(refused(Header::public(h.from, T0), T0), Some(Code::UnknownRelationship));
            }
            assert_eq!(refused(h.clone().with_expiry(T0), T0), Some(Code::Expired));
            assert_eq!(refused(h.clone(), T0 - LIVE.max_future_skew - 1), Some(Code::ClockSkew));
            assert_eq!(refused(h, T0 + LIVE.max_age.unwrap() + 1), Some(Code::ClockSkew));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// (d) In a relationship walked into any phase, every (kind, sender) pair the state table
    /// forbids is refused with the table's code and changes nothing; every pair it allows is
    /// accepted (or refused only by the notes, with their code).
    #[test]
    fn the_state_machine_refuses_exactly_what_the_table_forbids(plan in plan()) {
        let world = World::build(&plan);
        prop_assert_eq!(world.rel.phase(), plan.phase);
        check_table(&world)?;
    }
}
