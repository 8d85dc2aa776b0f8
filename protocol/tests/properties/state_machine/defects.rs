//! (e): a valid next message broken in one to three ways is refused with the code of the
//! first check it fails, and changes nothing.

use super::*;

/// Where in the order of checks (spec §7.4, with the time checks of §7.5) a defect is found;
/// a message with several defects is refused with the code of the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Relationship,
    Party,
    Recipient,
    Time,
    Seq,
    Prev,
    ChainTime,
    Ack,
    Reference,
}

/// One way to break a message the relationship would accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defect {
    WrongRelationship,
    Stranger,
    WrongRecipient,
    Future,
    TooOld,
    Expired,
    SeqAhead,
    SeqBehind,
    WrongPrev,
    PrevIsOther,
    BeforeLast,
    AckUnknown,
    AckOwn,
    AckBackwards,
    AckMissing,
    ReceiptUnknown,
    ReceiptOwn,
}

impl Defect {
    const ALL: [Defect; 17] = [
        Defect::WrongRelationship,
        Defect::Stranger,
        Defect::WrongRecipient,
        Defect::Future,
        Defect::TooOld,
        Defect::Expired,
        Defect::BeforeLast,
        Defect::SeqAhead,
        Defect::SeqBehind,
        Defect::WrongPrev,
        Defect::PrevIsOther,
        Defect::AckUnknown,
        Defect::AckOwn,
        Defect::AckBackwards,
        Defect::AckMissing,
        Defect::ReceiptUnknown,
        Defect::ReceiptOwn,
    ];

    /// Where it is found and the code it gets.
    fn verdict(self) -> (Stage, Code) {
        match self {
            Defect::WrongRelationship => (Stage::Relationship, Code::WrongRelationship),
            Defect::Stranger => (Stage::Party, Code::NotAParty),
            Defect::WrongRecipient => (Stage::Recipient, Code::WrongRecipient),
            Defect::Future | Defect::TooOld => (Stage::Time, Code::ClockSkew),
            Defect::Expired => (Stage::Time, Code::Expired),
            Defect::SeqAhead => (Stage::Seq, Code::ChainGap),
            Defect::SeqBehind => (Stage::Seq, Code::Fork),
            Defect::WrongPrev | Defect::PrevIsOther => (Stage::Prev, Code::Fork),
            Defect::BeforeLast => (Stage::ChainTime, Code::ClockSkew),
            Defect::AckUnknown | Defect::AckOwn | Defect::AckBackwards | Defect::AckMissing => {
                (Stage::Ack, Code::BadAck)
            }
            Defect::ReceiptUnknown | Defect::ReceiptOwn => (Stage::Reference, Code::UnknownReference),
        }
    }

