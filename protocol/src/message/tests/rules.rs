//! Limits (spec §9) and body rules (spec §5), checked on encode and on decode.

use super::*;

fn with_body(kind: Kind, edit: impl FnOnce(&mut Body)) -> Payload {
    let mut p = sample(kind);
    edit(&mut p.body);
    p
}

/// Makes a payload from a parameter: a text for a text field, a length for a list.
type Make<T> = Box<dyn Fn(T) -> Payload>;

macro_rules! edit {
    ($kind:ident, |$b:ident| $e:expr) => {
        with_body(Kind::$kind, |body| match body {
            Body::$kind($b) => {
                $e;
            }
            _ => unreachable!(),
        })
    };
}

#[test]
fn text_limit_counts_utf8_bytes() {
    let ascii = |n: usize| "a".repeat(n);
    // 'é' is two bytes in UTF-8, '😀' four.
    let two = |bytes: usize| "é".repeat(bytes / 2);
    let four = |bytes: usize| "😀".repeat(bytes / 4);
    for (name, make) in [("ascii", &ascii as &dyn Fn(usize) -> String), ("2-byte", &two), ("4-byte", &four)] {
        let max = make(MAX_TEXT);
        let over = format!("{max}{}", make(4).chars().next().unwrap());
        assert_eq!(max.len(), MAX_TEXT);
        assert!(over.len() > MAX_TEXT, "{name}");
        if name != "ascii" {
            assert!(over.chars().count() < MAX_TEXT, "{name}: the limit is in bytes, not characters");
        }
        let fields: Vec<(&str, Make<String>)> = vec![
            ("offer.title", Box::new(|s| edit!(Offer, |b| b.title = s))),
            ("offer.description", Box::new(|s| edit!(Offer, |b| b.description = s))),
            ("intent.tags[]", Box::new(|s| edit!(Intent, |b| b.tags = vec![s]))),
            ("terms.portability.format", Box::new(|s| edit!(TermsProposal, |b| b.terms.portability.format = s))),
            ("price.metric", Box::new(|s| edit!(TermsProposal, |b| b.terms.price.metric = Some(s)))),
            ("rejection.reason", Box::new(|s| edit!(TermsRejection, |b| b.reason = s))),
            ("revocation.reason", Box::new(|s| edit!(ConsentRevocation, |b| b.reason = Some(s)))),
            ("report.unit", Box::new(|s| edit!(UsageReport, |b| b.unit = s))),
            ("share.media_type", Box::new(|s| edit!(DataShare, |b| b.media_type = s))),
            ("party.name", Box::new(|s| edit!(Introduction, |b| b.party.name = s))),
            ("party.contact", Box::new(|s| edit!(Introduction, |b| b.party.contact = Some(s)))),
            ("offering", Box::new(|s| edit!(Introduction, |b| b.offering = s))),
            ("notice.reason", Box::new(|s| edit!(SeparationNotice, |b| b.reason = Some(s)))),
            ("legal_basis", Box::new(|s| edit!(DispositionStatement, |b| b.items[2].legal_basis = Some(s)))),
            ("problem.code", Box::new(|s| edit!(ProblemReport, |b| b.code = s))),
            ("problem.text", Box::new(|s| edit!(ProblemReport, |b| b.text = s))),
        ];
        for (field, payload) in fields {
            assert_accepted(&payload(max.clone()), &format!("{field}: {MAX_TEXT} bytes of {name}"));
            assert_refused(&payload(over.clone()), &format!("{field}: {} bytes of {name}", over.len()));
        }
    }
}

