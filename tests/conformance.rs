//! The COSE working group's EdDSA examples against `rapport_protocol::cose` (spec §3.3), as
//! `tests/conformance/README.md` describes them. The data is the in-repo copy
//! `tests/conformance/cose-eddsa/`.
//!
//! - eddsa-sig-01 (COSE_Sign1, Ed25519): the ToBeSign bytes and the signed message are rebuilt
//!   byte for byte from the example's key, headers and plaintext; the message verifies under the
//!   example's `x`, which is the public key of its `d`;
//! - eddsa-sig-02 (COSE_Sign1, Ed448): refused with typed errors, never valid;
//! - eddsa-01 and eddsa-02 (COSE_Sign): refused as an unsupported structure, although eddsa-01
//!   is a valid COSE_Sign;
//! - XOR-ing any byte of eddsa-sig-01's protected header, payload or signature with 0x01 or 0x80
//!   makes verification fail;
//! - the copy holds exactly the files these tests read, and equals `../shared/conformance/` byte
//!   for byte when that folder exists (the one test allowed to skip, when it does not).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

use coset::iana::{self, EnumI64 as _};
use coset::{CborSerializable as _, CoseSign1, CoseSign1Builder, Header, HeaderBuilder, TaggedCborSerializable as _};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use rapport_protocol::cose::{self, Error};
use serde_json::Value;

/// The in-repo copy, which the tests read.
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/conformance/cose-eddsa");
/// The project's shared folder the copy is taken from; absent in CI.
const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/conformance/cose-eddsa");
/// Every file of the example set; a file not listed here would be a file no test reads.
const FILES: [&str; 5] = ["LICENSE", "eddsa-01.json", "eddsa-02.json", "eddsa-sig-01.json", "eddsa-sig-02.json"];

/// One example file of the copy, parsed.
fn example(name: &str) -> Value {
    let path = Path::new(DIR).join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The string at a JSON pointer; a missing field is a broken example, not a skipped check.
fn text<'a>(example: &'a Value, pointer: &str) -> &'a str {
    example.pointer(pointer).and_then(Value::as_str).unwrap_or_else(|| panic!("no string at {pointer}"))
}

/// The bytes of a hex string at a JSON pointer. The set writes keys in lower case and CBOR in
/// upper case; `hex` reads both.
fn bytes(example: &Value, pointer: &str) -> Vec<u8> {
    hex::decode(text(example, pointer)).unwrap_or_else(|e| panic!("hex at {pointer}: {e}"))
}

/// A header from the set's JSON form of one (`{"alg": "EdDSA", "ctyp": 0, "kid": "11"}`).
/// Parameters these examples do not use are refused, so a changed example fails here rather
/// than being signed with a header it does not describe.
fn header(json: &Value) -> Header {
    let map = json.as_object().expect("a header is a JSON object");
    let mut builder = HeaderBuilder::new();
    for (label, value) in map {
        builder = match (label.as_str(), value) {
            ("alg", Value::String(alg)) if alg == "EdDSA" => builder.algorithm(iana::Algorithm::EdDSA),
            ("ctyp", Value::Number(n)) => {
                let n = n.as_i64().expect("an integer content format");
                builder.content_format(iana::CoapContentFormat::from_i64(n).expect("a registered content format"))
            }
            ("kid", Value::String(kid)) => builder.key_id(kid.as_bytes().to_vec()),
            _ => panic!("header parameter {label}: {value} is not used by these examples"),
        };
    }
    builder.build()
}

/// The contents of a protected header's byte string.
fn encoded(header: Header) -> Vec<u8> {
    header.to_vec().expect("a header encodes")
}

/// The CBOR head of a byte string of `len` bytes (RFC 8949 §3.1, shortest form).
fn bstr_head(len: usize) -> Vec<u8> {
    match len {
        0..=23 => vec![0x40 | len as u8],
        24..=0xff => vec![0x58, len as u8],
        _ => {
            let len = u16::try_from(len).expect("the examples' byte strings are short");
            let mut head = vec![0x59];
            head.extend_from_slice(&len.to_be_bytes());
            head
        }
    }
}

