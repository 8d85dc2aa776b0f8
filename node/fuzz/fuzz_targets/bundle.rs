//! `bundle::verify_file` — what `rapport verify FILE` runs — on arbitrary bytes: it must return
//! a typed error or a report, never panic; and a bundle that verifies must say the same thing
//! when written out again and when rebuilt by the exporter from its envelopes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rapport_node::bundle::{self, Bundle};
use rapport_protocol::RelationshipId;

fuzz_target!(|data: &[u8]| {
    let Ok(report) = bundle::verify_file(data) else { return };
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
    // Written out again, it verifies the same.
    let again = serde_json::to_string(&parsed).expect("a bundle serialises");
    assert_eq!(bundle::verify_file(again.as_bytes()).expect("a rewritten bundle verifies"), report);
    // The exporter, given the same envelopes and claims, writes the same bundle (hex in lower
    // case), and it verifies the same.
    let envelopes: Vec<Vec<u8>> =
        parsed.messages.iter().map(|h| hex::decode(h).expect("verified messages are hex")).collect();
    let rel = RelationshipId::from_hex(&report.relationship).expect("a verified relationship id");
    let rebuilt = Bundle::new(rel, m.exported_by.clone(), m.exported_at, &report.phase, &envelopes);
    assert_eq!(&rebuilt.manifest, m);
    let lower: Vec<String> = parsed.messages.iter().map(|h| h.to_ascii_lowercase()).collect();
    assert_eq!(rebuilt.messages, lower);
    assert_eq!(rebuilt.verify().expect("a rebuilt bundle verifies"), report);
});
