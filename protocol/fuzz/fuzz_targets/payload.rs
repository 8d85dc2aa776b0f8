//! `Payload::decode` on arbitrary bytes: it must return a typed error or a payload, never
//! panic, and a payload it accepts must re-encode to exactly the input (deterministic CBOR
//! has one encoding per value).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rapport_protocol::Payload;

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = Payload::decode(data) else { return };
    let encoded = payload.encode().expect("a decoded payload encodes");
    assert_eq!(encoded, data, "re-encoding a decoded payload gives the input bytes");
});
