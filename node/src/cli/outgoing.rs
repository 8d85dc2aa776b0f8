//! The commands that send a message: each becomes an [`Outgoing`] (kind, relationship or
//! recipient, JSON body) that [`send`] posts to the daemon's `/v1/send/{kind}`.

use std::path::Path;

use serde_json::{json, Value};

use super::{json_arg, Command, ConsentAction, ReportKind, TermsAction};
use crate::api::SendRequest;
use crate::client::Client;

/// A message to send: kind, target, body.
pub(super) struct Outgoing {
    kind: &'static str,
    relationship: Option<String>,
    to: Option<String>,
    body: Value,
}

impl Outgoing {
    fn in_rel(kind: &'static str, rel: String, body: Value) -> Outgoing {
        Outgoing { kind, relationship: Some(rel), to: None, body }
    }
}

pub(super) async fn send(client: &Client, out: Outgoing) -> anyhow::Result<Value> {
    let req = SendRequest { relationship: out.relationship, to: out.to, body: out.body };
    Ok(client.post(&format!("/v1/send/{}", out.kind), &req).await?)
}

fn kind_name(kind: &str) -> anyhow::Result<&'static str> {
    let kind: rapport_protocol::Kind = kind.parse()?;
    Ok(kind.as_str())
}

/// Keeps the salt of a `data_share` commitment, and where its data is, in
/// `shares/<commitment>.json` (mode 0600) in the data directory: the log carries only the
/// commitment, and without the salt nobody could show that the data matches it.
fn remember_share(dir: &Path, commitment: &rapport_protocol::Digest32, file: &Path, salt: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let shares = dir.join("shares");
    std::fs::create_dir_all(&shares)?;
    let path = shares.join(format!("{}.json", commitment.to_hex()));
    let record = json!({ "file": std::fs::canonicalize(file)?, "salt": hex::encode(salt) });
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)?;
    f.write_all(format!("{record}\n").as_bytes()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Builds the message of a relationship command, or `None` for the other commands.
pub(super) fn outgoing(dir: &Path, command: &Command) -> anyhow::Result<Option<Outgoing>> {
    Ok(Some(match command {
        Command::Offer { to, title, description, model, amount, currency, metric, threshold } => {
            let mut price = json!({ "model": model.wire(), "amount": { "currency": currency, "minor_units": amount } });
            if let Some(m) = metric {
                price["metric"] = json!(m);
            }
            if let Some(t) = threshold {
                price["threshold"] = json!(t);
            }
            Outgoing {
                kind: "offer",
                relationship: None,
                to: to.clone(),
                body: json!({ "title": title, "description": description, "price": price }),
            }
        }
        Command::Intent { title, description, tags } => Outgoing {
            kind: "intent",
            relationship: None,
            to: None,
            body: json!({ "title": title, "description": description, "tags": tags }),
        },
        Command::Terms { action: TermsAction::Propose { target, role, terms, .. } } => Outgoing {
            kind: "terms_proposal",
            relationship: target.relationship.clone(),
            to: target.to.clone(),
            body: json!({ "role": role, "terms": json_arg(terms.as_deref().unwrap_or_default())? }),
        },
        Command::Terms { action: TermsAction::Accept { rel, proposal } } => {
            Outgoing::in_rel("terms_acceptance", rel.clone(), json!({ "proposal": proposal }))
        }
        Command::Terms { action: TermsAction::Reject { rel, proposal, reason, counter } } => {
            let mut body = json!({ "proposal": proposal, "reason": reason });
            if let Some(c) = counter {
                body["counter"] = json_arg(c)?;
            }
            Outgoing::in_rel("terms_rejection", rel.clone(), body)
        }
        Command::Consent {
            action: ConsentAction::Grant { rel, purposes, categories, third_party, retention_days, expires },
        } => {
            let mut body = json!({
                "purposes": purposes,
                "categories": categories,
                "third_party_sharing": third_party,
                "retention": retention_days * 86_400,
            });
            if let Some(e) = expires {
                body["expires"] = json!(e);
            }
            Outgoing::in_rel("consent_grant", rel.clone(), body)
        }
        Command::Consent { action: ConsentAction::Revoke { rel, grant, reason } } => {
            let mut body = json!({ "grant": grant });
            if let Some(r) = reason {
                body["reason"] = json!(r);
            }
            Outgoing::in_rel("consent_revocation", rel.clone(), body)
        }
        Command::Report { kind } => {
            let (kind, a) = match kind {
                ReportKind::Usage(a) => ("usage_report", a),
                ReportKind::Impact(a) => ("impact_report", a),
            };
            let body = json!({ "metric": a.metric, "unit": a.unit, "start": a.start, "end": a.end, "value": a.value });
            Outgoing::in_rel(kind, a.rel.clone(), body)
        }
        Command::Countersign { rel, report } => {
            Outgoing::in_rel("countersignature", rel.clone(), json!({ "report": report }))
        }
        Command::Share { rel, file, content, purpose, categories, media_type } => {
            let data = std::fs::read(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let mut salt = [0u8; rapport_protocol::SALT_LEN];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
            let commitment = rapport_protocol::Digest32::commit(&salt, &data);
            remember_share(dir, &commitment, file, &salt)?;
            let mut body = json!({
                "content": content,
                "categories": categories,
                "commitment": commitment.to_hex(),
                "media_type": media_type,
                "size": data.len(),
            });
            if let Some(p) = purpose {
                body["purpose"] = json!(p);
            }
            Outgoing::in_rel("data_share", rel.clone(), body)
        }
        Command::Introduce { rel, body } => Outgoing::in_rel("introduction", rel.clone(), json_arg(body)?),
        Command::Separate { rel, body } => Outgoing::in_rel("separation_notice", rel.clone(), json_arg(body)?),
        Command::Dispose { rel, body } => Outgoing::in_rel("disposition_statement", rel.clone(), json_arg(body)?),
        Command::Close { rel, statement } => {
            Outgoing::in_rel("closure_receipt", rel.clone(), json!({ "statement": statement }))
        }
        Command::Send { kind, target, body } => Outgoing {
            kind: kind_name(kind)?,
            relationship: target.relationship.clone(),
            to: target.to.clone(),
            body: json_arg(body)?,
        },
        _ => return Ok(None),
    }))
}
