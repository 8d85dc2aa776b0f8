//! The commands that send a message. Each becomes a [`Draft`], the one request type of the
//! path from the command line to the peer, typed from the start: a bad id, word or JSON body
//! fails here with its reason, before anything reaches the daemon.
//!
//! The path of `rapport offer --to K …`, and its four conversions:
//!
//! ```text
//!   1. clap's Command::Offer ──outgoing()──▶ Draft { relationship, to, body: Body::Offer }
//!   2. Draft ──serde──▶ JSON, POST /v1/send/offer               (api::SendRequest's shape)
//!   3. JSON ──requests::parse + SendRequest::check──▶ the same Draft, in the daemon
//!        ─▶ engine::Command::Send ─▶ rapport_engine::Input::Send
//!   4. Draft ──State seals it (header, canonical CBOR, COSE_Sign1)──▶ Message, whose bytes
//!        are what the store writes, the transport carries and the peer's store keeps
//! ```
//!
//! [`send`] posts a draft and returns the daemon's [`Submitted`](rapport_engine::Submitted)
//! as JSON.

use std::path::Path;

use anyhow::Context as _;
use rapport_engine::Draft;
use rapport_protocol::{
    Body, Category, ClosureReceipt, ConsentGrant, ConsentRevocation, Countersignature, DataShare, Digest32, Intent,
    KeyId, Kind, MessageId, Money, Offer, Price, PriceModel, Purpose, RelationshipId, Report, TermsAcceptance,
    TermsProposal, TermsRejection,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Command, ConsentAction, Model, ReportKind, TermsAction};
use crate::api::requests;
use crate::client::Client;

/// Posts `draft` to the daemon's `POST /v1/send/{kind}`.
pub(super) async fn send(client: &Client, draft: &Draft) -> anyhow::Result<Value> {
    Ok(client.post(&format!("/v1/send/{}", draft.kind()), draft).await?)
}

/// Keeps the salt of a `data_share` commitment, and where its data is, in
/// `shares/<commitment>.json` (mode 0600) in the data directory: the log carries only the
/// commitment, and without the salt nobody could show that the data matches it.
fn remember_share(dir: &Path, commitment: &Digest32, file: &Path, salt: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let shares = dir.join("shares");
    std::fs::create_dir_all(&shares)?;
    let path = shares.join(format!("{}.json", commitment.to_hex()));
    let record = serde_json::json!({ "file": std::fs::canonicalize(file)?, "salt": hex::encode(salt) });
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)?;
    f.write_all(format!("{record}\n").as_bytes()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn rel(hex: &str) -> anyhow::Result<RelationshipId> {
    Ok(requests::relationship_id(hex)?)
}

fn key(hex: &str) -> anyhow::Result<KeyId> {
    Ok(requests::key_id(hex)?)
}

/// A message id given as `what`.
fn message(what: &str, hex: &str) -> anyhow::Result<MessageId> {
    MessageId::from_hex(hex).ok_or_else(|| anyhow::anyhow!("{what} {hex:?} is not a 64-digit hex message id"))
}

/// One of a closed set of words (a role, a share's content), as the protocol spells it.
fn word<T: DeserializeOwned>(what: &str, text: &str) -> anyhow::Result<T> {
    serde_json::from_value(Value::String(text.into())).map_err(|e| anyhow::anyhow!("{what} {text:?}: {e}"))
}

fn purposes(given: &[String]) -> anyhow::Result<Vec<Purpose>> {
    given.iter().map(|p| Purpose::new(p.as_str()).map_err(|e| anyhow::anyhow!("purpose {p:?}: {e}"))).collect()
}

fn categories(given: &[String]) -> anyhow::Result<Vec<Category>> {
    given.iter().map(|c| Category::new(c.as_str()).map_err(|e| anyhow::anyhow!("category {c:?}: {e}"))).collect()
}

/// JSON text, or `@FILE` for a file's, read as the daemon reads a request body (no key twice
/// in an object), then as `T`.
fn json<T: DeserializeOwned>(what: &str, text: &str) -> anyhow::Result<T> {
    let text = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{path}: {e}"))?,
        None => text.to_owned(),
    };
    requests::parse(text.as_bytes()).with_context(|| format!("{what}: not valid"))
}

/// A whole body of `kind` as JSON text (or `@FILE`).
fn body(kind: Kind, text: &str) -> anyhow::Result<Body> {
    let value: Value = json(kind.as_str(), text)?;
    Body::deserialize_kind(kind, &value).map_err(|e| anyhow::anyhow!("{kind} body: {e}"))
}

fn in_rel(relationship: &str, body: Body) -> anyhow::Result<Draft> {
    Ok(Draft { relationship: Some(rel(relationship)?), to: None, body })
}

fn model(m: Model) -> PriceModel {
    match m {
        Model::Upfront => PriceModel::Upfront,
        Model::PerUsage => PriceModel::PerUsage,
        Model::PerImpact => PriceModel::PerImpact,
    }
}

