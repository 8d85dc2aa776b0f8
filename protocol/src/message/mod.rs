//! The payload every envelope signs (spec §4): the common header and a typed body, encoded as
//! one deterministic CBOR map with text keys.

mod body;

use std::fmt;
use std::str::FromStr;

use ciborium::Value;
use serde::{Deserialize, Serialize};

pub use body::*;

use crate::cbor;
use crate::id::{KeyId, MessageId, RelationshipId};
use crate::Timestamp;

/// The protocol version this crate speaks (spec §10).
pub const VERSION: u64 = 1;

/// Why a payload was refused before any relationship state was consulted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not deterministic CBOR of the payload shape; see the inner error.
    #[error(transparent)]
    Cbor(#[from] cbor::Error),
    /// The version field names a version this implementation does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(i128),
    /// The kind is not one this version defines. It holds the kind as sent, cut to
    /// [`MAX_QUOTED_KIND`] bytes: the string is the peer's.
    #[error("unknown message kind {0:?}")]
    UnknownKind(String),
}

/// The most bytes of an unknown kind that [`Error::UnknownKind`] keeps (every kind this version
/// defines is far shorter).
pub const MAX_QUOTED_KIND: usize = 64;

macro_rules! kinds {
    ($($variant:ident => $name:literal, $class:ident;)*) => {
        /// Message kinds (spec §5). The wire name is the snake_case string.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind { $(#[doc = concat!("`", $name, "`")] $variant,)* }

        impl Kind {
            /// Every kind, in spec order.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant,)*];

            /// The wire name.
            pub const fn as_str(self) -> &'static str {
                match self { $(Kind::$variant => $name,)* }
            }

            /// Whether messages of this kind may be public, chained, or are acknowledgements.
            pub const fn class(self) -> Class {
                match self { $(Kind::$variant => Class::$class,)* }
            }
        }

        impl FromStr for Kind {
            type Err = Error;
            fn from_str(s: &str) -> Result<Kind, Error> {
                match s { $($name => Ok(Kind::$variant),)* other => Err(Error::UnknownKind(bounded(other, MAX_QUOTED_KIND).into_owned())) }
            }
        }

        /// A typed body; its variant determines the header's `kind`.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub enum Body { $($variant(kinds!(@ty $variant)),)* }

        impl Body {
            /// The kind of this body.
            pub fn kind(&self) -> Kind {
                match self { $(Body::$variant(_) => Kind::$variant,)* }
            }

            fn to_value(&self) -> Result<Value, cbor::Error> {
                let r = match self { $(Body::$variant(b) => Value::serialized(b),)* };
                r.map_err(|e| cbor::Error::Schema(e.to_string()))
            }

            fn from_value(kind: Kind, v: &Value) -> Result<Body, cbor::Error> {
                let schema = |e: ciborium::value::Error| cbor::Error::Schema(format!("body: {e}"));
                Ok(match kind { $(Kind::$variant => Body::$variant(v.deserialized().map_err(schema)?),)* })
            }

            fn validate(&self) -> Result<(), Invalid> {
                match self { $(Body::$variant(b) => b.validate(),)* }
            }

            /// Reads a body of `kind` from any serde format; the node's JSON API uses it. The
            /// result is checked only when it is sealed ([`crate::Message::seal`]).
            pub fn deserialize_kind<'de, D: serde::Deserializer<'de>>(kind: Kind, d: D) -> Result<Body, D::Error> {
                Ok(match kind { $(Kind::$variant => Body::$variant(serde::Deserialize::deserialize(d)?),)* })
            }
        }

        /// The body alone, without its kind, in any serde format.
        impl serde::Serialize for Body {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self { $(Body::$variant(b) => b.serialize(s),)* }
            }
        }
    };
    (@ty UsageReport) => { Report };
    (@ty ImpactReport) => { Report };
    (@ty $v:ident) => { $v };
}

