//! The Rapport envelope (spec §3): a tagged COSE_Sign1 whose protected header is exactly
//! `{1: -8, 4: kid}`, with an empty unprotected header, the payload embedded, and a 64-byte
//! Ed25519 signature. The key id is the signer's 32-byte public key and must equal the
//! payload's `from`. A message's id is the SHA-256 of the envelope bytes as sent.
//!
//! There is exactly one valid encoding of each signed message, so a relay cannot re-encode a
//! message into a second id: [`open`] refuses any envelope that is not byte-for-byte the
//! canonical encoding.

use std::ops::Range;
use std::sync::Arc;

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::cbor;
use crate::cose;
use crate::id::{KeyId, MessageId};
use crate::message::{self, Body, Header, Kind, Payload};

/// Why envelope bytes were refused. Checks run in the order of spec §3.5; the first failure
/// is reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Larger than [`cbor::MAX_MESSAGE_SIZE`]; nothing was parsed.
    #[error("envelope of {size} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Size received.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// The COSE layer refused it (malformed, unsupported structure or algorithm, bad key or
    /// signature).
    #[error(transparent)]
    Cose(#[from] cose::Error),
    /// A well-formed COSE_Sign1 that breaks Rapport's profile: wrong header contents, detached
    /// payload, signature length.
    #[error("envelope violates the Rapport profile: {0}")]
    Profile(&'static str),
    /// The envelope bytes are not the one canonical encoding of the message.
    #[error("envelope is not deterministically encoded")]
    NonDeterministic,
    /// The payload was refused.
    #[error(transparent)]
    Payload(#[from] message::Error),
    /// The payload's `from` is not the key that signed it.
    #[error("payload names sender {from} but kid is {kid}")]
    KeyMismatch {
        /// The payload's `from`.
        from: KeyId,
        /// The envelope's kid.
        kid: KeyId,
    },
}

/// A message whose envelope, payload and signature have been checked. It keeps the exact
/// bytes received, so a node forwards and stores them without re-serializing anything. A clone
/// shares the bytes and the decoded payload: a relationship's log and the node's queues hold
/// clones, never copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    id: MessageId,
    bytes: Arc<[u8]>,
    payload: Arc<Payload>,
}

impl Message {
    /// Encodes and signs `payload` with `key`. The payload's `from` must be `key`'s public key.
    pub fn seal(payload: Payload, key: &SigningKey) -> Result<Message, Error> {
        let kid = KeyId::from_bytes(key.verifying_key().to_bytes());
        if payload.header.from != kid {
            return Err(Error::KeyMismatch { from: payload.header.from, kid });
        }
        let encoded = payload.encode()?;
        let bytes = sign_envelope(&kid, &encoded, key);
        // Never hand out a message every receiver (this one included) would refuse.
        if bytes.len() > cbor::MAX_MESSAGE_SIZE {
            return Err(Error::TooLarge { size: bytes.len(), max: cbor::MAX_MESSAGE_SIZE });
        }
        Ok(Message { id: MessageId::of(&bytes), bytes: bytes.into(), payload: Arc::new(payload) })
    }

    /// Checks envelope bytes completely; see spec §3.5 for the order of checks.
    pub fn open(bytes: &[u8]) -> Result<Message, Error> {
        open_unverified(bytes)?.verify()
    }

    /// Opens envelope bytes that were strictly checked by [`Message::open`] (or made by
    /// [`Message::seal`]) before they were stored: every check of [`Message::open`] but the
    /// signature's, which is the costly one (about 50 µs). For a node's own store only, whose
    /// records are guarded at rest by checksums; bytes from anywhere else go through
    /// [`Message::open`]. Verifying a stored log ([`crate::log`]) still checks every signature.
    pub fn reopen(bytes: &[u8]) -> Result<Message, Error> {
        Ok(open_unverified(bytes)?.into_message())
    }

    /// The message id: SHA-256 of [`Self::bytes`].
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// The envelope bytes exactly as signed and sent.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Shared handle to the envelope bytes.
    pub fn bytes_arc(&self) -> Arc<[u8]> {
        self.bytes.clone()
    }

    /// Header and body.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.payload.header
    }

    /// The body.
    pub fn body(&self) -> &Body {
        &self.payload.body
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        self.payload.kind()
    }

    /// The signer, which is also the payload's `from`.
    pub fn signer(&self) -> KeyId {
        self.payload.header.from
    }

    /// The payload bytes inside the envelope.
    pub fn payload_bytes(&self) -> Vec<u8> {
        if let Some(parts) = Parts::parse(&self.bytes) {
            return parts.payload.to_vec();
        }
        // The envelope was parsed when the message was made, so this cannot fail.
        cose::parse_sign1(&self.bytes).ok().and_then(|s| s.payload).unwrap_or_default()
    }
}

