//! Export bundles (spec/node.md §7): a relationship's signed messages from both parties, exactly as
//! signed, with a manifest, in one JSON file that `rapport verify` checks offline and that any
//! implementation can read. The bundle adds no trust of its own: everything that matters is
//! re-verified from the envelopes.

use rapport_protocol::{log, MessageId, RelationshipId, Timestamp};
use serde::{Deserialize, Serialize};

/// The `format` of bundles this version writes and reads.
pub const FORMAT: &str = "rapport-export/1";

/// A portable export of one relationship.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Always [`FORMAT`].
    pub format: String,
    /// What the bundle claims; `rapport verify` checks every claim against the envelopes.
    pub manifest: Manifest,
    /// The envelopes, hex, in the order the exporting node accepted them.
    pub messages: Vec<String>,
}

/// The bundle's claims.
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

/// Why a bundle does not verify.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not a bundle: bad JSON, unknown format, or a message that is not hex.
    #[error("not a Rapport export bundle: {0}")]
    Format(String),
    /// The manifest says something the envelopes do not.
    #[error("manifest mismatch: {0}")]
    Manifest(String),
    /// The log itself is defective (bad signature, gap, fork, out-of-state message, …).
    #[error("log does not verify: {0}")]
    Log(#[from] log::Error),
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
}

/// Checks a bundle file's bytes, as `rapport verify FILE` does: UTF-8 JSON, then
/// [`Bundle::parse`] and [`Bundle::verify`].
pub fn verify_file(bytes: &[u8]) -> Result<Report, Error> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::Format(e.to_string()))?;
    Bundle::parse(text)?.verify()
}

impl Bundle {
    /// The bundle of `envelopes`, exported by `exported_by` at `exported_at`.
    pub fn new(
        relationship: RelationshipId,
        exported_by: String,
        exported_at: Timestamp,
        phase: &str,
        envelopes: &[Vec<u8>],
    ) -> Bundle {
        Bundle {
            format: FORMAT.into(),
            manifest: Manifest {
                relationship: relationship.to_hex(),
                exported_by,
                exported_at,
                phase: phase.into(),
                ids: envelopes.iter().map(|e| MessageId::of(e).to_hex()).collect(),
            },
            messages: envelopes.iter().map(hex::encode).collect(),
        }
    }

    /// Parses a bundle file.
    pub fn parse(text: &str) -> Result<Bundle, Error> {
        let bundle: Bundle = serde_json::from_str(text).map_err(|e| Error::Format(e.to_string()))?;
        if bundle.format != FORMAT {
            return Err(Error::Format(format!("format {:?}, expected {FORMAT:?}", bundle.format)));
        }
        Ok(bundle)
    }

    /// Verifies every envelope and the whole log (spec §7.6), then checks the manifest.
    pub fn verify(&self) -> Result<Report, Error> {
        let envelopes: Vec<Vec<u8>> = self
            .messages
            .iter()
            .enumerate()
            .map(|(i, h)| hex::decode(h).map_err(|e| Error::Format(format!("message {i}: {e}"))))
            .collect::<Result<_, _>>()?;
        let verified = log::verify(&envelopes)?;
        let m = &self.manifest;
        if verified.id().to_hex() != m.relationship {
            return Err(Error::Manifest(format!(
                "relationship is {}, manifest says {}",
                verified.id(),
                m.relationship
            )));
        }
        let ids: Vec<String> = envelopes.iter().map(|e| MessageId::of(e).to_hex()).collect();
        if ids != m.ids {
            return Err(Error::Manifest("message ids differ from the manifest".into()));
        }
        if verified.phase().as_str() != m.phase {
            return Err(Error::Manifest(format!("phase is {}, manifest says {}", verified.phase().as_str(), m.phase)));
        }
        let mut sorted = ids;
        sorted.sort();
        Ok(Report {
            relationship: m.relationship.clone(),
            phase: verified.phase().as_str().into(),
            chained: verified.chained,
            acknowledgements: verified.acknowledgements,
            ids: sorted,
        })
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use rapport_protocol::relationship::Policy;
    use rapport_protocol::{
        Body, Code, Header, KeyId, Message, Money, Offer, Payload, Price, PriceModel, Receipt, Relationship,
    };

    use super::*;

    fn offer_log() -> (RelationshipId, Vec<Vec<u8>>) {
        let vendor = SigningKey::from_bytes(&[2; 32]);
        let customer = SigningKey::from_bytes(&[1; 32]);
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

    #[test]
    fn a_bundle_round_trips_and_verifies() {
        let (rel, envelopes) = offer_log();
        let b = Bundle::new(rel, "ab".repeat(32), 5, "proposed", &envelopes);
        let text = serde_json::to_string_pretty(&b).unwrap();
        let back = Bundle::parse(&text).unwrap();
        let report = back.verify().unwrap();
        assert_eq!(verify_file(text.as_bytes()).unwrap(), report);
        assert_eq!((report.chained, report.acknowledgements, report.phase.as_str()), (1, 1, "proposed"));
        assert_eq!(report.ids.len(), 2);
    }

    #[test]
    fn tampering_and_false_claims_are_named() {
        let (rel, envelopes) = offer_log();
        let good = Bundle::new(rel, "ab".repeat(32), 5, "proposed", &envelopes);
        let mut flipped = good.clone();
        let mut bytes = hex::decode(&flipped.messages[0]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        flipped.messages[0] = hex::encode(bytes);
        assert!(matches!(flipped.verify(), Err(Error::Log(e)) if e.code == Code::BadSignature));
        let mut phase = good.clone();
        phase.manifest.phase = "closed".into();
        assert!(matches!(phase.verify(), Err(Error::Manifest(_))));
        let mut dropped = good.clone();
        dropped.manifest.ids.pop();
        assert!(matches!(dropped.verify(), Err(Error::Manifest(_))));
        assert!(matches!(Bundle::parse("{}"), Err(Error::Format(_))));
        assert!(matches!(verify_file(b"{\"format\": \"\xff\"}"), Err(Error::Format(_))));
        let mut other = good;
        other.format = "rapport-export/9".into();
        assert!(matches!(Bundle::parse(&serde_json::to_string(&other).unwrap()), Err(Error::Format(_))));
    }
}
