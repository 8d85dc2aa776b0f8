//! Export bundles (spec/node.md §7): a relationship's signed messages from both parties, exactly as
//! signed, with a manifest and the exporter's seal, in one JSON file that `rapport verify` checks
//! offline and that any implementation can read.
//!
//! The envelopes prove themselves; what they cannot prove is what the bundle *left out* or when
//! and by whom it was made: a log's prefix is a valid log. The seal ([`rapport_protocol::seal`])
//! is the exporter's signature over the relationship, the time, the phase, the number of
//! messages and a digest of their ids in order, so a truncated, reordered or padded bundle and
//! an edited manifest are refused, each with its own [`Error`]. A bundle without a seal
//! (`rapport-export/1`, or one whose seal was removed) is refused unless the caller allows
//! unsigned bundles, and is then reported as unsigned.

use ed25519_dalek::SigningKey;
use rapport_protocol::problem::HasCode as _;
use rapport_protocol::seal::{self, Seal};
use rapport_protocol::{log, KeyId, MessageId, RelationshipId, Role, Timestamp};
use serde::{Deserialize, Serialize};

/// The `format` of bundles this version writes: sealed.
pub const FORMAT: &str = seal::FORMAT;

/// The `format` of the first version's bundles, which carry no seal.
pub const UNSIGNED_FORMAT: &str = "rapport-export/1";

/// A portable export of one relationship.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// [`FORMAT`], or [`UNSIGNED_FORMAT`] in a bundle of the first version.
    pub format: String,
    /// What the bundle claims: a readable copy of the seal's statement and the message ids.
    pub manifest: Manifest,
    /// The seal, hex: a COSE_Sign1 by `manifest.exported_by` (spec/node.md §7.2). Absent in a
    /// [`UNSIGNED_FORMAT`] bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
    /// The envelopes, hex, in the order the exporting node accepted them.
    pub messages: Vec<String>,
}

/// The bundle's claims. With a seal, every one of them must equal what the seal states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Relationship id, hex.
    pub relationship: String,
    /// Key id of the exporting node, hex.
    pub exported_by: String,
    /// When, Unix ms.
    pub exported_at: Timestamp,
    /// Phase at export.
    pub phase: String,
    /// Message ids, hex, in the order of `messages`.
    pub ids: Vec<String>,
}

/// Whether a bundle without a seal may verify (`rapport verify --allow-unsigned`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsigned {
    /// Refuse it with [`Error::Unsigned`]: without a seal nothing shows that messages were
    /// not dropped or the manifest not edited. The default.
    Refuse,
    /// Verify its envelopes and manifest as the first version did, and report it unsigned.
    Allow,
}

/// Why a bundle does not verify, in the order of spec/node.md §7.3; each has a stable
/// [`Error::code`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not a bundle: not UTF-8 JSON of the bundle's shape, or a message or the seal not hex.
    #[error("malformed-bundle: not a Rapport export bundle: {0}")]
    Malformed(String),
    /// A `format` this version does not read.
    #[error("unknown-format: bundle format {0:?} is neither {FORMAT:?} nor {UNSIGNED_FORMAT:?}")]
    UnknownFormat(String),
    /// No seal. Ask the exporter for a sealed bundle, or pass `--allow-unsigned` to verify the
    /// envelopes alone.
    #[error("unsigned: {0}; nothing shows that messages were not dropped or the manifest not edited (--allow-unsigned verifies the envelopes alone)")]
    Unsigned(&'static str),
    /// The seal is not a valid, strictly verified export seal.
    #[error("bad-seal: the seal does not verify: {code}: {0}", code = .0.code())]
    Seal(seal::Error),
    /// The bundle holds fewer messages than the seal covers.
    #[error("truncated: the seal covers {sealed} messages, the bundle holds {held}")]
    Truncated {
        /// Messages the seal covers.
        sealed: u64,
        /// Messages the bundle holds.
        held: usize,
    },
    /// The messages are not the ones sealed: more of them, or changed, replaced or reordered.
    #[error("messages-altered: {0}")]
    Altered(String),
    /// The manifest says something the seal or the envelopes do not.
    #[error("manifest-edited: {0}")]
    Manifest(String),
    /// The log itself is defective (bad signature, gap, fork, out-of-state message, …).
    #[error(transparent)]
    Log(#[from] log::Error),
    /// The seal verifies, but its signer is neither party of the relationship.
    #[error("seal-not-by-party: the seal is signed by {0}, neither the customer nor the vendor of the relationship")]
    NotAParty(KeyId),
    /// The exporter sealed a relationship or phase that the envelopes do not establish.
    #[error("false-claim: {0}")]
    FalseClaim(String),
}

// Not `#[from]`, which would make the seal's error the source too, and a one-line report
// (`{e:#}`) would name it twice.
impl From<seal::Error> for Error {
    fn from(e: seal::Error) -> Error {
        Error::Seal(e)
    }
}

impl Error {
    /// The stable name of the reason (spec/node.md §7.3): one of the bundle's own codes, or for
    /// [`Error::Log`] the protocol's problem code of the defect.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Malformed(_) => "malformed-bundle",
            Error::UnknownFormat(_) => "unknown-format",
            Error::Unsigned(_) => "unsigned",
            Error::Seal(_) => "bad-seal",
            Error::Truncated { .. } => "truncated",
            Error::Altered(_) => "messages-altered",
            Error::Manifest(_) => "manifest-edited",
            Error::Log(e) => e.code.as_str(),
            Error::NotAParty(_) => "seal-not-by-party",
            Error::FalseClaim(_) => "false-claim",
        }
    }
}