kinds! {
    Offer => "offer", Opening;
    Intent => "intent", Public;
    TermsProposal => "terms_proposal", Opening;
    TermsAcceptance => "terms_acceptance", Chained;
    TermsRejection => "terms_rejection", Chained;
    ConsentGrant => "consent_grant", Chained;
    ConsentRevocation => "consent_revocation", Chained;
    UsageReport => "usage_report", Chained;
    ImpactReport => "impact_report", Chained;
    Countersignature => "countersignature", Chained;
    DataShare => "data_share", Chained;
    Introduction => "introduction", Chained;
    SeparationNotice => "separation_notice", Chained;
    DispositionStatement => "disposition_statement", Chained;
    ClosureReceipt => "closure_receipt", Chained;
    Receipt => "receipt", Ack;
    ProblemReport => "problem_report", Ack;
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a kind may appear (spec §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Only public: no relationship, no recipient, `seq` 0 (`intent`).
    Public,
    /// Public, or the first message of a relationship, or within one (`offer`, `terms_proposal`
    /// may be public only if `offer`).
    Opening,
    /// Only within a relationship, in the sender's chain.
    Chained,
    /// Acknowledgements: addressed, outside every chain, `seq` 0.
    Ack,
}

/// The common header (spec §4.1). The kind is not stored here: it is the body's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Relationship; absent for public messages and for problem reports about unreadable input.
    pub relationship: Option<RelationshipId>,
    /// The signing key; equal to the envelope's `kid`.
    pub from: KeyId,
    /// The recipient's key; absent for public messages.
    pub to: Option<KeyId>,
    /// Sender's sequence number in this relationship, from 1; 0 for public and ack messages.
    pub seq: u64,
    /// Id of the sender's previous message in this relationship; absent at `seq` 1.
    pub prev: Option<MessageId>,
    /// Latest message id the sender has seen from the other party.
    pub ack: Option<MessageId>,
    /// Creation time, Unix milliseconds.
    pub created_at: Timestamp,
    /// After this (Unix ms) the message must not be acted on.
    pub expires_at: Option<Timestamp>,
    /// The message this one answers.
    pub reply_to: Option<MessageId>,
}

impl Header {
    /// Header of a public message (an `intent` or a public `offer`).
    pub fn public(from: KeyId, created_at: Timestamp) -> Header {
        Header {
            relationship: None,
            from,
            to: None,
            seq: 0,
            prev: None,
            ack: None,
            created_at,
            expires_at: None,
            reply_to: None,
        }
    }

    /// Header of the message that opens relationship `relationship`: `seq` 1, no `prev`, no `ack`.
    pub fn opening(relationship: RelationshipId, from: KeyId, to: KeyId, created_at: Timestamp) -> Header {
        Header { relationship: Some(relationship), to: Some(to), seq: 1, ..Header::public(from, created_at) }
    }

    /// Header of an acknowledgement (`receipt`, `problem_report`): addressed, outside chains.
    pub fn ack(relationship: Option<RelationshipId>, from: KeyId, to: KeyId, created_at: Timestamp) -> Header {
        Header { relationship, to: Some(to), ..Header::public(from, created_at) }
    }

    /// Sets the expiry.
    pub fn with_expiry(mut self, expires_at: Timestamp) -> Header {
        self.expires_at = Some(expires_at);
        self
    }

    /// Sets the reply-to id.
    pub fn with_reply_to(mut self, id: MessageId) -> Header {
        self.reply_to = Some(id);
        self
    }
}

/// A header and body: what an envelope signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Header.
    pub header: Header,
    /// Body.
    pub body: Body,
}

/// The wire map. Field order here does not matter; [`cbor::to_canonical_vec`] sorts keys.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<B> {
    v: u64,
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rel: Option<RelationshipId>,
    from: KeyId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<KeyId>,
    seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prev: Option<MessageId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ack: Option<MessageId>,
    at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    re: Option<MessageId>,
    body: B,
}

impl Payload {
    /// The kind.
    pub fn kind(&self) -> Kind {
        self.body.kind()
    }

    /// Whether this message belongs to its sender's chain in a relationship.
    pub fn is_chained(&self) -> bool {
        self.header.seq > 0
    }