/// Where the contents of the byte string `contents` lie in `encoded`: they must occur exactly
/// once, right after the head of a byte string of their length.
fn locate_bstr(encoded: &[u8], contents: &[u8]) -> Range<usize> {
    let item = [bstr_head(contents.len()), contents.to_vec()].concat();
    let starts: Vec<usize> =
        encoded.windows(item.len()).enumerate().filter(|(_, w)| *w == item.as_slice()).map(|(i, _)| i).collect();
    assert_eq!(starts.len(), 1, "{} occurs {} times as a bstr", hex::encode(contents), starts.len());
    let start = starts[0] + item.len() - contents.len();
    start..start + contents.len()
}

/// The public key of an example's signer, parsed the way an application holding the COSE key
/// would: by its `crv` and `x`.
fn signer_key(example: &Value, key: &str) -> Result<VerifyingKey, Error> {
    cose::okp_public_key(text(example, &format!("{key}/crv")), &bytes(example, &format!("{key}/x_hex")))
}

const SIG01_KEY: &str = "/input/sign0/key";

/// eddsa-sig-01's public key, from its `x`.
fn sig01_key() -> VerifyingKey {
    signer_key(&example("eddsa-sig-01.json"), SIG01_KEY).expect("eddsa-sig-01's key is an Ed25519 key")
}

/// eddsa-sig-01's message before signing, built from the example's inputs.
fn sig01_unsigned(example: &Value) -> CoseSign1 {
    CoseSign1Builder::new()
        .protected(header(&example["input"]["sign0"]["protected"]))
        .unprotected(header(&example["input"]["sign0"]["unprotected"]))
        .payload(text(example, "/input/plaintext").as_bytes().to_vec())
        .build()
}

#[test]
fn every_file_of_the_copy_is_read() {
    let expected: BTreeSet<String> = FILES.iter().map(|f| f.to_string()).collect();
    assert_eq!(file_names(Path::new(DIR)), expected, "files in {DIR}");
    for name in FILES.iter().filter(|f| f.ends_with(".json")) {
        let example = example(name);
        for field in ["/title", "/output/cbor"] {
            assert!(!text(&example, field).is_empty(), "{name}: {field} is empty");
        }
    }
    let license = std::fs::read_to_string(Path::new(DIR).join("LICENSE")).unwrap();
    assert!(license.contains("released into the public domain"), "the set's licence changed");
}

/// The names of the entries of `dir`.
fn file_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().into_string().expect("UTF-8 file names"))
        .collect()
}

#[test]
fn copy_is_identical_to_shared() {
    let shared = Path::new(SHARED);
    if !shared.exists() {
        eprintln!("note: {SHARED} does not exist; the copy in {DIR} is not compared with it");
        return;
    }
    let names = file_names(shared);
    assert_eq!(file_names(Path::new(DIR)), names, "the copy and {SHARED} hold different files");
    for name in &names {
        let copy = std::fs::read(Path::new(DIR).join(name)).unwrap();
        let original = std::fs::read(shared.join(name)).unwrap();
        if copy != original {
            let same = copy.iter().zip(&original).take_while(|(a, b)| a == b).count();
            panic!(
                "{name} differs from {SHARED}: {} vs {} bytes, first difference at byte {same}",
                copy.len(),
                original.len()
            );
        }
    }
}

#[test]
fn sig01_to_be_signed_is_rebuilt_byte_for_byte() {
    let example = example("eddsa-sig-01.json");
    let expected = bytes(&example, "/intermediates/ToBeSign_hex");
    let unsigned = sig01_unsigned(&example);
    // The protected header is {1: -8, 3: 0} (alg EdDSA, ctyp text/plain), in that order.
    assert_eq!(encoded(unsigned.protected.header.clone()), hex::decode("A201270300").unwrap());
    assert_eq!(hex::encode_upper(cose::to_be_signed(&unsigned, b"")), hex::encode_upper(&expected));
    // Parsing keeps the protected bytes as sent, so the received message gives the same bytes.
    let received = cose::parse_sign1(&bytes(&example, "/output/cbor")).unwrap();
    assert_eq!(received.protected.original_data, Some(encoded(unsigned.protected.header.clone())));
    assert_eq!(cose::to_be_signed(&received, b""), expected);
    // The external AAD is part of what is signed.
    assert_ne!(cose::to_be_signed(&unsigned, b"aad"), expected);
}