/// Builds the message of a relationship command, or `None` for the other commands.
pub(super) fn outgoing(dir: &Path, command: &Command) -> anyhow::Result<Option<Draft>> {
    Ok(Some(match command {
        Command::Offer { to, title, description, model: m, amount, currency, metric, threshold } => Draft {
            relationship: None,
            to: to.as_deref().map(key).transpose()?,
            body: Body::Offer(Offer {
                title: title.clone(),
                description: description.clone(),
                price: Price {
                    model: model(*m),
                    amount: Money::new(currency, *amount),
                    metric: metric.clone(),
                    threshold: *threshold,
                },
                terms: None,
            }),
        },
        Command::Intent { title, description, tags } => Draft {
            relationship: None,
            to: None,
            body: Body::Intent(Intent {
                title: title.clone(),
                description: description.clone(),
                tags: tags.clone(),
                budget: None,
            }),
        },
        Command::Terms { action: TermsAction::Propose { target, role, terms, .. } } => Draft {
            relationship: target.relationship.as_deref().map(rel).transpose()?,
            to: target.to.as_deref().map(key).transpose()?,
            body: Body::TermsProposal(TermsProposal {
                role: word("role", role.as_deref().unwrap_or_default())?,
                terms: json("terms", terms.as_deref().unwrap_or_default())?,
            }),
        },
        Command::Terms { action: TermsAction::Accept { rel, proposal } } => {
            in_rel(rel, Body::TermsAcceptance(TermsAcceptance { proposal: message("proposal", proposal)? }))?
        }
        Command::Terms { action: TermsAction::Reject { rel, proposal, reason, counter } } => in_rel(
            rel,
            Body::TermsRejection(TermsRejection {
                proposal: message("proposal", proposal)?,
                reason: reason.clone(),
                counter: counter.as_deref().map(|c| json("counter-terms", c)).transpose()?,
            }),
        )?,
        Command::Consent {
            action: ConsentAction::Grant { rel, purposes: p, categories: c, third_party, retention_days, expires },
        } => in_rel(
            rel,
            Body::ConsentGrant(ConsentGrant {
                purposes: purposes(p)?,
                categories: categories(c)?,
                third_party_sharing: *third_party,
                retention: retention_days
                    .checked_mul(86_400)
                    .ok_or_else(|| anyhow::anyhow!("--retention-days {retention_days} is too large"))?,
                expires: *expires,
            }),
        )?,
        Command::Consent { action: ConsentAction::Revoke { rel, grant, reason } } => in_rel(
            rel,
            Body::ConsentRevocation(ConsentRevocation { grant: message("grant", grant)?, reason: reason.clone() }),
        )?,
        Command::Report { kind } => {
            let (wrap, a): (fn(Report) -> Body, _) = match kind {
                ReportKind::Usage(a) => (Body::UsageReport, a),
                ReportKind::Impact(a) => (Body::ImpactReport, a),
            };
            let report =
                Report { metric: a.metric.clone(), unit: a.unit.clone(), start: a.start, end: a.end, value: a.value };
            in_rel(&a.rel, wrap(report))?
        }
        Command::Countersign { rel, report } => {
            in_rel(rel, Body::Countersignature(Countersignature { report: message("report", report)? }))?
        }
        Command::Share { rel: r, file, content, purpose, categories: c, media_type } => {
            // Every check that needs no file comes first: a bad argument leaves no share behind.
            let relationship = rel(r)?;
            let content = word("content", content)?;
            let purpose = purpose
                .as_deref()
                .map(|p| Purpose::new(p).map_err(|e| anyhow::anyhow!("purpose {p:?}: {e}")))
                .transpose()?;
            let categories = categories(c)?;
            let data = std::fs::read(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let mut salt = [0u8; rapport_protocol::SALT_LEN];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
            let commitment = Digest32::commit(&salt, &data);
            remember_share(dir, &commitment, file, &salt)?;
            Draft {
                relationship: Some(relationship),
                to: None,
                body: Body::DataShare(DataShare {
                    content,
                    purpose,
                    categories,
                    commitment,
                    media_type: media_type.clone(),
                    size: data.len() as u64,
                }),
            }
        }
        Command::Introduce { rel, body: b } => in_rel(rel, body(Kind::Introduction, b)?)?,
        Command::Separate { rel, body: b } => in_rel(rel, body(Kind::SeparationNotice, b)?)?,
        Command::Dispose { rel, body: b } => in_rel(rel, body(Kind::DispositionStatement, b)?)?,
        Command::Close { rel, statement } => {
            in_rel(rel, Body::ClosureReceipt(ClosureReceipt { statement: message("statement", statement)? }))?
        }
        Command::Send { kind, target, body: b } => {
            let kind: Kind = kind.parse()?;
            Draft {
                relationship: target.relationship.as_deref().map(rel).transpose()?,
                to: target.to.as_deref().map(key).transpose()?,
                body: body(kind, b)?,
            }
        }
        _ => return Ok(None),
    }))
}