    /// Defects that change the same field exclude each other.
    fn field(self) -> &'static str {
        match self {
            Defect::WrongRelationship => "rel",
            Defect::Stranger => "from",
            Defect::WrongRecipient => "to",
            Defect::Future | Defect::TooOld | Defect::Expired | Defect::BeforeLast => "at",
            Defect::SeqAhead | Defect::SeqBehind => "seq",
            Defect::WrongPrev | Defect::PrevIsOther => "prev",
            Defect::AckUnknown | Defect::AckOwn | Defect::AckBackwards | Defect::AckMissing => "ack",
            Defect::ReceiptUnknown | Defect::ReceiptOwn => "body",
        }
    }

    /// The other party's accepted messages that `sender`'s next `ack` may not name because
    /// `ack` would go backwards.
    fn behind(world: &World, sender: Role) -> Vec<MessageId> {
        let log = world.rel.log();
        let seq_of = |id: MessageId| log.iter().find(|m| m.id() == id).map(|m| m.header().seq);
        let last_ack = world.rel.last_id(sender).and_then(|id| log.iter().find(|m| m.id() == id)?.header().ack);
        let Some(acked) = last_ack.and_then(seq_of) else { return vec![] };
        let other = world.kid(sender.other());
        log.iter().filter(|m| m.header().from == other && m.header().seq < acked).map(Message::id).collect()
    }

    fn applies(self, world: &World, row: Row, sender: Role, d: &Draft) -> bool {
        let chained = !row.is_ack();
        let own_last = world.rel.last_id(sender);
        match self {
            Defect::WrongRelationship | Defect::Stranger | Defect::WrongRecipient => true,
            Defect::Future | Defect::TooOld | Defect::Expired => true,
            Defect::SeqAhead | Defect::AckUnknown => chained,
            Defect::SeqBehind => chained && world.rel.next_seq(sender) >= 2,
            Defect::WrongPrev => chained && d.header.seq >= 2,
            Defect::PrevIsOther => chained && d.header.seq >= 2 && world.rel.last_id(sender.other()).is_some(),
            Defect::BeforeLast => chained && world.last_at(sender).is_some(),
            Defect::AckOwn => chained && own_last.is_some(),
            Defect::AckBackwards => chained && !Self::behind(world, sender).is_empty(),
            Defect::AckMissing => {
                // The opener may leave out `ack` until it has once acknowledged (spec §7.4).
                let acked =
                    world.rel.log().iter().any(|m| m.header().from == world.kid(sender) && m.header().ack.is_some());
                chained && d.header.ack.is_some() && (sender != world.rel.opener() || acked)
            }
            Defect::ReceiptUnknown => row == Row::Receipt,
            Defect::ReceiptOwn => row == Row::Receipt && own_last.is_some(),
        }
    }

    fn apply(self, world: &World, sender: Role, d: &mut Draft, n: u64, bytes: [u8; 32]) {
        let h = &mut d.header;
        let now = h.created_at;
        let some_id = MessageId::from_bytes(bytes);
        let own_last = world.rel.last_id(sender);
        match self {
            Defect::WrongRelationship => {
                let mut other = [0; 16];
                other.copy_from_slice(&bytes[..16]);
                if other == *world.rel.id().as_bytes() {
                    other[0] ^= 1;
                }
                h.relationship = Some(RelationshipId::from_bytes(other));
            }
            Defect::Stranger => {
                d.signer = stranger();
                h.from = kid(&d.signer);
            }
            Defect::WrongRecipient => {
                let mut to = bytes;
                while [world.kid(Role::Customer), world.kid(Role::Vendor), h.from].contains(&KeyId::from_bytes(to)) {
                    to[0] ^= 1;
                }
                h.to = Some(KeyId::from_bytes(to));
            }
            Defect::Future => h.created_at = now + LIVE.max_future_skew + 1 + n % DAY,
            Defect::TooOld => h.created_at = now - LIVE.max_age.unwrap() - 1 - n % DAY,
            Defect::Expired => {
                let exp = now - n % 1000;
                h.expires_at = Some(exp);
                h.created_at = h.created_at.min(exp);
            }
            Defect::SeqAhead => {
                h.seq += 1 + n % 3;
                h.prev = h.prev.or(Some(some_id));
            }
            Defect::SeqBehind => {
                h.seq = 1 + n % (world.rel.next_seq(sender) - 1);
                if h.seq == 1 {
                    h.prev = None;
                }
            }
            Defect::WrongPrev => {
                h.prev = Some(if Some(some_id) == own_last { MessageId::from_bytes([0; 32]) } else { some_id })
            }
            Defect::PrevIsOther => h.prev = world.rel.last_id(sender.other()),
            Defect::BeforeLast => h.created_at = world.last_at(sender).unwrap() - 1 - n % 1000,
            Defect::AckUnknown => h.ack = Some(some_id),
            Defect::AckOwn => h.ack = own_last,
            Defect::AckBackwards => {
                let behind = Self::behind(world, sender);
                h.ack = Some(behind[n as usize % behind.len()]);
            }
            Defect::AckMissing => h.ack = None,
            Defect::ReceiptUnknown => d.body = Body::Receipt(Receipt { message: some_id }),
            Defect::ReceiptOwn => d.body = Body::Receipt(Receipt { message: own_last.unwrap() }),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (e) A valid next message broken in one to three ways (wrong relationship, sender,
    /// recipient, time, seq, prev, ack or reference) is refused with the code of the first
    /// check it fails, and changes nothing: afterwards the valid message is accepted exactly as
    /// it would have been.
    #[test]
    fn a_refused_message_changes_nothing(
        plan in plan(),
        choice in any::<usize>(),
        defects in prop::collection::vec((any::<usize>(), any::<u64>(), any::<[u8; 32]>()), 1..=3),
    ) {
        let world = World::build(&plan);
        let at = world.now + world.step;
        let allowed: Vec<(Row, Role)> = Row::ALL
            .iter()
            .flat_map(|&row| ROLES.map(|sender| (row, sender)))
            .filter(|&(row, sender)| world.expected(row, sender).is_ok())
            .collect();
        // Mostly a chained message, which has more ways to be wrong than an acknowledgement.
        let chained: Vec<_> = allowed.iter().copied().filter(|(row, _)| !row.is_ack()).collect();
        let pool = if chained.is_empty() || choice % 5 == 0 { &allowed } else { &chained };
        let (row, sender) = pool[choice / 5 % pool.len()];
        let valid = world.draft(row, sender, at);
        let mut broken = valid.clone();
        let mut applied: Vec<Defect> = Vec::new();
        for (pick, n, bytes) in defects {
            let options: Vec<Defect> = Defect::ALL
                .into_iter()
                .filter(|d| applied.iter().all(|a| a.field() != d.field()) && d.applies(&world, row, sender, &broken))
                .collect();
            // A field first, then one of the defects of that field.
            let mut fields: Vec<&str> = options.iter().map(|d| d.field()).collect();
            fields.dedup();
            let field = fields[pick % fields.len()];
            let of_field: Vec<Defect> = options.into_iter().filter(|d| d.field() == field).collect();
            let defect = of_field[pick / fields.len() % of_field.len()];
            defect.apply(&world, sender, &mut broken, n, bytes);
            applied.push(defect);
        }
        let (_, want) = applied.iter().map(|d| d.verdict()).min().unwrap();
        let what = format!("{row:?} from {sender:?} while {} with {applied:?}", world.rel.phase());
        let (valid, broken) = (valid.seal(), broken.seal());

        let mut rel = world.rel.clone();
        let before = snapshot(&rel);
        let refused = rel.handle(&broken, at, LIVE);
        prop_assert_eq!(refused.map_err(|e| e.code), Err(want), "{}", what);
        prop_assert_eq!(snapshot(&rel), before, "{}: refused, yet the relationship changed", what);

        let mut pristine = world.rel.clone();
        let expected = pristine.handle(&valid, at, LIVE);
        prop_assert!(expected.is_ok(), "{}: the valid message was refused: {:?}", what, expected);
        prop_assert_eq!(rel.handle(&valid, at, LIVE), expected, "{}", what);
        prop_assert_eq!(snapshot(&rel), snapshot(&pristine), "{}", what);
    }
}
