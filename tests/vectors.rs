//! The test vectors of `spec/vectors/` (spec §12).
//!
//! - Regenerating them changes no byte, and the generator writes no file that is not on disk
//!   and leaves none on disk unwritten.
//! - Every file is read and judged, and the test fails if one goes unread: single messages by
//!   the envelope checks, sequences by the state machine, logs by log verification. Each
//!   verdict must equal the one the file states.
//! - Each file is also checked without the protocol crate's envelope code: the id is SHA-256
//!   of `cose_hex`; a valid envelope is the canonical byte layout of spec §3.5 around
//!   `payload_hex` and `signer_public_key_hex`, and its signature verifies over the
//!   Sig_structure built by hand.
//! - The vectors cover what the spec promises: every kind, and every class of defect.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, VerifyingKey};
use rapport_protocol::{Code, Kind, Message, MessageId};
use rapport_tests::*;

fn root() -> PathBuf {
    workspace().join(VECTORS_DIR)
}

/// Every `.json` file under `spec/vectors/`, by path relative to it.
fn on_disk() -> BTreeMap<String, String> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                let rel = path.strip_prefix(base).unwrap().to_string_lossy().replace('\\', "/");
                out.insert(rel, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&root(), &root(), &mut out);
    out
}

#[test]
fn regenerating_changes_no_byte() {
    let disk = on_disk();
    let generated = generate();
    let mut stale = Vec::new();
    for f in &generated {
        match disk.get(&f.path) {
            None => stale.push(format!("{} is generated but not on disk", f.path)),
            Some(text) if *text != f.text => stale.push(format!("{} differs from what the generator writes", f.path)),
            Some(_) => {}
        }
    }
    let written: BTreeSet<&str> = generated.iter().map(|f| f.path.as_str()).collect();
    for path in disk.keys().filter(|p| !written.contains(p.as_str())) {
        stale.push(format!("{path} is on disk but the generator does not write it"));
    }
    assert!(
        stale.is_empty(),
        "spec/vectors is stale; run `cargo run -p rapport-tests --bin rapport-vectors`:\n{}",
        stale.join("\n")
    );
}

/// What reading the files found, for the coverage checks.
#[derive(Default)]
struct Seen {
    read: BTreeSet<String>,
    valid_kinds: BTreeSet<String>,
    codes: BTreeMap<&'static str, BTreeSet<String>>,
}

/// Checks one message without the protocol crate's envelope code.
fn check_independently(v: &Vector, context: &str) {
    let cose = v.cose().unwrap_or_else(|e| panic!("{context}: cose_hex: {e}"));
    assert_eq!(v.message_id_hex, MessageId::of(&cose).to_hex(), "{context}: message_id_hex");
    let sha = <sha2::Sha256 as sha2::Digest>::digest(&cose);
    assert_eq!(v.message_id_hex, hex::encode(sha), "{context}: message id is SHA-256 of the envelope");
    assert_eq!(v.valid, v.problem_code.is_none(), "{context}: problem_code is present exactly when invalid");
    if let Some(code) = &v.problem_code {
        assert!(code.parse::<Code>().is_ok(), "{context}: unknown problem code {code}");
    }
    if !v.valid {
        return;
    }
    let kid: [u8; 32] = hex::decode(&v.signer_public_key_hex).unwrap().try_into().unwrap();
    let payload = hex::decode(v.payload_hex.as_deref().expect("a valid vector has a payload")).unwrap();
    let signature: [u8; 64] = cose[cose.len() - 64..].try_into().unwrap();
    let protected = raw::protected(&kid);
    assert_eq!(raw::envelope(&protected, &payload, &signature), cose, "{context}: the envelope layout of spec §3.5");
    let key = VerifyingKey::from_bytes(&kid).unwrap();
    key.verify_strict(&raw::sig_structure(&protected, &payload), &Signature::from_bytes(&signature))
        .unwrap_or_else(|e| panic!("{context}: signature: {e}"));
}

