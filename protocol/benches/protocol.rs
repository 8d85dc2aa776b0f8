//! Protocol benchmarks: raw Ed25519, envelope seal/open, payload decoding and verification of a
//! 10,000-message relationship log. Run with
//! `cargo bench -p rapport-protocol --bench protocol`; figures and targets are in BENCHMARKS.md.
//!
//! Every fixture is built once, outside the timed loops.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ed25519_dalek::{Signer as _, SigningKey};
use rapport_protocol::relationship::Policy;
use rapport_protocol::*;

const T0: Timestamp = 1_750_000_000_000;
/// Messages in the log benchmark.
const LOG_LEN: usize = 10_000;

fn purpose() -> Purpose {
    Purpose::new("dpv:ServiceProvision").unwrap()
}

fn category(name: &str) -> Category {
    Category::new(name).unwrap()
}

fn terms() -> Terms {
    Terms {
        duration: 365 * 86_400,
        renewal: Renewal::OptIn,
        notice_period: 30 * 86_400,
        price: Price {
            model: PriceModel::PerUsage,
            amount: Money::new("EUR", 25),
            metric: Some("kWh delivered to the household battery".into()),
            threshold: Some(100),
        },
        data: DataTerms {
            purposes: vec![
                purpose(),
                Purpose::new("dpv:ServiceOptimisation").unwrap(),
                Purpose::new("dpv:CustomerCare").unwrap(),
            ],
            categories: vec![category("pd:Location"), category("pd:Contact"), category("pd:Transactional")],
        },
        portability: Portability { format: "application/json".into(), deadline: 30 * 86_400 },
        deletion_deadline: 60 * 86_400,
        exit_fee: Money::new("EUR", 0),
    }
}

fn offer() -> Body {
    Body::Offer(Offer {
        title: "Solar panel lease with battery".into(),
        description: "Twelve panels and a 10 kWh battery, installed and maintained; pay per kWh used.".into(),
        price: terms().price,
        terms: None,
    })
}

fn grant() -> Body {
    Body::ConsentGrant(ConsentGrant {
        purposes: vec![purpose()],
        categories: vec![category("pd:Location"), category("pd:Transactional")],
        third_party_sharing: false,
        retention: 90 * 86_400,
        expires: None,
    })
}

fn report(at: Timestamp, value: u64) -> Body {
    Body::UsageReport(Report {
        metric: "kWh delivered to the household battery".into(),
        unit: "kWh".into(),
        start: at - 3_600_000,
        end: at,
        value,
    })
}

fn share(content: ShareContent, n: u64) -> Body {
    Body::DataShare(DataShare {
        content,
        purpose: Some(purpose()),
        categories: vec![category("pd:Location"), category("pd:Transactional")],
        commitment: Digest32::commit(&[n as u8; 32], &n.to_be_bytes()),
        media_type: "application/vnd.rapport.energy-insight+json".into(),
        size: 1_000 + n,
    })
}

/// Both parties of one relationship, applying each message as it is made.
struct Pair {
    customer: SigningKey,
    vendor: SigningKey,
    rel: Option<Relationship>,
    now: Timestamp,
    log: Vec<Message>,
}

impl Pair {
    fn new() -> Pair {
        Pair {
            customer: SigningKey::from_bytes(&[1; 32]),
            vendor: SigningKey::from_bytes(&[2; 32]),
            rel: None,
            now: T0,
            log: Vec::with_capacity(LOG_LEN),
        }
    }

    fn key(&self, role: Role) -> &SigningKey {
        match role {
            Role::Customer => &self.customer,
            Role::Vendor => &self.vendor,
        }
    }

    fn kid(&self, role: Role) -> KeyId {
        KeyId::from_bytes(self.key(role).verifying_key().to_bytes())
    }

    fn open(&mut self, body: Body) -> MessageId {
        let h =
            Header::opening(RelationshipId::from_bytes([5; 16]), self.kid(Role::Vendor), self.kid(Role::Customer), T0);
        let m = Message::seal(Payload { header: h, body }, &self.vendor).unwrap();
        let (rel, _) = Relationship::open(&m, self.now, Policy::LOG).unwrap();
        self.rel = Some(rel);
        self.log.push(m.clone());
        m.id()
    }

    /// `role`'s next message, made from its current view (it acks the other's latest message).
    fn make(&mut self, role: Role, body: Body) -> Message {
        self.now += 1_000;
        let h = self.rel.as_ref().unwrap().next_header(role, self.now);
        Message::seal(Payload { header: h, body }, self.key(role)).unwrap()
    }

    fn apply(&mut self, m: Message) -> MessageId {
        self.rel.as_mut().unwrap().handle(&m, m.header().created_at, Policy::LOG).unwrap();
        let id = m.id();
        self.log.push(m);
        id
    }

    fn send(&mut self, role: Role, body: Body) -> MessageId {
        let m = self.make(role, body);
        self.apply(m)
    }
}

/// An active relationship: offer, proposal, acceptance, consent grant. Returns the pair and
/// the customer's terms proposal (the ~600-byte message the envelope benchmarks use).
fn active() -> (Pair, Message) {
    let mut p = Pair::new();
    p.open(offer());
    let proposal = p.make(Role::Customer, Body::TermsProposal(TermsProposal { role: Role::Customer, terms: terms() }));
    let prop_id = p.apply(proposal.clone());
    p.send(Role::Vendor, Body::TermsAcceptance(TermsAcceptance { proposal: prop_id }));
    p.send(Role::Customer, grant());
    (p, proposal)
}