/// A message that passed every check of spec §3.5 but, possibly, the last: the signature.
/// [`crate::log`] checks the signatures of a whole log while it replays it.
#[derive(Debug)]
pub(crate) struct Unverified {
    message: Message,
    signature: SignatureCheck,
}

/// The signature check still owed for a message: key, signature and where the payload byte
/// string lies in the envelope; `None` when the signature was already checked.
#[derive(Debug)]
pub(crate) struct SignatureCheck(Option<(VerifyingKey, [u8; 64], Range<usize>)>);

impl SignatureCheck {
    /// The last check of spec §3.5, the strict signature check, of `message` (the one this
    /// check was made for).
    pub(crate) fn check(&self, message: &Message) -> Result<(), Error> {
        let Some((key, signature, payload_item)) = &self.0 else {
            return Ok(());
        };
        let bytes = message.bytes();
        let tbs = cose::sig_structure(&bytes[PROTECTED_ITEM], &bytes[payload_item.clone()]);
        Ok(cose::verify_raw(key, &tbs, signature)?)
    }
}

impl Unverified {
    /// The message and the signature check still owed for it.
    #[cfg_attr(not(feature = "parallel"), allow(dead_code))]
    pub(crate) fn into_parts(self) -> (Message, SignatureCheck) {
        (self.message, self.signature)
    }

    /// The message, its signature unchecked: see [`Message::reopen`].
    fn into_message(self) -> Message {
        self.message
    }

    /// Checks the signature and returns the message.
    pub(crate) fn verify(self) -> Result<Message, Error> {
        self.signature.check(&self.message)?;
        Ok(self.message)
    }
}

/// Every check of [`Message::open`] but the signature. Envelopes in the one canonical shape
/// are taken apart by hand; anything else goes through coset, which classifies the error
/// exactly as before (no envelope outside that shape can pass the determinism check).
pub(crate) fn open_unverified(bytes: &[u8]) -> Result<Unverified, Error> {
    if bytes.len() > cbor::MAX_MESSAGE_SIZE {
        return Err(Error::TooLarge { size: bytes.len(), max: cbor::MAX_MESSAGE_SIZE });
    }
    let Some(parts) = Parts::parse(bytes) else {
        return Ok(Unverified { message: open_with_coset(bytes)?, signature: SignatureCheck(None) });
    };
    let kid = KeyId::from_bytes(*parts.kid);
    let key = cose::public_key_cached(parts.kid)?;
    let payload = Payload::decode(parts.payload)?;
    if payload.header.from != kid {
        return Err(Error::KeyMismatch { from: payload.header.from, kid });
    }
    Ok(Unverified {
        message: Message { id: MessageId::of(bytes), bytes: bytes.into(), payload: Arc::new(payload) },
        signature: SignatureCheck(Some((key, *parts.signature, parts.payload_item))),
    })
}