fn read<T: serde::de::DeserializeOwned>(path: &str, text: &str) -> T {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn stem(path: &str) -> &str {
    path.rsplit('/').next().unwrap().trim_end_matches(".json")
}

fn judge_file(path: &str, text: &str, shape: Shape, seen: &mut Seen) {
    match shape {
        Shape::Single => {
            let v: Vector = read(path, text);
            assert_eq!(v.name, stem(path), "{path}: name is the file name");
            check_independently(&v, path);
            let cose = v.cose().unwrap();
            assert_eq!(judge_envelope(&cose), v.verdict(), "{path}");
            match Message::open(&cose) {
                Ok(m) => {
                    assert_eq!(m.signer().to_hex(), v.signer_public_key_hex, "{path}: signer");
                    assert_eq!(Some(hex::encode(m.payload_bytes())), v.payload_hex, "{path}: payload");
                    seen.valid_kinds.insert(m.kind().as_str().to_owned());
                }
                Err(_) => {
                    seen.codes.entry("single").or_default().insert(v.problem_code.clone().unwrap());
                }
            }
        }
        Shape::Sequence | Shape::Log => {
            let s: Sequence = read(path, text);
            assert_eq!(s.name, stem(path), "{path}: name is the file name");
            assert!(!s.messages.is_empty(), "{path}: no messages");
            assert_eq!(s.valid, s.problem_code.is_none(), "{path}: problem_code is present exactly when invalid");
            for (i, m) in s.messages.iter().enumerate() {
                check_independently(m, &format!("{path} message {i}"));
            }
            let envelopes = s.envelopes().unwrap();
            if shape == Shape::Sequence {
                let verdicts = judge_sequence(&envelopes);
                for (i, (m, got)) in s.messages.iter().zip(&verdicts).enumerate() {
                    assert_eq!(*got, m.verdict(), "{path} message {i} ({})", m.name);
                }
                assert_eq!(first_refusal(&verdicts), s.verdict(), "{path}: the first refusal");
            } else {
                for (i, m) in s.messages.iter().enumerate() {
                    assert_eq!(judge_envelope(&envelopes[i]), m.verdict(), "{path} message {i} ({})", m.name);
                }
                assert_eq!(judge_log(&envelopes), s.verdict(), "{path}");
            }
            let key = if shape == Shape::Sequence { "sequence" } else { "log" };
            if let Some(code) = s.problem_code {
                seen.codes.entry(key).or_default().insert(code);
            }
        }
        Shape::Bundle => {
            let v: BundleVector = read(path, text);
            assert_eq!(v.name, stem(path), "{path}: name is the file name");
            assert_eq!(v.valid, v.problem_code.is_none(), "{path}: problem_code is present exactly when invalid");
            let bundle = serde_json::to_string(&v.bundle).unwrap();
            assert_eq!(judge_bundle(bundle.as_bytes()), v.verdict(), "{path}");
            if v.valid {
                check_seal_independently(&v, path);
            }
            if let Some(code) = v.problem_code {
                seen.codes.entry("bundle").or_default().insert(code);
            }
        }
    }
    seen.read.insert(path.to_owned());
}

/// Checks a valid seal vector without the protocol crate: the seal is the byte layout of
/// spec/node.md §7.2 around `seal_payload_hex`, its signature verifies strictly over the
/// Sig_structure built by hand, and its statement's count, digest and claims are the bundle's.
fn check_seal_independently(v: &BundleVector, path: &str) {
    let b = &v.bundle;
    let seal = hex::decode(b["seal"].as_str().expect("a valid bundle is sealed")).unwrap();
    let kid: [u8; 32] = hex::decode(v.signer_public_key_hex.as_deref().unwrap()).unwrap().try_into().unwrap();
    let payload = hex::decode(v.seal_payload_hex.as_deref().unwrap()).unwrap();
    let signature: [u8; 64] = seal[seal.len() - 64..].try_into().unwrap();
    let protected = raw::seal_protected(&kid);
    assert_eq!(raw::envelope(&protected, &payload, &signature), seal, "{path}: the seal layout");
    VerifyingKey::from_bytes(&kid)
        .unwrap()
        .verify_strict(&raw::sig_structure(&protected, &payload), &Signature::from_bytes(&signature))
        .unwrap_or_else(|e| panic!("{path}: seal signature: {e}"));
    let statement: ciborium::Value = ciborium::from_reader(payload.as_slice()).unwrap();
    let field = |name: &str| {
        statement.as_map().unwrap().iter().find(|(k, _)| k.as_text() == Some(name)).map(|(_, v)| v.clone()).unwrap()
    };
    let messages: Vec<Vec<u8>> =
        b["messages"].as_array().unwrap().iter().map(|m| hex::decode(m.as_str().unwrap()).unwrap()).collect();
    let count: u64 = field("count").as_integer().unwrap().try_into().unwrap();
    assert_eq!(count, messages.len() as u64, "{path}: count");
    let mut ids = Vec::new();
    for m in &messages {
        ids.extend_from_slice(&<sha2::Sha256 as sha2::Digest>::digest(m));
    }
    let digest = <sha2::Sha256 as sha2::Digest>::digest(&ids);
    assert_eq!(field("digest").as_bytes().unwrap().as_slice(), digest.as_slice(), "{path}: digest");
    assert_eq!(field("exported_by").as_bytes().unwrap().as_slice(), kid.as_slice(), "{path}: exported_by");
    assert_eq!(hex::encode(kid), b["manifest"]["exported_by"].as_str().unwrap(), "{path}: manifest exported_by");
    let at: u64 = field("exported_at").as_integer().unwrap().try_into().unwrap();
    assert_eq!(Some(at), b["manifest"]["exported_at"].as_u64(), "{path}: manifest exported_at");
    assert_eq!(field("format").as_text(), Some("rapport-export/2"), "{path}: format");
}

#[test]
fn every_vector_is_read_and_judged() {
    let disk = on_disk();
    let mut seen = Seen::default();
    for (folder, shape) in FOLDERS {
        let prefix = format!("{folder}/");
        let files: Vec<_> = disk.iter().filter(|(p, _)| p.starts_with(&prefix)).collect();
        assert!(!files.is_empty(), "spec/vectors/{folder} is empty");
        for (path, text) in files {
            judge_file(path, text, *shape, &mut seen);
        }
    }
    let unread: Vec<_> = disk.keys().filter(|p| !seen.read.contains(*p)).collect();
    assert!(unread.is_empty(), "vector files no test reads: {unread:?}");

    // Coverage: every kind has a valid vector, and every class of defect is shown.
    for kind in Kind::ALL {
        assert!(seen.valid_kinds.contains(kind.as_str()), "no valid vector of kind {kind}");
    }
    let must = [
        (
            "single",
            &[
                "bad-signature",
                "wrong-key",
                "malformed",
                "non-deterministic",
                "schema-violation",
                "too-large",
                "too-deep",
                "unsupported-version",
                "unknown-kind",
                "unsupported-algorithm",
                "unsupported-structure",
                "invalid-key",
                "weak-key",
            ][..],
        ),
        (
            "sequence",
            &[
                "out-of-state",
                "chain-gap",
                "fork",
                "not-a-party",
                "wrong-relationship",
                "consent-required",
                "closed",
                "bad-ack",
                "expired",
                "stale-proposal",
                "notice-too-short",
                "incomplete-disposition",
            ][..],
        ),
        ("log", &["replay", "chain-gap", "fork", "bad-signature", "not-a-party", "wrong-relationship", "expired"][..]),
        (
            "bundle",
            &[
                "truncated",
                "messages-altered",
                "manifest-edited",
                "seal-not-by-party",
                "bad-seal",
                "unsigned",
                "false-claim",
                "unknown-format",
            ][..],
        ),
    ];
    for (shape, codes) in must {
        let have = seen.codes.get(shape).cloned().unwrap_or_default();
        for code in codes {
            assert!(have.contains(*code), "no {shape} vector with problem code {code}");
        }
    }
}

/// A vector that says the opposite of the truth is caught: the judges are not rubber stamps.
#[test]
fn a_wrong_verdict_is_caught() {
    let disk = on_disk();
    let (path, text) = disk.iter().find(|(p, _)| p.starts_with("kinds/")).unwrap();
    let mut v: Vector = read(path, text);
    v.valid = false;
    v.problem_code = Some("bad-signature".into());
    assert_ne!(judge_envelope(&v.cose().unwrap()), v.verdict());
    let (path, text) = disk.iter().find(|(p, _)| p.starts_with("invalid/bad-signature")).unwrap();
    let v: Vector = read(path, text);
    let mut cose = v.cose().unwrap();
    cose.pop();
    assert_ne!(judge_envelope(&cose), v.verdict(), "a changed envelope gets another verdict");
}
