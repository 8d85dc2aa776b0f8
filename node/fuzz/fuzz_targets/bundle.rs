//! `bundle::verify_file` — what `rapport verify FILE` runs — on arbitrary bytes: it must return
//! a typed error or a report, never panic; a bundle that verifies must say the same thing when
//! written out again, what it says must be what its seal and manifest state, and without its
//! seal it must be refused unless unsigned bundles are allowed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rapport_node::bundle::{self, Bundle, Unsigned};

fuzz_target!(|data: &[u8]| {
    let unsigned = if data.first() == Some(&b' ') { Unsigned::Allow } else { Unsigned::Refuse };
    let Ok(report) = bundle::verify_file(data, unsigned) else { return };
    let text = std::str::from_utf8(data).expect("a verified bundle is UTF-8");
    let parsed = Bundle::parse(text).expect("a verified bundle parses");
    let m = &parsed.manifest;
    // The report is what the envelopes say, and the manifest said it too.
    assert_eq!((&report.relationship, &report.phase), (&m.relationship, &m.phase));
    assert_eq!(report.chained + report.acknowledgements, parsed.messages.len());
    assert!(report.ids.is_sorted(), "report ids are sorted");
    let mut ids = m.ids.clone();
    ids.sort();
    assert_eq!(report.ids, ids);
    // Sealed, the exporter and time are the manifest's; a bundle verified without its seal
    // can only have been allowed unsigned.
    match &parsed.seal {
        Some(_) => {
            assert_eq!(report.sealed_by.as_deref(), Some(m.exported_by.as_str()));
            assert_eq!(report.sealed_at, Some(m.exported_at));
            assert!(report.sealed_by_role.is_some());
        }
        None => {
            assert_eq!(unsigned, Unsigned::Allow, "an unsealed bundle verified by default");
            assert_eq!((&report.sealed_by, report.sealed_at), (&None, None));
        }
    }
    // Written out again, it verifies the same.
    let again = serde_json::to_string(&parsed).expect("a bundle serialises");
    assert_eq!(bundle::verify_file(again.as_bytes(), unsigned).expect("a rewritten bundle verifies"), report);
    // Without its seal it is refused by default, and allowed unsigned its log still verifies.
    let mut stripped = parsed.clone();
    stripped.seal = None;
    let e = stripped.check(Unsigned::Refuse).expect_err("an unsealed bundle is refused by default");
    assert_eq!(e.code(), "unsigned");
    let bare = stripped.check(Unsigned::Allow).expect("the envelopes verify without the seal");
    assert_eq!(
        (bare.chained, bare.acknowledgements, &bare.ids),
        (report.chained, report.acknowledgements, &report.ids)
    );
    // Dropping the last message breaks the seal.
    if parsed.seal.is_some() && !parsed.messages.is_empty() {
        let mut truncated = parsed.clone();
        truncated.messages.pop();
        truncated.manifest.ids.pop();
        assert_eq!(truncated.verify().expect_err("a truncated sealed bundle is refused").code(), "truncated");
    }
});