#[test]
fn sig01_signing_reproduces_the_output() {
    let example = example("eddsa-sig-01.json");
    let d: [u8; 32] = bytes(&example, &format!("{SIG01_KEY}/d_hex")).try_into().expect("a 32-byte Ed25519 seed");
    let signing_key = SigningKey::from_bytes(&d);
    assert_eq!(signing_key.verifying_key().as_bytes().as_slice(), bytes(&example, &format!("{SIG01_KEY}/x_hex")));
    assert_eq!(signing_key.verifying_key(), sig01_key());

    let unsigned = sig01_unsigned(&example);
    let signed = cose::sign(
        unsigned.protected.header,
        unsigned.unprotected,
        unsigned.payload.expect("the example's payload is embedded"),
        &signing_key,
        b"",
    )
    .unwrap();
    assert_eq!(hex::encode_upper(&signed), text(&example, "/output/cbor"));
}

#[test]
fn sig01_output_verifies_under_x() {
    let example = example("eddsa-sig-01.json");
    let output = bytes(&example, "/output/cbor");
    let key = sig01_key();

    let sign1 = cose::parse_sign1(&output).unwrap();
    assert_eq!(cose::check_algorithm(&sign1), Ok(()));
    assert_eq!(cose::verify(&sign1, &key, b""), Ok(()));
    let verified = cose::verify_bytes(&output, &key, b"").unwrap();
    assert_eq!(verified.payload.as_deref(), Some(text(&example, "/input/plaintext").as_bytes()));
    assert_eq!(verified.unprotected.key_id, b"11");
    assert_eq!(
        verified.protected.header.content_type,
        Some(coset::ContentType::Assigned(iana::CoapContentFormat::TextPlainUtf8))
    );
    // Re-encoding what was parsed gives the bytes received.
    assert_eq!(cose::encode_tagged(verified).unwrap(), output);

    // The same message under another key, or with an external AAD it was not signed with, fails.
    let other = SigningKey::from_bytes(&[7; 32]).verifying_key();
    assert_eq!(cose::verify(&sign1, &other, b""), Err(Error::BadSignature));
    assert_eq!(cose::verify(&sign1, &key, b"aad"), Err(Error::BadSignature));
}

#[test]
fn sig01_any_flipped_byte_of_the_signed_parts_fails() {
    let example = example("eddsa-sig-01.json");
    let output = bytes(&example, "/output/cbor");
    let key = sig01_key();
    assert!(cose::verify_bytes(&output, &key, b"").is_ok(), "the unmodified example verifies");

    let unsigned = sig01_unsigned(&example);
    let protected = encoded(unsigned.protected.header);
    let payload = unsigned.payload.expect("an embedded payload");
    let signature = cose::parse_sign1(&output).unwrap().signature;
    assert_eq!(signature.len(), Signature::BYTE_SIZE);

    let mut flips = 0;
    for (part, contents) in [("protected header", &protected), ("payload", &payload), ("signature", &signature)] {
        for i in locate_bstr(&output, contents) {
            for mask in [0x01u8, 0x80] {
                let mut flipped = output.clone();
                flipped[i] ^= mask;
                let outcome = cose::verify_bytes(&flipped, &key, b"");
                match (part, &outcome) {
                    // A changed header may no longer parse, or name another algorithm.
                    ("protected header", Err(_)) => {}
                    // Any bytes are a well-formed payload or 64-byte signature: only the
                    // signature check can catch these.
                    (_, Err(Error::BadSignature)) => {}
                    _ => panic!("{part}: byte {i} ^ {mask:#04x} gives {outcome:?}"),
                }
                flips += 1;
            }
        }
    }
    assert_eq!(flips, 2 * (protected.len() + payload.len() + signature.len()));
    assert_eq!(flips, 2 * (5 + 20 + 64));

    // The control: the unprotected header is not signed (RFC 9052 §3), so changing its kid
    // still verifies. The failures above are the signature's doing, not the harness's.
    let kid = locate_bstr(&output, b"11");
    let mut flipped = output.clone();
    flipped[kid.start] ^= 0x01;
    let changed = cose::verify_bytes(&flipped, &key, b"").unwrap();
    assert_eq!(changed.unprotected.key_id, b"01");
}