#[test]
fn list_limit_is_64_items() {
    let purposes = |n: usize| (0..n).map(|i| purpose(&format!("urn:p:{i}"))).collect::<Vec<_>>();
    let categories = |n: usize| (0..n).map(|i| category(&format!("urn:c:{i}"))).collect::<Vec<_>>();
    let lists: Vec<(&str, Make<usize>)> = vec![
        ("intent.tags", Box::new(|n| edit!(Intent, |b| b.tags = (0..n).map(|i| format!("t{i}")).collect()))),
        ("terms.data.purposes", Box::new(move |n| edit!(TermsProposal, |b| b.terms.data.purposes = purposes(n)))),
        ("terms.data.categories", Box::new(move |n| edit!(TermsProposal, |b| b.terms.data.categories = categories(n)))),
        ("grant.purposes", Box::new(move |n| edit!(ConsentGrant, |b| b.purposes = purposes(n)))),
        ("grant.categories", Box::new(move |n| edit!(ConsentGrant, |b| b.categories = categories(n)))),
        ("share.categories", Box::new(move |n| edit!(DataShare, |b| b.categories = categories(n)))),
        (
            "notice.disposition",
            Box::new(move |n| {
                edit!(SeparationNotice, |b| b.disposition = categories(n)
                    .into_iter()
                    .map(|category| Disposition { category, action: Action::Delete })
                    .collect())
            }),
        ),
        (
            "statement.items",
            Box::new(move |n| {
                edit!(DispositionStatement, |b| b.items = categories(n)
                    .into_iter()
                    .map(|category| DispositionItem {
                        category,
                        outcome: Outcome::Deleted,
                        export: None,
                        legal_basis: None,
                        until: None
                    })
                    .collect())
            }),
        ),
    ];
    for (field, payload) in lists {
        assert_accepted(&payload(MAX_ITEMS), &format!("{field} with {MAX_ITEMS} items"));
        assert_refused(&payload(MAX_ITEMS + 1), &format!("{field} with {} items", MAX_ITEMS + 1));
    }
    assert_eq!(MAX_ITEMS, 64);
    assert_eq!(MAX_TEXT, 4096);
}

#[test]
fn required_lists_and_texts_are_not_empty() {
    assert_refused(&edit!(Offer, |b| b.title = String::new()), "offer.title");
    assert_accepted(&edit!(Offer, |b| b.description = String::new()), "offer.description may be empty");
    assert_refused(&edit!(Intent, |b| b.title = String::new()), "intent.title");
    assert_refused(&edit!(Intent, |b| b.tags.push(String::new())), "empty tag");
    assert_accepted(&edit!(Intent, |b| b.tags.clear()), "no tags");
    assert_refused(&edit!(TermsProposal, |b| b.terms.portability.format = String::new()), "portability.format");
    assert_refused(&edit!(ConsentGrant, |b| b.purposes.clear()), "grant without purposes");
    assert_refused(&edit!(ConsentGrant, |b| b.categories.clear()), "grant without categories");
    assert_refused(&edit!(UsageReport, |b| b.metric = String::new()), "report.metric");
    assert_refused(&edit!(ImpactReport, |b| b.unit = String::new()), "report.unit");
    assert_refused(&edit!(DataShare, |b| b.categories.clear()), "share without categories");
    assert_refused(&edit!(DataShare, |b| b.media_type = String::new()), "share.media_type");
    assert_refused(&edit!(Introduction, |b| b.party.name = String::new()), "party.name");
    assert_refused(&edit!(Introduction, |b| b.party.contact = Some(String::new())), "party.contact");
    assert_refused(&edit!(Introduction, |b| b.offering = String::new()), "offering");
    assert_refused(&edit!(ProblemReport, |b| b.code = String::new()), "problem.code");
    assert_accepted(&edit!(ProblemReport, |b| b.text = String::new()), "problem.text may be empty");
    assert_accepted(&edit!(ConsentRevocation, |b| b.reason = Some(String::new())), "revocation.reason may be empty");
    assert_accepted(&edit!(SeparationNotice, |b| b.disposition.clear()), "notice without disposition");
    assert_accepted(&edit!(DispositionStatement, |b| b.items.clear()), "statement without items");
}