/// What a verified bundle establishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Relationship id, hex.
    pub relationship: String,
    /// Final phase, replayed from the log.
    pub phase: String,
    /// Chained messages.
    pub chained: usize,
    /// Receipts and problem reports.
    pub acknowledgements: usize,
    /// Every message id, hex, sorted.
    pub ids: Vec<String>,
    /// The exporter whose seal verified, hex; `None` for an unsigned bundle, whose manifest
    /// nobody vouches for.
    pub sealed_by: Option<String>,
    /// The exporter's side of the relationship, when sealed.
    pub sealed_by_role: Option<Role>,
    /// When the exporter sealed it, Unix ms; `None` when unsigned.
    pub sealed_at: Option<Timestamp>,
}

/// Checks a bundle file's bytes, as `rapport verify FILE` does: UTF-8 JSON, then
/// [`Bundle::parse`] and [`Bundle::check`].
pub fn verify_file(bytes: &[u8], unsigned: Unsigned) -> Result<Report, Error> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::Malformed(e.to_string()))?;
    Bundle::parse(text)?.check(unsigned)
}

fn decode_hex(what: &str, h: &str) -> Result<Vec<u8>, Error> {
    hex::decode(h).map_err(|e| Error::Malformed(format!("{what}: {e}")))
}

impl Bundle {
    /// The bundle of `envelopes`, sealed by `key` as exported at `exported_at` in `phase`.
    pub fn new(
        relationship: RelationshipId,
        key: &SigningKey,
        exported_at: Timestamp,
        phase: &str,
        envelopes: &[impl AsRef<[u8]>],
    ) -> Result<Bundle, seal::Error> {
        let ids: Vec<MessageId> = envelopes.iter().map(|e| MessageId::of(e.as_ref())).collect();
        let exported_by = KeyId::from_bytes(key.verifying_key().to_bytes());
        let statement = Seal {
            format: FORMAT.into(),
            relationship,
            exported_by,
            exported_at,
            phase: phase.into(),
            count: ids.len() as u64,
            digest: seal::digest(&ids),
        };
        Ok(Bundle {
            format: FORMAT.into(),
            manifest: Manifest {
                relationship: relationship.to_hex(),
                exported_by: exported_by.to_hex(),
                exported_at,
                phase: phase.into(),
                ids: ids.iter().map(MessageId::to_hex).collect(),
            },
            seal: Some(hex::encode(statement.sign(key)?)),
            messages: envelopes.iter().map(hex::encode).collect(),
        })
    }

    /// Parses a bundle file.
    pub fn parse(text: &str) -> Result<Bundle, Error> {
        let bundle: Bundle = serde_json::from_str(text).map_err(|e| Error::Malformed(e.to_string()))?;
        if bundle.format != FORMAT && bundle.format != UNSIGNED_FORMAT {
            return Err(Error::UnknownFormat(bundle.format));
        }
        if bundle.format == UNSIGNED_FORMAT && bundle.seal.is_some() {
            return Err(Error::Malformed(format!("a {UNSIGNED_FORMAT} bundle has no seal")));
        }
        Ok(bundle)
    }

