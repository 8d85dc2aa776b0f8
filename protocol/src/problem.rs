//! Problem codes (spec §8): the stable, machine-readable names of every reason a message can
//! be refused. They travel in `problem_report` bodies, label metrics and appear in test
//! vectors; they never change meaning within a protocol version.

use std::fmt;
use std::str::FromStr;

use crate::{cbor, cose, envelope, message};

macro_rules! codes {
    ($($variant:ident => $name:literal: $doc:literal;)*) => {
        /// A stable problem code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $(#[doc = $doc] $variant,)* }

        impl Code {
            /// Every code, in spec order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The wire name.
            pub const fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            /// What the code means, as the spec says it.
            pub const fn description(self) -> &'static str {
                match self { $(Code::$variant => $doc,)* }
            }
        }

        impl FromStr for Code {
            type Err = String;
            fn from_str(s: &str) -> Result<Code, String> {
                match s { $($name => Ok(Code::$variant),)* other => Err(format!("unknown problem code {other:?}")) }
            }
        }
    };
}

codes! {
    TooLarge => "too-large": "The message exceeds the size limit.";
    TooDeep => "too-deep": "The payload nests deeper than the limit.";
    Malformed => "malformed": "The bytes are not a well-formed tagged COSE_Sign1 with a well-formed CBOR payload.";
    UnsupportedStructure => "unsupported-structure": "A COSE structure other than COSE_Sign1.";
    UnsupportedAlgorithm => "unsupported-algorithm": "The algorithm is not EdDSA over Ed25519.";
    NonDeterministic => "non-deterministic": "The envelope or payload is not in deterministic CBOR encoding.";
    UnsupportedVersion => "unsupported-version": "The payload's protocol version is not supported.";
    UnknownKind => "unknown-kind": "The payload's kind is not defined by this version.";
    SchemaViolation => "schema-violation": "A field is missing, unknown, mistyped or out of range, or a header rule for the kind is broken.";
    InvalidKey => "invalid-key": "The key id is not a valid Ed25519 public key.";
    WeakKey => "weak-key": "The signing key has small order.";
    WrongKey => "wrong-key": "The key that signed is not the sender's key: kid differs from from, or from is not the key that speaks for the party.";
    BadSignature => "bad-signature": "The signature does not verify under the RFC 8032 strict rule.";
    ClockSkew => "clock-skew": "created-at is too far in the future, too old, or earlier than the sender's previous message.";
    Expired => "expired": "The message, or the message it acts on, expired before it was acted on.";
    NotAParty => "not-a-party": "The sender is not a party to the relationship.";
    WrongRecipient => "wrong-recipient": "The message is addressed to someone other than the other party.";
    UnknownRelationship => "unknown-relationship": "The relationship does not exist and this kind cannot open one.";
    WrongRelationship => "wrong-relationship": "The message belongs to another relationship.";
    ChainGap => "chain-gap": "The sender's sequence skips a number; earlier messages are missing.";
    Fork => "fork": "Two different messages claim the same place in the sender's chain, or prev does not name the previous message.";
    Replay => "replay": "The same message appears twice where it must appear once.";
    BadAck => "bad-ack": "ack names no message of the other party, or goes backwards.";
    Reordered => "reordered": "The messages cannot be put in an order that respects every chain and ack.";
    OutOfState => "out-of-state": "The kind is not allowed in the relationship's current state.";
    NotPermitted => "not-permitted": "The sender's role may not send this kind, or may not act on the referenced message.";
    UnknownReference => "unknown-reference": "The body refers to a message that does not exist or is of the wrong kind.";
    StaleProposal => "stale-proposal": "The proposal referred to is no longer open: superseded, rejected or accepted.";
    ConsentRequired => "consent-required": "No live consent grant covers the purpose and every category shared.";
    NoticeTooShort => "notice-too-short": "The separation's effective date is earlier than the agreed notice period allows.";
    IncompleteDisposition => "incomplete-disposition": "The disposition statement misses a category the notice named, or contradicts its requested action.";
    Closed => "closed": "The relationship is closed; only a new relationship may follow.";
    RateLimited => "rate-limited": "The sender sends into one relationship faster than the receiver accepts; retry later.";
    QuotaExceeded => "quota-exceeded": "The receiver stores no more from this sender until its owner answers: too many relationships, or too many bytes in one, await her first answer.";
    Blocked => "blocked": "The receiver's owner has blocked the sending key; nothing from it is stored.";
    Internal => "internal": "The receiver failed to process a valid message (for instance, storage failed); retry later.";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors that map to one problem code.
pub trait HasCode {
    /// The problem code for this error.
    fn code(&self) -> Code;
}

impl HasCode for cbor::Error {
    fn code(&self) -> Code {
        match self {
            cbor::Error::TooLarge { .. } => Code::TooLarge,
            cbor::Error::TooDeep { .. } => Code::TooDeep,
            cbor::Error::Malformed(_) => Code::Malformed,
            cbor::Error::NonDeterministic(_) => Code::NonDeterministic,
            cbor::Error::Schema(_) => Code::SchemaViolation,
        }
    }
}

impl HasCode for cose::Error {
    fn code(&self) -> Code {
        match self {
            cose::Error::Malformed(_) => Code::Malformed,
            cose::Error::UnsupportedStructure(_) => Code::UnsupportedStructure,
            cose::Error::UnsupportedAlgorithm(_) | cose::Error::UnsupportedCurve(_) => Code::UnsupportedAlgorithm,
            cose::Error::InvalidKey => Code::InvalidKey,
            cose::Error::WeakKey => Code::WeakKey,
            cose::Error::BadSignature => Code::BadSignature,
        }
    }
}

impl HasCode for message::Error {
    fn code(&self) -> Code {
        match self {
            message::Error::Cbor(e) => e.code(),
            message::Error::UnsupportedVersion(_) => Code::UnsupportedVersion,
            message::Error::UnknownKind(_) => Code::UnknownKind,
        }
    }
}

impl HasCode for envelope::Error {
    fn code(&self) -> Code {
        match self {
            envelope::Error::TooLarge { .. } => Code::TooLarge,
            envelope::Error::Cose(e) => e.code(),
            envelope::Error::Profile(_) => Code::Malformed,
            envelope::Error::NonDeterministic => Code::NonDeterministic,
            envelope::Error::Payload(e) => e.code(),
            envelope::Error::KeyMismatch { .. } => Code::WrongKey,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &c in Code::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {c}");
            assert_eq!(c.as_str().parse::<Code>(), Ok(c));
            assert!(c.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'-'));
        }
        assert!("nope".parse::<Code>().is_err());
    }
}
