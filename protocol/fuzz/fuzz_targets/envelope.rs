//! `Message::open` on arbitrary bytes: it must return a typed error or a message, never panic,
//! and a message it accepts must be exactly what the sender signed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rapport_protocol::{Message, MessageId};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::open(data) else { return };
    assert_eq!(m.bytes(), data, "a message keeps the bytes it was opened from");
    assert_eq!(m.id(), MessageId::of(data));
    assert_eq!(m.signer(), m.header().from);
    // One encoding per message: the accepted payload re-encodes to the bytes that were signed.
    let payload = m.payload().encode().expect("an accepted payload encodes");
    assert_eq!(payload, m.payload_bytes(), "payload re-encodes to the signed bytes");
});
