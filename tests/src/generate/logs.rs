//! `logs/`: whole relationship logs, valid, reordered, cut or tampered with, each judged by
//! log verification.

use super::invalid::splice;
use super::*;

/// The lifecycle's envelopes in a fixed shuffled order (Fisher–Yates from a seeded ChaCha20).
pub(super) fn shuffled(items: &[Item]) -> Vec<Item> {
    let mut rng = ChaCha20Rng::from_seed(digest("shuffle"));
    let mut out = items.to_vec();
    for i in (1..out.len()).rev() {
        let j = (rng.next_u32() as usize) % (i + 1);
        out.swap(i, j);
    }
    out
}

pub(super) fn logs(out: &mut Out, cast: &Cast, w: &Walk<'_>) {
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
