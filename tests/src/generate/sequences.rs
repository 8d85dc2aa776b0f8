//! `sequences/`: messages delivered to a relationship in order, out of order, repeated or
//! broken, each judged by the state machine message by message.

use super::*;

pub(super) fn sequences(out: &mut Out, cast: &Cast, w: &Walk<'_>) {
    use Role::{Customer as C, Vendor as V};
    out.sequence(
        "lifecycle",
        "A whole relationship, from the vendor's offer to the customer's closure receipt: negotiation with a counter-proposal, consent, a countersigned usage report, an impact report, data both ways, a problem report, an introduction, revocation, and friendly separation with export, disposition and closure. Every message is accepted.",
        w.items(),
        None,
    );

    // Each defect follows a prefix of the lifecycle.
    let defect = |out: &mut Out,
                  name: &str,
                  description: &str,
                  after: &str,
                  make: &dyn Fn(&mut Walk<'_>) -> Message,
                  code: Code| {
        let mut p = w.upto(after);
        let m = make(&mut p);
        let mut items = p.items();
        items.push(Item::of("defect", describe(&m), &m));
        out.sequence(name, description, items, Some(code));
    };

    defect(out, "duplicate-is-idempotent-then-out-of-state", "The offer is delivered twice (a duplicate is accepted and changes nothing); then the customer grants consent before any terms: `consent_grant` is not allowed in phase proposed.", "offer", &|p| {
        p.messages.push(("offer-again".into(), p.message("offer").clone()));
        let h = p.next(C);
        p.craft(h, grant())
    }, Code::OutOfState);
    defect(
        out,
        "out-of-state-share-while-separating",
        "After the separation notice, the vendor shares an insight: only the separation flow may follow.",
        "notice",
        &|p| {
            let h = p.next(V);
            p.craft(h, insight())
        },
        Code::OutOfState,
    );
    defect(
        out,
        "not-permitted-vendor-grant",
        "The vendor sends a consent grant; only the customer grants consent.",
        "acceptance",
        &|p| {
            let h = p.next(V);
            p.craft(h, grant())
        },
        Code::NotPermitted,
    );
    defect(
        out,
        "consent-required-no-grant",
        "Terms are agreed but no consent was granted; the vendor shares an insight. Consent is default-deny.",
        "acceptance",
        &|p| {
            let h = p.next(V);
            p.craft(h, insight())
        },
        Code::ConsentRequired,
    );
    defect(
        out,
        "consent-required-out-of-scope",
        "The grant covers location and panel telemetry; the vendor shares data about the customer's finances.",
        "grant",
        &|p| {
            let h = p.next(V);
            p.craft(h, share(ShareContent::Insight, Some("dpv:ServiceOptimisation"), &["pd:Financial"], b"{}", "scope"))
        },
        Code::ConsentRequired,
    );
    defect(out, "consent-required-after-revocation", "The customer revoked the grant; the vendor's next share, covered by the revoked grant alone, is refused at once.", "revocation", &|p| {
        let h = p.next(V);
        p.craft(h, insight())
    }, Code::ConsentRequired);
    defect(
        out,
        "chain-gap",
        "The vendor's next message says seq n + 2: message n + 1 is missing.",
        "grant",
        &|p| {
            let mut h = p.next(V);
            h.seq += 1;
            p.craft(h, Body::UsageReport(report("energy delivered", "kWh", T0, 1)))
        },
        Code::ChainGap,
    );
    defect(
        out,
        "fork",
        "The vendor sends a second, different message in the place (seq and prev) of its usage report.",
        "usage-report",
        &|p| {
            let h = p.message("usage-report").header().clone();
            p.craft(h, Body::UsageReport(report("energy delivered", "kWh", T0 + DAY, 999)))
        },
        Code::Fork,
    );
    defect(
        out,
        "wrong-relationship-replay",
        "A message signed by the vendor for another relationship with the same customer is replayed into this one.",
        "grant",
        &|p| {
            let other = Header::opening(rel_id("other"), kid(&cast.vendor), kid(&cast.customer), p.now + MINUTE);
            p.craft(other, offer())
        },
        Code::WrongRelationship,
    );
    defect(
        out,
        "not-a-party",
        "An outsider sends a message into the relationship.",
        "grant",
        &|p| {
            let mut h = p.next(V);
            h.from = kid(&cast.outsider);
            h.seq = 1;
            h.prev = None;
            h.ack = None;
            p.craft(h, Body::UsageReport(report("energy delivered", "kWh", T0, 1)))
        },
        Code::NotAParty,
    );
    defect(
        out,
        "wrong-recipient",
        "The vendor addresses its next message to an outsider instead of the customer.",
        "grant",
        &|p| {
            let mut h = p.next(V);
            h.to = Some(kid(&cast.outsider));
            p.craft(h, Body::UsageReport(report("energy delivered", "kWh", T0, 1)))
        },
        Code::WrongRecipient,
    );
    defect(
        out,
        "bad-ack",
        "The vendor's `ack` names a message the customer never sent.",
        "grant",
        &|p| {
            let mut h = p.next(V);
            h.ack = Some(MessageId::of(b"no such message"));
            p.craft(h, Body::UsageReport(report("energy delivered", "kWh", T0, 1)))
        },
        Code::BadAck,
    );
    defect(
        out,
        "clock-skew-backwards",
        "The vendor's next message is dated before its previous one.",
        "usage-report",
        &|p| {
            let mut h = p.next(V);
            h.created_at = p.message("usage-report").header().created_at - MINUTE;
            p.craft(h, Body::ImpactReport(report("CO2 emissions avoided", "kg", T0, 1)))
        },
        Code::ClockSkew,
    );
    defect(
        out,
        "expired-proposal",
        "The customer's proposal expires 7 days after it was made; the vendor accepts it 8 days later.",
        "proposal",
        &|p| {
            let mut h = p.next(V);
            h.created_at = p.message("proposal").header().created_at + 8 * DAY;
            p.craft(h, Body::TermsAcceptance(TermsAcceptance { proposal: p.id("proposal") }))
        },
        Code::Expired,
    );
    defect(out, "stale-proposal", "The vendor made a counter-proposal, which supersedes the customer's; the vendor then tries to accept the customer's original proposal.", "rejection", &|p| {
        let h = p.next(V);
        p.craft(h, Body::TermsAcceptance(TermsAcceptance { proposal: p.id("proposal") }))
    }, Code::StaleProposal);
    defect(
        out,
        "unknown-reference",
        "The customer countersigns a report that does not exist.",
        "grant",
        &|p| {
            let h = p.next(C);
            p.craft(h, Body::Countersignature(Countersignature { report: MessageId::of(b"no such report") }))
        },
        Code::UnknownReference,
    );
    defect(
        out,
        "notice-too-short",
        "The agreed notice period is 30 days; the customer gives notice effective in 10.",
        "grant",
        &|p| {
            let h = p.next(C);
            let effective = h.created_at + 10 * DAY;
            p.craft(h, Body::SeparationNotice(SeparationNotice { effective, reason: None, disposition: vec![] }))
        },
        Code::NoticeTooShort,
    );
    defect(out, "incomplete-disposition", "The notice asked for location data to be returned and deleted; the vendor's statement says only deleted, and omits the telemetry.", "export", &|p| {
        let h = p.next(V);
        p.craft(h, Body::DispositionStatement(DispositionStatement {
            notice: p.id("notice"),
            items: vec![DispositionItem { category: category("pd:Location"), outcome: Outcome::Deleted, export: None, legal_basis: None, until: None }],
        }))
    }, Code::IncompleteDisposition);
    defect(out, "closed", "After the closure receipt, the vendor sends another usage report: a closed relationship takes nothing but acknowledgements.", "closure-receipt-ack", &|p| {
        let h = p.next(V);
        p.craft(h, Body::UsageReport(report("energy delivered", "kWh", T0, 1)))
    }, Code::Closed);

    let m = cast.seal(Header::opening(rel_id("unopened"), kid(&cast.customer), kid(&cast.vendor), T0), grant());
    out.sequence(
        "unknown-relationship",
        "The first message of an unknown relationship is a consent grant; only an offer or a terms proposal opens one.",
        vec![Item::of("grant", describe(&m), &m)],
        Some(Code::UnknownRelationship),
    );
    let mut p = w.upto("grant");
    let h = p.next(V);
    let m = p.craft(h, Body::UsageReport(report("energy delivered", "kWh", T0 + DAY, 412)));
    let mut bytes = m.bytes().to_vec();
    let at = bytes.len() - 1;
    bytes[at] ^= 0x80;
    let mut items = p.items();
    items.push(Item::raw(
        "tampered",
        "usage_report with a changed signature byte",
        bytes,
        m.signer().as_bytes(),
        Some(&m.payload_bytes()),
    ));
    out.sequence(
        "bad-signature",
        "A usage report arrives with one signature byte changed: refused before the relationship sees it.",
        items,
        Some(Code::BadSignature),
    );
}