    /// [`Bundle::check`] refusing unsigned bundles: what `rapport verify` does by default.
    pub fn verify(&self) -> Result<Report, Error> {
        self.check(Unsigned::Refuse)
    }

    /// Verifies the seal, the messages against it, the manifest against both, the whole log
    /// (spec/protocol.md §7.6), and the seal against the log, in the order of spec/node.md
    /// §7.3.
    pub fn check(&self, unsigned: Unsigned) -> Result<Report, Error> {
        let envelopes: Vec<Vec<u8>> = self
            .messages
            .iter()
            .enumerate()
            .map(|(i, h)| decode_hex(&format!("message {i}"), h))
            .collect::<Result<_, _>>()?;
        let sealed = self.seal.as_deref().map(|h| decode_hex("seal", h)).transpose()?;
        let sealed = match (sealed, unsigned) {
            (Some(bytes), _) => Some(Seal::open(&bytes)?),
            (None, Unsigned::Allow) => None,
            (None, Unsigned::Refuse) if self.format == UNSIGNED_FORMAT => {
                return Err(Error::Unsigned("a rapport-export/1 bundle carries no seal"))
            }
            (None, Unsigned::Refuse) => return Err(Error::Unsigned("the bundle's seal is missing")),
        };
        let ids: Vec<MessageId> = envelopes.iter().map(|e| MessageId::of(e)).collect();
        if let Some(s) = &sealed {
            check_messages(s, &ids)?;
            check_manifest(s, &self.manifest)?;
        }
        let hex_ids: Vec<String> = ids.iter().map(MessageId::to_hex).collect();
        if hex_ids != self.manifest.ids {
            return Err(Error::Manifest("ids differ from the messages' ids".into()));
        }
        let verified = log::verify(&envelopes)?;
        let m = &self.manifest;
        let role = match &sealed {
            Some(s) => {
                let role = verified.relationship.role(&s.exported_by).ok_or(Error::NotAParty(s.exported_by))?;
                if s.relationship != verified.id() {
                    return Err(Error::FalseClaim(format!(
                        "the seal names relationship {}, the log is relationship {}",
                        s.relationship,
                        verified.id()
                    )));
                }
                if s.phase != verified.phase().as_str() {
                    return Err(Error::FalseClaim(format!(
                        "the seal says phase {}, the log ends in phase {}",
                        s.phase,
                        verified.phase().as_str()
                    )));
                }
                Some(role)
            }
            // Unsigned: the first version's checks of the manifest against the envelopes.
            None => {
                if verified.id().to_hex() != m.relationship {
                    return Err(Error::Manifest(format!(
                        "relationship is {}, manifest says {}",
                        verified.id(),
                        m.relationship
                    )));
                }
                if verified.phase().as_str() != m.phase {
                    return Err(Error::Manifest(format!(
                        "phase is {}, manifest says {}",
                        verified.phase().as_str(),
                        m.phase
                    )));
                }
                None
            }
        };
        let mut sorted = hex_ids;
        sorted.sort();
        Ok(Report {
            relationship: verified.id().to_hex(),
            phase: verified.phase().as_str().into(),
            chained: verified.chained,
            acknowledgements: verified.acknowledgements,
            ids: sorted,
            sealed_by: sealed.as_ref().map(|s| s.exported_by.to_hex()),
            sealed_by_role: role,
            sealed_at: sealed.as_ref().map(|s| s.exported_at),
        })
    }
}

/// The messages are exactly those sealed: as many, and the same ids in the same order.
fn check_messages(s: &Seal, ids: &[MessageId]) -> Result<(), Error> {
    let held = ids.len();
    if (held as u64) < s.count {
        return Err(Error::Truncated { sealed: s.count, held });
    }
    if held as u64 > s.count {
        return Err(Error::Altered(format!("the seal covers {} messages, the bundle holds {held}", s.count)));
    }
    if seal::digest(ids) != s.digest {
        return Err(Error::Altered(format!(
            "the {held} messages are not the ones sealed (one was changed or replaced, or they were reordered)"
        )));
    }
    Ok(())
}

