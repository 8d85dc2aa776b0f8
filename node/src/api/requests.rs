//! The control API's request bodies (spec/node.md §5) and the checks a handler makes before it
//! hands a request to the engine. Kept apart from the HTTP server so that they build without
//! axum or tokio: the `api` fuzz target (`node/fuzz/`) drives these functions, and the handlers
//! call exactly them. Peer ids and multiaddrs are libp2p's to parse, so those two checks come
//! with the `daemon` feature; the fuzz target reads their request bodies only.

use std::collections::HashSet;

pub use rapport_engine::Draft;
use rapport_protocol::{Body, KeyId, Kind, RelationshipId};
use serde::de::{self, DeserializeOwned, DeserializeSeed, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// Why a request is refused before it reaches the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The path names no message kind; the route does not exist (HTTP 404).
    #[error(transparent)]
    UnknownKind(rapport_protocol::message::Error),
    /// The body does not have the kind's schema (spec/protocol.md §5); fix the named field.
    #[error("{kind} body: {detail}")]
    Body {
        /// The kind the path names.
        kind: Kind,
        /// What is wrong with the body.
        detail: String,
    },
    /// A relationship id that is not 32 hex digits.
    #[error("{0:?} is not a 32-digit hex relationship id")]
    RelationshipId(String),
    /// A key id that is not 64 hex digits.
    #[error("{0:?} is not a 64-digit hex key id")]
    KeyId(String),
    /// Not a libp2p peer id.
    #[error("bad peer id: {0}")]
    PeerId(String),
    /// Not a multiaddr.
    #[error("bad multiaddr: {0}")]
    Multiaddr(String),
    /// Not JSON, JSON with a key twice in one object, or not the route's request shape.
    #[error("invalid JSON body: {0}")]
    Json(String),
}

/// Parses a request body: JSON in which no object names a key twice (where `serde_json` would
/// keep the last, a request could say one thing to a reader and another to the node), of the
/// shape `T`.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Unique.deserialize(&mut de).and_then(|()| de.end()).map_err(|e| Error::Json(e.to_string()))?;
    serde_json::from_slice(bytes).map_err(|e| Error::Json(e.to_string()))
}

/// Walks any JSON value, refusing an object that repeats a key. `serde_json`'s recursion limit
/// bounds the depth.
struct Unique;

impl<'de> DeserializeSeed<'de> for Unique {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Unique)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if let Some(key) = seen.replace(key) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            map.next_value_seed(Unique)?;
        }
        Ok(())
    }
}

/// Body of `POST /v1/find`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindRequest {
    /// The peer id sought.
    pub peer_id: String,
}

#[cfg(feature = "daemon")]
impl FindRequest {
    /// The peer sought.
    pub fn peer(&self) -> Result<libp2p::PeerId, Error> {
        self.peer_id.parse::<libp2p::PeerId>().map_err(|e| Error::PeerId(e.to_string()))
    }
}

/// Body of `POST /v1/connect`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    /// A multiaddr, with or without `/p2p/<peer id>`.
    pub address: String,
}

#[cfg(feature = "daemon")]
impl ConnectRequest {
    /// The address to dial.
    pub fn multiaddr(&self) -> Result<libp2p::Multiaddr, Error> {
        self.address.parse().map_err(|e: libp2p::multiaddr::Error| Error::Multiaddr(e.to_string()))
    }
}

/// Body of `POST /v1/send/{kind}`: a [`Draft`] as JSON, as the CLI serializes it, read
/// loosely (ids as text, the body as any JSON) so that [`SendRequest::check`] can say which
/// part is wrong.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The relationship (hex); absent to open one (with `to`) or to publish (without).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationship: Option<String>,
    /// The recipient's key id (hex), to open a relationship.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The body of the kind, as spec §5 defines it; ids and digests as hex text.
    pub body: serde_json::Value,
}

impl SendRequest {
    /// Checks the request for a message of `kind` (the path's `{kind}`): the kind, then the
    /// body's schema, then the ids. The body's own rules (lengths, ranges) are checked when the
    /// engine seals it.
    pub fn check(&self, kind: &str) -> Result<Draft, Error> {
        let kind: Kind = kind.parse().map_err(Error::UnknownKind)?;
        let body = Body::deserialize_kind(kind, &self.body).map_err(|e| Error::Body { kind, detail: e.to_string() })?;
        Ok(Draft {
            relationship: self.relationship.as_deref().map(relationship_id).transpose()?,
            to: self.to.as_deref().map(key_id).transpose()?,
            body,
        })
    }
}

/// A relationship id from its hex form (a request body's or a path's).
pub fn relationship_id(hex: &str) -> Result<RelationshipId, Error> {
    RelationshipId::from_hex(hex).ok_or_else(|| Error::RelationshipId(hex.into()))
}