/// [`Message::open`] through coset's parser, with the checks in the order of spec §3.5.
fn open_with_coset(bytes: &[u8]) -> Result<Message, Error> {
    let sign1 = cose::parse_sign1(bytes)?;
    cose::check_algorithm(&sign1)?;
    let kid_bytes = &sign1.protected.header.key_id;
    let kid = KeyId::from_slice(kid_bytes).ok_or(Error::Profile("kid must be a 32-byte Ed25519 key"))?;
    let expected = protected_bytes(&kid);
    if sign1.protected.original_data.as_deref() != Some(expected.as_slice()) {
        return Err(Error::Profile("protected header must be exactly {1: -8, 4: kid}"));
    }
    if !sign1.unprotected.is_empty() {
        return Err(Error::Profile("unprotected header must be empty"));
    }
    let Some(payload_bytes) = sign1.payload.as_deref() else {
        return Err(Error::Profile("payload must be embedded"));
    };
    if sign1.signature.len() != 64 {
        return Err(Error::Profile("signature must be 64 bytes"));
    }
    if canonical_envelope(&expected, payload_bytes, &sign1.signature) != bytes {
        return Err(Error::NonDeterministic);
    }
    let key = cose::public_key(kid.as_bytes())?;
    let payload = Payload::decode(payload_bytes)?;
    if payload.header.from != kid {
        return Err(Error::KeyMismatch { from: payload.header.from, kid });
    }
    cose::verify(&sign1, &key, &[])?;
    Ok(Message { id: MessageId::of(bytes), bytes: bytes.into(), payload: Arc::new(payload) })
}

/// Where the protected header's byte string (`58 26 a2 01 27 04 58 20 <kid>`) lies.
const PROTECTED_ITEM: Range<usize> = 2..42;

/// An envelope in the one shape [`canonical_envelope`] writes:
/// `d2 84 58 26 a2 01 27 04 58 20 <kid> a0 <payload bstr, shortest head> 58 40 <signature>`.
struct Parts<'a> {
    kid: &'a [u8; 32],
    payload: &'a [u8],
    /// The payload byte string, head included, as a range of the envelope.
    payload_item: Range<usize>,
    signature: &'a [u8; 64],
}

