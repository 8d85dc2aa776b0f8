//! `log::verify` on arbitrary lists of envelopes: it must return a verdict, never panic.
//!
//! Input format: a sequence of records, each a 4-byte big-endian length followed by that many
//! bytes of envelope (a short last record takes what is left). `.ci/fuzz.sh` writes seeds in
//! this format from the spec's sequence vectors.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rapport_protocol::log;

/// More envelopes than this are not needed to reach any state; it keeps each run fast.
const MAX_ENVELOPES: usize = 256;

fn split(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while out.len() < MAX_ENVELOPES {
        let Some((len, rest)) = data.split_first_chunk::<4>() else { break };
        let len = (u32::from_be_bytes(*len) as usize).min(rest.len());
        let (envelope, rest) = rest.split_at(len);
        out.push(envelope);
        data = rest;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let envelopes = split(data);
    if let Ok(verified) = log::verify(&envelopes) {
        assert_eq!(verified.chained + verified.acknowledgements, envelopes.len());
        // Verifying the already-opened messages gives the same verdict.
        let opened = log::open_all(&envelopes).expect("a verified log opens");
        let again = log::verify_messages(&opened).expect("same verdict on opened messages");
        assert_eq!(again.phase(), verified.phase());
    }
});