#[test]
fn lists_of_terms_are_unique() {
    let dup_p = vec![purpose("dpv:Marketing"), purpose("dpv:CustomerCare"), purpose("dpv:Marketing")];
    let dup_c = vec![category("pd:Name"), category("urn:x"), category("urn:x")];
    assert_refused(&edit!(TermsProposal, |b| b.terms.data.purposes = dup_p.clone()), "terms purposes");
    assert_refused(&edit!(TermsProposal, |b| b.terms.data.categories = dup_c.clone()), "terms categories");
    assert_refused(&edit!(ConsentGrant, |b| b.purposes = dup_p.clone()), "grant purposes");
    assert_refused(&edit!(ConsentGrant, |b| b.categories = dup_c.clone()), "grant categories");
    assert_refused(&edit!(DataShare, |b| b.categories = dup_c.clone()), "share categories");
    assert_refused(
        &edit!(SeparationNotice, |b| b.disposition[1].category = b.disposition[0].category.clone()),
        "notice category twice, with different actions",
    );
    assert_refused(&edit!(DispositionStatement, |b| b.items.push(retained("pd:Location"))), "statement category twice");
    // Matching is exact: these differ.
    assert_accepted(
        &edit!(ConsentGrant, |b| b.categories =
            vec![category("https://a.example/x"), category("https://a.example/x/"), category("urn:X")]),
        "no normalisation",
    );
    // Intent tags are free text and may repeat.
    assert_accepted(&edit!(Intent, |b| b.tags = vec!["a".into(), "a".into()]), "repeated tags");
}

#[test]
fn money_and_price_rules() {
    for bad in ["eur", "EU", "EURO", "", "ÉUR", "E1R", "EU "] {
        assert_refused(&edit!(Offer, |b| b.price.amount.currency = bad.into()), &format!("currency {bad:?}"));
        assert_refused(&edit!(Intent, |b| b.budget = Some(Money::new(bad, 1))), &format!("budget in {bad:?}"));
        assert_refused(&edit!(TermsProposal, |b| b.terms.exit_fee.currency = bad.into()), &format!("exit fee {bad:?}"));
    }
    assert_accepted(&edit!(Offer, |b| b.price.amount = Money::new("XAU", u64::MAX)), "any three capitals");

    let price = |model, metric: Option<&str>, threshold| Price {
        model,
        amount: Money::new("EUR", 1),
        metric: metric.map(str::to_owned),
        threshold,
    };
    use PriceModel::*;
    let table = [
        (price(Upfront, None, None), true),
        (price(Upfront, Some("kWh"), None), false),
        (price(Upfront, None, Some(1)), false),
        (price(PerUsage, Some("kWh"), None), true),
        (price(PerUsage, Some("kWh"), Some(0)), true),
        (price(PerUsage, None, Some(5)), false),
        (price(PerUsage, Some(""), None), false),
        (price(PerImpact, Some("kg"), Some(10)), true),
        (price(PerImpact, Some("kg"), None), false),
        (price(PerImpact, None, Some(10)), false),
        (price(PerImpact, Some(""), Some(10)), false),
    ];
    for (price, ok) in table {
        let why = format!("{price:?}");
        let in_offer = edit!(Offer, |b| b.price = price.clone());
        let in_terms = edit!(TermsRejection, |b| b.counter.as_mut().unwrap().price = price.clone());
        for p in [in_offer, in_terms] {
            if ok {
                assert_accepted(&p, &why);
            } else {
                assert_refused(&p, &why);
            }
        }
    }
    assert_refused(&edit!(TermsProposal, |b| b.terms.duration = 0), "duration 0");
    assert_accepted(&edit!(TermsProposal, |b| b.terms.duration = 1), "duration 1");
    assert_accepted(&edit!(TermsProposal, |b| b.terms.notice_period = 0), "no notice period");
}

#[test]
fn report_period_and_data_share_purpose() {
    assert_refused(&edit!(UsageReport, |b| b.end = b.start), "empty period");
    assert_refused(&edit!(ImpactReport, |b| b.end = b.start - 1), "negative period");
    assert_accepted(&edit!(UsageReport, |b| b.end = b.start + 1), "1 ms period");

    assert_refused(&edit!(DataShare, |b| b.content = ShareContent::Export), "export with a purpose");
    assert_refused(&edit!(DataShare, |b| b.purpose = None), "insight without purpose");
    assert_refused(
        &edit!(DataShare, |b| {
            b.content = ShareContent::Data;
            b.purpose = None
        }),
        "data without purpose",
    );
    assert_accepted(
        &edit!(DataShare, |b| {
            b.content = ShareContent::Export;
            b.purpose = None
        }),
        "export without purpose",
    );
}