impl<'a> Parts<'a> {
    /// `Some` exactly when `bytes == canonical_envelope(protected_bytes(kid), payload, sig)`
    /// for some kid, payload and 64-byte signature.
    fn parse(bytes: &'a [u8]) -> Option<Parts<'a>> {
        const HEAD: [u8; 10] = [0xd2, 0x84, 0x58, 0x26, 0xa2, 0x01, 0x27, 0x04, 0x58, 0x20];
        let rest = bytes.strip_prefix(&HEAD)?;
        let (kid, rest) = rest.split_first_chunk::<32>()?;
        let rest = rest.strip_prefix(&[0xa0])?;
        let (rest, signature) = rest.split_last_chunk::<64>()?;
        let item = rest.strip_suffix(&[0x58, 0x40])?;
        let (len, payload) = match item {
            [h @ 0x40..=0x57, payload @ ..] => (usize::from(h - 0x40), payload),
            [0x58, n, payload @ ..] if *n >= 24 => (usize::from(*n), payload),
            [0x59, hi, lo, payload @ ..] if u16::from_be_bytes([*hi, *lo]) > 0xff => {
                (usize::from(u16::from_be_bytes([*hi, *lo])), payload)
            }
            _ => return None,
        };
        if payload.len() != len {
            return None;
        }
        let start = HEAD.len() + 32 + 1;
        Some(Parts { kid, payload, payload_item: start..start + item.len(), signature })
    }
}

/// `{1: -8, 4: h'<kid>'}`: a2 01 27 04 58 20 <32 bytes>.
fn protected_bytes(kid: &KeyId) -> Vec<u8> {
    let mut out = Vec::with_capacity(38);
    out.extend_from_slice(&[0xa2, 0x01, 0x27, 0x04, 0x58, 0x20]);
    out.extend_from_slice(kid.as_bytes());
    out
}

/// The envelope of `payload` signed by `key` (whose key id is `kid`): the bytes `cose::sign`
/// writes for the same inputs, built directly in the one shape [`Parts::parse`] reads, with
/// no intermediate CBOR values (a third of the cost of sealing outside the signature itself).
fn sign_envelope(kid: &KeyId, payload: &[u8], key: &SigningKey) -> Vec<u8> {
    use ed25519_dalek::Signer as _;
    let protected = protected_bytes(kid);
    let mut protected_item = Vec::with_capacity(protected.len() + 2);
    bstr_header(&mut protected_item, protected.len());
    protected_item.extend_from_slice(&protected);
    let mut payload_head = Vec::with_capacity(5);
    bstr_header(&mut payload_head, payload.len());
    let pieces = cose::sig_structure(&protected_item, &payload_head);
    let mut tbs = Vec::with_capacity(pieces.iter().map(|p| p.len()).sum::<usize>() + payload.len());
    for piece in pieces {
        tbs.extend_from_slice(piece);
    }
    tbs.extend_from_slice(payload);
    let signature = key.sign(&tbs).to_bytes();
    canonical_envelope(&protected, payload, &signature)
}

/// `18([protected, {}, payload, signature])` in deterministic encoding.
pub(crate) fn canonical_envelope(protected: &[u8], payload: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(protected.len() + payload.len() + signature.len() + 16);
    out.extend_from_slice(&[0xd2, 0x84]);
    bstr_header(&mut out, protected.len());
    out.extend_from_slice(protected);
    out.push(0xa0);
    bstr_header(&mut out, payload.len());
    out.extend_from_slice(payload);
    bstr_header(&mut out, signature.len());
    out.extend_from_slice(signature);
    out
}

pub(crate) fn bstr_header(out: &mut Vec<u8>, len: usize) {
    match len {
        0..=23 => out.push(0x40 | len as u8),
        24..=0xff => out.extend_from_slice(&[0x58, len as u8]),
        0x100..=0xffff => {
            out.push(0x59);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x5a);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coset::{iana, HeaderBuilder};

    /// The protected header as coset builds it, to compare our bytes with coset's.
    fn protected_header(kid: &KeyId) -> coset::Header {
        HeaderBuilder::new().algorithm(iana::Algorithm::EdDSA).key_id(kid.as_bytes().to_vec()).build()
    }

    #[test]
    fn sealing_writes_what_coset_writes() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let kid = KeyId::from_bytes(key.verifying_key().to_bytes());
        for len in [0usize, 1, 23, 24, 255, 256, 65_535, 65_536, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let coset_bytes =
                cose::sign(protected_header(&kid), coset::Header::default(), payload.clone(), &key, &[]).unwrap();
            assert_eq!(sign_envelope(&kid, &payload, &key), coset_bytes, "payload length {len}");
        }
    }

    #[test]
    fn canonical_envelope_matches_coset() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let kid = KeyId::from_bytes(key.verifying_key().to_bytes());
        for len in [0usize, 5, 23, 24, 255, 256, 70_000] {
            let payload = vec![0x41; len];
            let coset_bytes =
                cose::sign(protected_header(&kid), coset::Header::default(), payload.clone(), &key, &[]).unwrap();
            let sign1 = cose::parse_sign1(&coset_bytes).unwrap();
            let ours = canonical_envelope(&protected_bytes(&kid), &payload, &sign1.signature);
            assert_eq!(ours, coset_bytes, "payload length {len}");
            if coset_bytes.len() <= cbor::MAX_MESSAGE_SIZE {
                let parts = Parts::parse(&coset_bytes).unwrap();
                assert_eq!(parts.payload, payload.as_slice());
                assert_eq!(parts.kid, kid.as_bytes());
                assert_eq!(parts.signature.as_slice(), sign1.signature.as_slice());
                let tbs = cose::sig_structure(&coset_bytes[PROTECTED_ITEM], &coset_bytes[parts.payload_item]).concat();
                assert_eq!(tbs, cose::to_be_signed(&sign1, &[]), "Sig_structure, payload length {len}");
            }
        }
    }

    fn intent(key: &SigningKey, description: &str) -> Message {
        let kid = KeyId::from_bytes(key.verifying_key().to_bytes());
        let body = Body::Intent(crate::Intent {
            title: "A quiet electric bike".into(),
            description: description.into(),
            tags: vec!["bikes".into()],
            budget: None,
        });
        Message::seal(Payload { header: Header::public(kid, 1_700_000_000_000), body }, key).unwrap()
    }