    /// Encodes as deterministic CBOR after checking the header and body rules.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        self.check()?;
        let h = &self.header;
        let wire = Wire {
            v: VERSION,
            kind: self.kind().as_str().to_owned(),
            rel: h.relationship,
            from: h.from,
            to: h.to,
            seq: h.seq,
            prev: h.prev,
            ack: h.ack,
            at: h.created_at,
            exp: h.expires_at,
            re: h.reply_to,
            body: self.body.to_value()?,
        };
        Ok(cbor::to_canonical_vec(&wire)?)
    }

    /// Decodes and checks a payload: deterministic CBOR, version, kind, schema, then the
    /// header rules of spec §4.2.
    pub fn decode(bytes: &[u8]) -> Result<Payload, Error> {
        let (value, may_hold_null) = cbor::decode_deterministic(bytes, cbor::MAX_MESSAGE_SIZE)?;
        // Version and kind come first so that a future version's fields are reported as
        // "unsupported version", not as a schema violation.
        match field(&value, "v") {
            Some(Value::Integer(i)) if u64::try_from(*i) == Ok(VERSION) => {}
            Some(Value::Integer(i)) => return Err(Error::UnsupportedVersion(i128::from(*i))),
            _ => return Err(cbor::Error::Schema("v must be an unsigned integer".into()).into()),
        }
        let kind: Kind = match field(&value, "kind") {
            Some(Value::Text(k)) => k.parse()?,
            _ => return Err(cbor::Error::Schema("kind must be text".into()).into()),
        };
        // The value is decoded and checked once. The body is moved out (not copied) before the
        // header is read, then read by its kind.
        if may_hold_null {
            cbor::check_no_null(&value)?;
        }
        let mut value = value;
        let body = match &mut value {
            Value::Map(entries) => entries
                .iter_mut()
                .find(|(k, _)| k.as_text() == Some("body"))
                .map(|(_, v)| std::mem::replace(v, Value::Bool(false))),
            _ => None,
        };
        let wire: Wire<serde::de::IgnoredAny> = value.deserialized().map_err(|e| cbor::Error::Schema(e.to_string()))?;
        let body = body.ok_or_else(|| cbor::Error::Schema("missing field `body`".into()))?;
        let payload = Payload {
            header: Header {
                relationship: wire.rel,
                from: wire.from,
                to: wire.to,
                seq: wire.seq,
                prev: wire.prev,
                ack: wire.ack,
                created_at: wire.at,
                expires_at: wire.exp,
                reply_to: wire.re,
            },
            body: Body::from_value(kind, &body)?,
        };
        payload.check()?;
        Ok(payload)
    }

    /// Header rules by kind class and the body's own rules (spec §4.2).
    fn check(&self) -> Result<(), Error> {
        let bad = |why: &str| Err(cbor::Error::Schema(why.to_owned()).into());
        let h = &self.header;
        let public = h.relationship.is_none() && h.to.is_none();
        match self.kind().class() {
            Class::Public if !public => return bad("intent is public: no rel and no to"),
            Class::Opening if self.kind() == Kind::TermsProposal && public => {
                return bad("terms_proposal is always addressed")
            }
            Class::Chained if public => return bad("this kind needs rel and to"),
            Class::Ack if h.to.is_none() => return bad("acknowledgements need to"),
            Class::Ack if h.relationship.is_none() && self.kind() == Kind::Receipt => {
                return bad("a receipt needs rel")
            }
            _ => {}
        }
        if h.relationship.is_some() != h.to.is_some() && self.kind() != Kind::ProblemReport {
            return bad("rel and to are present together or not at all");
        }
        let chained = matches!(self.kind().class(), Class::Chained | Class::Opening) && !public;
        if chained {
            if h.seq == 0 {
                return bad("chained messages have seq ≥ 1");
            }
            if (h.seq == 1) != h.prev.is_none() {
                return bad("prev is absent exactly at seq 1");
            }
        } else if h.seq != 0 || h.prev.is_some() {
            return bad("public and acknowledgement messages have seq 0 and no prev");
        }
        if public && h.ack.is_some() {
            return bad("public messages have no ack");
        }
        if h.to == Some(h.from) {
            return bad("sender and recipient are the same key");
        }
        if h.expires_at.is_some_and(|e| e < h.created_at) {
            return bad("exp is before at");
        }
        self.body.validate().map_err(|e| cbor::Error::Schema(e.to_string()).into())
    }
}

fn field<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    match map {
        Value::Map(entries) => entries.iter().find(|(k, _)| k.as_text() == Some(key)).map(|(_, v)| v),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
