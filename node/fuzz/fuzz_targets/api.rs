//! The control API's request bodies on arbitrary bytes, through the parser the handlers use
//! (`rapport_node::api::requests::parse`, which refuses duplicate keys and unknown fields) and
//! the checks they make before the engine sees a request: each must return a typed error or a
//! request, never panic; and a message body it accepts must read back from the JSON the API
//! shows for it and, once the protocol's rules hold, encode to CBOR that decodes to the same
//! payload.
//!
//! Input format: the route, a newline, then the JSON body the route takes: `find\n{…}`,
//! `connect\n{…}` or `send/<kind>\n{…}`. The seeds in `node/fuzz/seeds/api/` are in this format.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rapport_node::api::requests::{parse, ConnectRequest, Draft, FindRequest, SendRequest};
use rapport_protocol::message::Class;
use rapport_protocol::{Body, Header, KeyId, MessageId, Payload, RelationshipId};

fuzz_target!(|data: &[u8]| {
    let Some(newline) = data.iter().position(|&b| b == b'\n') else { return };
    let (route, body) = (&data[..newline], &data[newline + 1..]);
    match route {
        // The peer id and the multiaddr in these are libp2p's to parse (not built here).
        b"find" => {
            let _ = parse::<FindRequest>(body);
        }
        b"connect" => {
            let _ = parse::<ConnectRequest>(body);
        }
        _ => {
            let Some(kind) = route.strip_prefix(b"send/") else { return };
            let Ok(kind) = std::str::from_utf8(kind) else { return };
            let Ok(req) = parse::<SendRequest>(body) else { return };
            let Ok(out) = req.check(kind) else { return };
            send(kind, out);
        }
    }
});

fn send(kind: &str, out: Draft) {
    assert_eq!(out.body.kind().as_str(), kind, "the body is of the path's kind");
    // `GET /v1/public` shows a body as `serde_json::to_value`; that reads back as the body.
    let shown = serde_json::to_value(&out.body).expect("a body serialises to JSON");
    let back = Body::deserialize_kind(out.body.kind(), &shown).expect("a shown body reads back");
    assert_eq!(back, out.body, "JSON round trip");
    // The engine seals the body under a header of its own; one of the right shape will do.
    let header = header(&out);
    let payload = Payload { header, body: out.body };
    if let Ok(bytes) = payload.encode() {
        let decoded = Payload::decode(&bytes).expect("what the node would sign, peers decode");
        assert_eq!(decoded, payload, "CBOR round trip");
    }
}

fn header(out: &Draft) -> Header {
    let me = KeyId::from_bytes([1; 32]);
    let at = 1_700_000_000_000;
    let rel = out.relationship.unwrap_or(RelationshipId::from_bytes([9; 16]));
    let to = out.to.unwrap_or(KeyId::from_bytes([2; 32]));
    match (out.body.kind().class(), out.relationship, out.to) {
        (Class::Public, ..) | (Class::Opening, None, None) => Header::public(me, at),
        (Class::Opening, None, Some(_)) => Header::opening(rel, me, to, at),
        (Class::Ack, ..) => Header::ack(Some(rel), me, to, at),
        _ => Header {
            relationship: Some(rel),
            to: Some(to),
            seq: 2,
            prev: Some(MessageId::from_bytes([7; 32])),
            ..Header::public(me, at)
        },
    }
}