    #[test]
    fn reopen_skips_the_signature_and_nothing_else() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let m = intent(&key, "stored");
        assert_eq!(Message::reopen(m.bytes()).unwrap(), m);
        // A flipped bit of the signature (the envelope's last byte): `open` refuses it,
        // `reopen` does not check it.
        let mut bad_signature = m.bytes().to_vec();
        *bad_signature.last_mut().unwrap() ^= 1;
        assert!(Message::open(&bad_signature).is_err());
        assert_eq!(Message::reopen(&bad_signature).unwrap().payload(), m.payload());
        // Every other check still holds: a payload that no longer decodes is refused.
        let mut bad_payload = m.bytes().to_vec();
        bad_payload.truncate(bad_payload.len() - 70);
        assert!(Message::reopen(&bad_payload).is_err());
        assert!(Message::reopen(&[0x84, 0x40]).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        /// The hand parser and the key cache change no verdict: every edit of a valid envelope
        /// gets the same answer from `open` as from the coset path alone.
        #[test]
        fn open_agrees_with_the_coset_path(
            len in 0usize..300,
            edits in proptest::collection::vec(proptest::prelude::any::<(u8, usize, u8)>(), 1..3),
        ) {
            let key = SigningKey::from_bytes(&[3; 32]);
            let mut bytes = intent(&key, &"d".repeat(len)).bytes().to_vec();
            for (op, at, byte) in edits {
                let at = at % (bytes.len() + 1);
                match op % 3 {
                    0 if at < bytes.len() => bytes[at] ^= byte | 1,
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, byte),
                }
            }
            proptest::prop_assert_eq!(Message::open(&bytes), open_with_coset(&bytes));
        }
    }

    #[test]
    fn seal_refuses_what_open_would_refuse_as_too_large() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let kid = KeyId::from_bytes(key.verifying_key().to_bytes());
        // Every field within its own limit, the whole over the envelope limit.
        let body = Body::Intent(crate::Intent {
            title: "big".into(),
            description: String::new(),
            tags: vec!["t".repeat(crate::message::MAX_TEXT); 16],
            budget: None,
        });
        let sealed = Message::seal(Payload { header: Header::public(kid, 1_700_000_000_000), body }, &key);
        assert!(matches!(sealed, Err(Error::TooLarge { max: cbor::MAX_MESSAGE_SIZE, .. })), "{sealed:?}");
    }

    #[test]
    fn both_paths_accept_and_refuse_alike() {
        let key = SigningKey::from_bytes(&[4; 32]);
        for len in [0, 10, 200, 300] {
            let m = intent(&key, &"x".repeat(len));
            assert_eq!(Message::open(m.bytes()), Ok(m.clone()));
            assert_eq!(open_with_coset(m.bytes()), Ok(m.clone()));
            assert_eq!(m.payload_bytes(), m.payload().encode().unwrap());
        }
        // A small-order kid: refused by the cache path as by the plain one, every time.
        let weak = KeyId::from_bytes(curve25519_dalek::edwards::CompressedEdwardsY::default().to_bytes());
        let m = intent(&key, "");
        let forged = canonical_envelope(&protected_bytes(&weak), &m.payload_bytes(), &[0; 64]);
        for _ in 0..2 {
            assert_eq!(Message::open(&forged), Err(Error::Cose(cose::Error::WeakKey)));
        }
        assert_eq!(open_with_coset(&forged), Err(Error::Cose(cose::Error::WeakKey)));
    }

    #[test]
    fn hand_parser_declines_every_other_shape() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let kid = KeyId::from_bytes(key.verifying_key().to_bytes());
        let good = canonical_envelope(&protected_bytes(&kid), &[0x41; 30], &[7; 64]);
        assert!(Parts::parse(&good).is_some());
        // Non-shortest payload length, truncated, extended, wrong signature length.
        let mut long = good.clone();
        long.splice(43..45, [0x59, 0x00, 0x1e]);
        assert!(Parts::parse(&long).is_none());
        assert!(Parts::parse(&good[..good.len() - 1]).is_none());
        assert!(Parts::parse(&[good.as_slice(), &[0]].concat()).is_none());
        let mut short_sig = good.clone();
        short_sig.splice(good.len() - 66..good.len() - 64, [0x58, 0x3f]);
        short_sig.pop();
        assert!(Parts::parse(&short_sig).is_none());
        // Every single-byte change of a fixed byte is declined.
        for i in (0..43).filter(|i| !(10..42).contains(i)).chain([good.len() - 66, good.len() - 65]) {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert!(Parts::parse(&bad).is_none(), "byte {i}");
        }
    }
}