#[test]
fn sig02_ed448_is_refused_with_typed_errors() {
    let example = example("eddsa-sig-02.json");
    let key = "/input/sign0/key";
    assert_eq!(text(&example, &format!("{key}/crv")), "Ed448");
    let x = bytes(&example, &format!("{key}/x_hex"));
    assert_eq!(x.len(), 57);

    assert_eq!(signer_key(&example, key), Err(Error::UnsupportedCurve("Ed448".into())));
    // Taken as raw Ed25519 key bytes, a 57-byte Ed448 key is refused too.
    assert_eq!(cose::public_key(&x), Err(Error::InvalidKey));

    // The message itself is a well-formed COSE_Sign1 whose algorithm is EdDSA (-8), which COSE
    // uses for both curves: only the key or the signature's length tells Ed448 apart.
    let output = bytes(&example, "/output/cbor");
    let sign1 = cose::parse_sign1(&output).unwrap();
    assert_eq!(cose::check_algorithm(&sign1), Ok(()));
    assert_eq!(sign1.signature.len(), 114);
    assert_eq!(cose::to_be_signed(&sign1, b""), bytes(&example, "/intermediates/ToBeSign_hex"));
    // Under any Ed25519 key its 114-byte signature does not verify.
    for ed25519 in [sig01_key(), SigningKey::from_bytes(&[7; 32]).verifying_key()] {
        assert_eq!(cose::verify(&sign1, &ed25519, b""), Err(Error::BadSignature));
        assert_eq!(cose::verify_bytes(&output, &ed25519, b"").map(|_| ()), Err(Error::BadSignature));
    }
}

/// Rapport's jointly signed records are separate COSE_Sign1 messages; a COSE_Sign is refused
/// before anything else is looked at.
fn assert_cose_sign_refused(name: &str) -> Value {
    let example = example(name);
    let output = bytes(&example, "/output/cbor");
    // The data really is a COSE_Sign: tag 98 around an array of four.
    let value: ciborium::Value = ciborium::from_reader(output.as_slice()).unwrap();
    match &value {
        ciborium::Value::Tag(98, inner) => assert!(matches!(&**inner, ciborium::Value::Array(a) if a.len() == 4)),
        other => panic!("{name} is not a tagged COSE_Sign: {other:?}"),
    }
    assert!(matches!(cose::parse_sign1(&output), Err(Error::UnsupportedStructure(_))), "{name}");
    let ed25519 = sig01_key();
    assert!(matches!(cose::verify_bytes(&output, &ed25519, b""), Err(Error::UnsupportedStructure(_))), "{name}");
    example
}

#[test]
fn eddsa01_cose_sign_is_an_unsupported_structure() {
    let example = assert_cose_sign_refused("eddsa-01.json");
    let key = "/input/sign/signers/0/key";
    let signer = signer_key(&example, key).expect("eddsa-01's signer has an Ed25519 key");
    assert_eq!(signer, sig01_key());
    // The refusal is not because the example is broken: it is a valid COSE_Sign, whose one
    // signature verifies strictly over the example's ToBeSign.
    let output = bytes(&example, "/output/cbor");
    let sign = coset::CoseSign::from_tagged_slice(&output).unwrap();
    let tbs = bytes(&example, "/intermediates/signers/0/ToBeSign_hex");
    assert_eq!(sign.tbs_data(b"", &sign.signatures[0]), tbs);
    let signature = Signature::from_slice(&sign.signatures[0].signature).unwrap();
    assert!(signer.verify_strict(&tbs, &signature).is_ok());
    assert!(matches!(cose::verify_bytes(&output, &signer, b""), Err(Error::UnsupportedStructure(_))));
}

#[test]
fn eddsa02_cose_sign_ed448_is_an_unsupported_structure() {
    let example = assert_cose_sign_refused("eddsa-02.json");
    let key = "/input/sign/signers/0/key";
    assert_eq!(signer_key(&example, key), Err(Error::UnsupportedCurve("Ed448".into())));
}