#[test]
fn introduction_commission_rules() {
    use CommissionBasis::*;
    let eur = || Some(Money::new("EUR", 500));
    let table = [
        (Commission { basis: None, amount: Option::None, basis_points: Option::None }, true),
        (Commission { basis: None, amount: eur(), basis_points: Option::None }, false),
        (Commission { basis: None, amount: Option::None, basis_points: Some(0) }, false),
        (Commission { basis: Flat, amount: eur(), basis_points: Option::None }, true),
        (Commission { basis: Flat, amount: Option::None, basis_points: Option::None }, false),
        (Commission { basis: Flat, amount: eur(), basis_points: Some(100) }, false),
        (Commission { basis: Flat, amount: Some(Money::new("eur", 1)), basis_points: Option::None }, false),
        (Commission { basis: Percent, amount: Option::None, basis_points: Some(0) }, true),
        (Commission { basis: Percent, amount: Option::None, basis_points: Some(10_000) }, true),
        (Commission { basis: Percent, amount: Option::None, basis_points: Some(10_001) }, false),
        (Commission { basis: Percent, amount: Option::None, basis_points: Some(u64::MAX) }, false),
        (Commission { basis: Percent, amount: Option::None, basis_points: Option::None }, false),
        (Commission { basis: Percent, amount: eur(), basis_points: Some(100) }, false),
    ];
    for (commission, ok) in table {
        let why = format!("{commission:?}");
        let p = edit!(Introduction, |b| b.commission = commission.clone());
        if ok {
            assert_accepted(&p, &why);
        } else {
            assert_refused(&p, &why);
        }
    }
}

#[test]
fn disposition_item_rules() {
    let item = |outcome, export: bool, legal_basis: Option<&str>, until: bool| DispositionItem {
        category: category("pd:Location"),
        outcome,
        export: export.then(|| Digest32::of(b"bundle")),
        legal_basis: legal_basis.map(str::to_owned),
        until: until.then_some(AT),
    };
    use Outcome::*;
    let law = Some("HGB §257");
    let table = [
        // Returned outcomes need the export hash, and nothing of retention.
        (item(Returned, true, None, false), true),
        (item(Returned, false, None, false), false),
        (item(ReturnedAndDeleted, true, None, false), true),
        (item(ReturnedAndDeleted, false, None, false), false),
        (item(Returned, true, law, true), false),
        (item(ReturnedAndDeleted, true, None, true), false),
        // Deleted has none of them.
        (item(Deleted, false, None, false), true),
        (item(Deleted, true, None, false), false),
        (item(Deleted, false, law, false), false),
        (item(Deleted, false, None, true), false),
        // Retained needs both legal_basis and until, and no export.
        (item(Retained, false, law, true), true),
        (item(Retained, false, law, false), false),
        (item(Retained, false, None, true), false),
        (item(Retained, false, None, false), false),
        (item(Retained, true, law, true), false),
        (item(Retained, false, Some(""), true), false),
    ];
    for (item, ok) in table {
        let why = format!("{item:?}");
        let p = edit!(DispositionStatement, |b| b.items = vec![item.clone()]);
        if ok {
            assert_accepted(&p, &why);
        } else {
            assert_refused(&p, &why);
        }
    }
    // One bad item among good ones spoils the statement.
    assert_refused(&edit!(DispositionStatement, |b| b.items[1].export = None), "second item without export");
}

#[test]
fn body_rules_are_checked_on_decode_too() {
    // Encoded without the checks, each of these decodes to a schema violation: the decoder
    // does not trust the encoder.
    let cases = [
        edit!(Offer, |b| b.title = String::new()),
        edit!(Intent, |b| b.tags = vec!["t".into(); MAX_ITEMS + 1]),
        edit!(TermsProposal, |b| b.terms.duration = 0),
        edit!(ConsentGrant, |b| b.purposes.clear()),
        edit!(UsageReport, |b| b.end = 0),
        edit!(DataShare, |b| b.purpose = None),
        edit!(Introduction, |b| b.commission.basis_points = Some(10_001)),
        edit!(DispositionStatement, |b| b.items[2].until = None),
        edit!(ProblemReport, |b| b.code = String::new()),
    ];
    for p in cases {
        let r = Payload::decode(&encode_unchecked(&p));
        assert!(is_schema(&r), "{:?}: {r:?}", p.kind());
    }
}