/// A log of `len` messages: the opening four, then rounds in which the vendor reports usage,
/// the customer countersigns, the vendor returns an insight and the customer shares data.
/// Each message acks the other party's latest, so acks go back and forth across the chains.
fn log_of(len: usize) -> Vec<Message> {
    let (mut p, _) = active();
    let mut n = 0u64;
    while p.log.len() < len {
        n += 1;
        let at = p.now + 1_000;
        let report = p.send(Role::Vendor, report(at, n % 50));
        if p.log.len() == len {
            break;
        }
        p.send(Role::Customer, Body::Countersignature(Countersignature { report }));
        if p.log.len() == len {
            break;
        }
        p.send(Role::Vendor, share(ShareContent::Insight, n));
        if p.log.len() == len {
            break;
        }
        p.send(Role::Customer, share(ShareContent::Data, n));
    }
    p.log
}

fn ed25519(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let public = key.verifying_key();
    let msg: Vec<u8> = (0..600u32).map(|i| (i * 31 % 251) as u8).collect();
    let sig = key.sign(&msg);
    let mut g = c.benchmark_group("ed25519");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sign", |b| b.iter(|| key.sign(black_box(&msg))));
    g.bench_function("verify_strict", |b| b.iter(|| public.verify_strict(black_box(&msg), black_box(&sig)).unwrap()));
    // Rapport's own strict check (src/strict.rs): the same verdicts without decompressing R.
    let sig_bytes = sig.to_bytes();
    g.bench_function("verify_rapport", |b| {
        b.iter(|| cose::verify_signature(&public, black_box(&msg), black_box(&sig_bytes)).unwrap())
    });
    // Decompressing a public key: part of opening a message from a key not seen before.
    let compressed = public.to_bytes();
    g.bench_function("decompress_key", |b| {
        b.iter(|| ed25519_dalek::VerifyingKey::from_bytes(black_box(&compressed)).unwrap())
    });
    g.finish();
}

fn envelope(c: &mut Criterion) {
    let (p, proposal) = active();
    let bytes = proposal.bytes().to_vec();
    let payload_bytes = proposal.payload_bytes();
    let key = p.customer.clone();
    eprintln!(
        "envelope fixture: terms_proposal, {} envelope bytes, {} payload bytes",
        bytes.len(),
        payload_bytes.len()
    );

    let mut g = c.benchmark_group("envelope");
    g.throughput(Throughput::Elements(1));
    g.bench_function("seal", |b| {
        b.iter_batched(
            || proposal.payload().clone(),
            |payload| Message::seal(payload, black_box(&key)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("open", |b| b.iter(|| Message::open(black_box(&bytes)).unwrap()));
    // The same proposal from 64 different signers in turn, so no signer is a recent one.
    let many: Vec<Vec<u8>> = (0..64u8)
        .map(|i| {
            let key = SigningKey::from_bytes(&[i.wrapping_add(100); 32]);
            let mut payload = proposal.payload().clone();
            payload.header.from = KeyId::from_bytes(key.verifying_key().to_bytes());
            Message::seal(payload, &key).unwrap().bytes().to_vec()
        })
        .collect();
    let mut next = 0;
    g.bench_function("open_new_signer", |b| {
        b.iter(|| {
            next = (next + 1) % many.len();
            Message::open(black_box(&many[next])).unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("cbor");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_payload", |b| b.iter(|| Payload::decode(black_box(&payload_bytes)).unwrap()));
    g.finish();
}

fn log_verify(c: &mut Criterion) {
    // Built on first use, so that benchmarks filtered out do not pay for 10,000 signatures.
    let fixture = OnceLock::new();
    let fixture = || {
        fixture.get_or_init(|| {
            let messages = log_of(LOG_LEN);
            let envelopes: Vec<Vec<u8>> = messages.iter().map(|m| m.bytes().to_vec()).collect();
            let total: usize = envelopes.iter().map(Vec::len).sum();
            eprintln!(
                "log fixture: {} messages, {total} bytes, mean {} bytes",
                envelopes.len(),
                total / envelopes.len()
            );
            assert_eq!(log::verify(&envelopes).unwrap().chained, LOG_LEN);
            // What the raw floor checks: each envelope's Sig_structure, key and signature.
            let raw: Vec<(Vec<u8>, ed25519_dalek::VerifyingKey, ed25519_dalek::Signature)> = envelopes
                .iter()
                .map(|e| {
                    let sign1 = cose::parse_sign1(e).unwrap();
                    let key = cose::public_key(&sign1.protected.header.key_id).unwrap();
                    let sig = ed25519_dalek::Signature::from_slice(&sign1.signature).unwrap();
                    (cose::to_be_signed(&sign1, &[]), key, sig)
                })
                .collect();
            (messages, envelopes, raw)
        })
    };

    let mut g = c.benchmark_group("log");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(LOG_LEN as u64));
    g.bench_function("verify_10k", |b| {
        let (_, envelopes, _) = fixture();
        b.iter(|| log::verify(black_box(envelopes)).unwrap())
    });
    // The floor: ed25519-dalek's `verify_strict` of the same 10,000 signatures on both cores,
    // with keys parsed and Sig_structures built beforehand. Two busy vCPUs of this machine do
    // not give twice the throughput of one, so compare `verify_10k` with this, not with
    // 10,000 × `ed25519/verify_strict` ÷ 2.
    g.bench_function("raw_signatures_10k", |b| {
        use rayon::prelude::*;
        let (_, _, raw) = fixture();
        b.iter(|| {
            raw.par_iter().for_each(|(tbs, key, sig)| key.verify_strict(black_box(tbs), sig).unwrap());
        })
    });
    // The sequential part alone: chains, causal order and state-machine replay of messages
    // already opened.
    g.bench_function("replay_10k", |b| {
        let (messages, _, _) = fixture();
        b.iter(|| log::verify_messages(black_box(messages)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, ed25519, envelope, log_verify);
criterion_main!(benches);