/// A key id from its hex form.
pub fn key_id(hex: &str) -> Result<KeyId, Error> {
    KeyId::from_hex(hex).ok_or_else(|| Error::KeyId(hex.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_in_order_and_named() {
        let req = |body: serde_json::Value| serde_json::from_value::<SendRequest>(body).unwrap();
        let offer = serde_json::json!({
            "title": "Bike",
            "description": "",
            "price": { "model": "upfront", "amount": { "currency": "EUR", "minor_units": 100 } }
        });
        let to = "ab".repeat(32);
        let ok = req(serde_json::json!({ "to": to, "body": offer })).check("offer").unwrap();
        assert_eq!((ok.relationship, ok.to, ok.body.kind()), (None, KeyId::from_hex(&to), Kind::Offer));
        let unknown = req(serde_json::json!({ "body": offer })).check("offers");
        assert!(matches!(unknown, Err(Error::UnknownKind(_))), "{unknown:?}");
        let wrong = req(serde_json::json!({ "body": offer })).check("intent");
        assert!(matches!(wrong, Err(Error::Body { kind: Kind::Intent, .. })), "{wrong:?}");
        let rel = req(serde_json::json!({ "relationship": "xyz", "to": "00", "body": offer })).check("offer");
        assert!(matches!(rel, Err(Error::RelationshipId(r)) if r == "xyz"));
        let key = req(serde_json::json!({ "to": "00", "body": offer })).check("offer");
        assert!(matches!(key, Err(Error::KeyId(k)) if k == "00"));
    }

    /// What the CLI sends is what the API reads: a draft serialized and checked is the same
    /// draft, for a new relationship, a chained message and a public one.
    #[test]
    fn a_draft_reads_back_as_itself() {
        let offer = serde_json::json!({
            "title": "Bike",
            "description": "",
            "price": { "model": "upfront", "amount": { "currency": "EUR", "minor_units": 100 } }
        });
        let body = Body::deserialize_kind(Kind::Offer, &offer).unwrap();
        let accept =
            Body::deserialize_kind(Kind::TermsAcceptance, &serde_json::json!({ "proposal": "cd".repeat(32) })).unwrap();
        for draft in [
            Draft { relationship: None, to: KeyId::from_hex(&"ab".repeat(32)), body: body.clone() },
            Draft { relationship: None, to: None, body },
            Draft { relationship: RelationshipId::from_hex(&"ef".repeat(16)), to: None, body: accept },
        ] {
            let json = serde_json::to_vec(&draft).unwrap();
            let back = parse::<SendRequest>(&json).unwrap().check(draft.kind().as_str()).unwrap();
            assert_eq!(back, draft, "{}", String::from_utf8_lossy(&json));
        }
    }

    /// A key twice, at any depth, or a field the route does not know, is refused; serde_json
    /// alone would keep the last value and ignore the stranger.
    #[test]
    fn duplicate_keys_and_unknown_fields_are_refused() {
        let to = "ab".repeat(32);
        let offer = r#"{"title":"Bike","description":"","price":{"model":"upfront","amount":{"currency":"EUR","minor_units":100}}}"#;
        let good = format!(r#"{{"to":"{to}","body":{offer}}}"#);
        assert!(parse::<SendRequest>(good.as_bytes()).unwrap().check("offer").is_ok());
        for bad in [
            format!(r#"{{"to":"{to}","to":"{}","body":{offer}}}"#, "cd".repeat(32)),
            format!(
                r#"{{"to":"{to}","body":{}}}"#,
                offer.replace(r#""title":"Bike","#, r#""title":"Bike","title":"Car","#)
            ),
            format!(
                r#"{{"to":"{to}","body":{}}}"#,
                offer.replace(r#""minor_units":100"#, r#""minor_units":100,"minor_units":1"#)
            ),
        ] {
            let e = parse::<SendRequest>(bad.as_bytes()).unwrap_err();
            assert!(matches!(&e, Error::Json(m) if m.contains("duplicate key")), "{bad}: {e}");
        }
        let typo = format!(r#"{{"relationsihp":"{}","to":"{to}","body":{offer}}}"#, "ab".repeat(16));
        assert!(matches!(parse::<SendRequest>(typo.as_bytes()), Err(Error::Json(m)) if m.contains("unknown field")));
        assert!(matches!(parse::<FindRequest>(br#"{"peer_id":"a","peer_id":"b"}"#), Err(Error::Json(_))));
        assert!(matches!(parse::<ConnectRequest>(br#"{"address":"/ip4/1.2.3.4/tcp/1"} x"#), Err(Error::Json(_))));
        // The same key in sibling objects is not a duplicate.
        assert!(parse::<serde_json::Value>(br#"[{"a":1},{"a":2},{"b":{"a":3}}]"#).is_ok());
    }

    #[cfg(feature = "daemon")]
    #[test]
    fn peer_ids_and_addresses_are_parsed() {
        let peer = FindRequest { peer_id: "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN".into() };
        assert!(peer.peer().is_ok());
        assert!(matches!(FindRequest { peer_id: "nope".into() }.peer(), Err(Error::PeerId(_))));
        assert!(ConnectRequest { address: "/ip4/127.0.0.1/tcp/4710".into() }.multiaddr().is_ok());
        assert!(matches!(ConnectRequest { address: "ip4".into() }.multiaddr(), Err(Error::Multiaddr(_))));
    }
}
