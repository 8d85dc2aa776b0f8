//! `rapport demo`, the README's first command, as a newcomer runs it: one process, two nodes
//! on 127.0.0.1, the whole lifecycle, exit 0 only if every step held.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn the_demo_walks_a_relationship_from_intent_to_closure() {
    let out = Command::new(env!("CARGO_BIN_EXE_rapport")).arg("demo").output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{stderr}", out.status);
    // Every step of the lifecycle, in order, each delivered with its receipt.
    let steps = [
        "intent",
        "offer",
        "terms_proposal",
        "terms_acceptance",
        "consent_grant",
        "usage_report",
        "countersignature",
        "data_share",
        "introduction",
        "consent_revocation",
        "separation_notice",
        "disposition_statement",
        "closure_receipt",
    ];
    let mut at = 0;
    for (n, kind) in steps.iter().enumerate() {
        let line = stdout[at..]
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{}.", n + 1)))
            .unwrap_or_else(|| panic!("step {} ({kind}) missing:\n{stdout}", n + 1));
        assert!(line.contains(kind), "step {} is not {kind}: {line}", n + 1);
        at += stdout[at..].find(line).unwrap() + line.len();
    }
    assert!(stdout.contains("data_share refused by his own node: consent-required"), "{stdout}");
    for side in ["customer", "vendor"] {
        let verified = format!("{side:<8} export verified: 12 messages and 12 receipts, phase closed");
        assert!(stdout.contains(&verified), "{verified} in\n{stdout}");
    }
    assert!(stdout.contains("both records hold the same 24 signed messages"), "{stdout}");
    // The temporary data directories are gone.
    let dir = stdout.lines().next().and_then(|l| l.rsplit(' ').next()).unwrap();
    assert!(dir.contains("rapport-demo-"), "{dir}");
    assert!(!std::path::Path::new(dir).exists(), "{dir} left behind");
}