/// Each claim of the manifest equals the seal's.
fn check_manifest(s: &Seal, m: &Manifest) -> Result<(), Error> {
    let differs = |field: &str, manifest: &dyn std::fmt::Display, sealed: &dyn std::fmt::Display| {
        Error::Manifest(format!("{field} is {manifest}, the seal says {sealed}"))
    };
    if m.exported_by != s.exported_by.to_hex() {
        return Err(differs("exported_by", &m.exported_by, &s.exported_by));
    }
    if m.exported_at != s.exported_at {
        return Err(differs("exported_at", &m.exported_at, &s.exported_at));
    }
    if m.relationship != s.relationship.to_hex() {
        return Err(differs("relationship", &m.relationship, &s.relationship));
    }
    if m.phase != s.phase {
        return Err(differs("phase", &m.phase, &s.phase));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use rapport_protocol::relationship::Policy;
    use rapport_protocol::{
        Body, Code, Header, KeyId, Message, Money, Offer, Payload, Price, PriceModel, Receipt, Relationship,
    };

    use super::*;

    fn vendor() -> SigningKey {
        SigningKey::from_bytes(&[2; 32])
    }

    fn customer() -> SigningKey {
        SigningKey::from_bytes(&[1; 32])
    }

    fn offer_log() -> (RelationshipId, Vec<Vec<u8>>) {
        let (vendor, customer) = (vendor(), customer());
        let kid = |k: &SigningKey| KeyId::from_bytes(k.verifying_key().to_bytes());
        let rel = RelationshipId::from_bytes([9; 16]);
        let header = Header::opening(rel, kid(&vendor), kid(&customer), 1_700_000_000_000);
        let price = Price { model: PriceModel::Upfront, amount: Money::new("EUR", 100), metric: None, threshold: None };
        let body = Body::Offer(Offer { title: "Bike".into(), description: String::new(), price, terms: None });
        let offer = Message::seal(Payload { header, body }, &vendor).unwrap();
        let (r, _) = Relationship::open(&offer, 1_700_000_000_000, Policy::LOG).unwrap();
        let ack = Header::ack(Some(rel), kid(&customer), kid(&vendor), 1_700_000_000_500);
        let receipt =
            Message::seal(Payload { header: ack, body: Body::Receipt(Receipt { message: offer.id() }) }, &customer)
                .unwrap();
        assert_eq!(r.phase().as_str(), "proposed");
        (rel, vec![offer.bytes().to_vec(), receipt.bytes().to_vec()])
    }

    fn good() -> Bundle {
        let (rel, envelopes) = offer_log();
        Bundle::new(rel, &customer(), 5, "proposed", &envelopes).unwrap()
    }

    fn code(b: &Bundle) -> &'static str {
        b.verify().map(drop).map_err(|e| e.code()).err().unwrap_or("verifies")
    }

    #[test]
    fn a_sealed_bundle_round_trips_and_verifies() {
        let b = good();
        let text = serde_json::to_string_pretty(&b).unwrap();
        let back = Bundle::parse(&text).unwrap();
        let report = back.verify().unwrap();
        assert_eq!(verify_file(text.as_bytes(), Unsigned::Refuse).unwrap(), report);
        assert_eq!((report.chained, report.acknowledgements, report.phase.as_str()), (1, 1, "proposed"));
        assert_eq!(report.ids.len(), 2);
        assert_eq!(report.sealed_by.as_deref(), Some(b.manifest.exported_by.as_str()));
        assert_eq!((report.sealed_by_role, report.sealed_at), (Some(Role::Customer), Some(5)));
    }

    /// Issue #22.5: on the first version each of these verified.
    #[test]
    fn truncation_and_manifest_edits_are_refused() {
        let good = good();
        let mut truncated = good.clone();
        truncated.messages.pop();
        truncated.manifest.ids.pop();
        let e = truncated.verify().unwrap_err();
        assert_eq!(e.to_string(), "truncated: the seal covers 2 messages, the bundle holds 1");
        let mut at = good.clone();
        at.manifest.exported_at += 1;
        assert_eq!(at.verify().unwrap_err().to_string(), "manifest-edited: exported_at is 6, the seal says 5");
        let mut by = good.clone();
        by.manifest.exported_by = hex::encode(vendor().verifying_key().to_bytes());
        assert_eq!(code(&by), "manifest-edited");
        let mut stripped = good.clone();
        stripped.seal = None;
        assert_eq!(code(&stripped), "unsigned");
        stripped.format = UNSIGNED_FORMAT.into();
        assert_eq!(code(&stripped), "unsigned");
        assert!(stripped.verify().unwrap_err().to_string().contains("--allow-unsigned"));
        // Allowed, the envelopes still verify, and the report says nobody vouches for the rest.
        let report = stripped.check(Unsigned::Allow).unwrap();
        assert_eq!((report.sealed_by, report.sealed_at), (None, None));
    }

    #[test]
    fn the_seal_must_cover_these_messages_in_this_order() {
        let good = good();
        let mut reordered = good.clone();
        reordered.messages.reverse();
        reordered.manifest.ids.reverse();
        assert_eq!(code(&reordered), "messages-altered");
        let mut padded = good.clone();
        padded.messages.push(good.messages[0].clone());
        assert_eq!(
            padded.verify().unwrap_err().to_string(),
            "messages-altered: the seal covers 2 messages, the bundle holds 3"
        );
        let mut ids = good.clone();
        ids.manifest.ids.swap(0, 1);
        assert_eq!(code(&ids), "manifest-edited");
        let mut flipped = good.clone();
        let mut bytes = hex::decode(flipped.seal.as_deref().unwrap()).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        flipped.seal = Some(hex::encode(bytes));
        let e = flipped.verify().unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            ("bad-seal", "bad-seal: the seal does not verify: bad-signature: signature does not verify")
        );
    }

    #[test]
    fn only_a_party_seals_and_only_the_truth() {
        let (rel, envelopes) = offer_log();
        let stranger = SigningKey::from_bytes(&[3; 32]);
        let b = Bundle::new(rel, &stranger, 5, "proposed", &envelopes).unwrap();
        assert_eq!(code(&b), "seal-not-by-party");
        assert!(b.verify().unwrap_err().to_string().starts_with("seal-not-by-party: "));
        let sealed = Bundle::new(rel, &vendor(), 5, "proposed", &envelopes).unwrap();
        assert_eq!(sealed.verify().unwrap().sealed_by_role, Some(Role::Vendor));
        let lie = Bundle::new(rel, &vendor(), 5, "closed", &envelopes).unwrap();
        assert_eq!(code(&lie), "false-claim");
        let other = Bundle::new(RelationshipId::from_bytes([8; 16]), &vendor(), 5, "proposed", &envelopes).unwrap();
        assert_eq!(code(&other), "false-claim");
    }

    #[test]
    fn tampering_and_bad_files_are_named() {
        let good = good();
        let mut flipped = good.clone();
        let mut bytes = hex::decode(&flipped.messages[0]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        flipped.messages[0] = hex::encode(bytes);
        // Its id changed, so the seal no longer covers it; unsigned, the log check names it.
        assert_eq!(code(&flipped), "messages-altered");
        flipped.seal = None;
        flipped.manifest.ids[0] = MessageId::of(&hex::decode(&flipped.messages[0]).unwrap()).to_hex();
        assert!(matches!(flipped.check(Unsigned::Allow), Err(Error::Log(e)) if e.code == Code::BadSignature));
        let mut phase = good.clone();
        phase.seal = None;
        phase.manifest.phase = "closed".into();
        assert!(matches!(phase.check(Unsigned::Allow), Err(Error::Manifest(_))));
        assert!(matches!(Bundle::parse("{}"), Err(Error::Malformed(_))));
        assert!(matches!(verify_file(b"{\"format\": \"\xff\"}", Unsigned::Refuse), Err(Error::Malformed(_))));
        let mut other = good.clone();
        other.format = "rapport-export/9".into();
        assert!(matches!(Bundle::parse(&serde_json::to_string(&other).unwrap()), Err(Error::UnknownFormat(_))));
        let mut old = good;
        old.format = UNSIGNED_FORMAT.into();
        assert!(matches!(Bundle::parse(&serde_json::to_string(&old).unwrap()), Err(Error::Malformed(_))));
    }
}
