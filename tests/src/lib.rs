//! The spec's test vectors (spec/protocol.md §12): their file format, how a reader judges
//! them, and the generator that writes them.
//!
//! `cargo run -p rapport-tests --bin rapport-vectors` writes every vector under
//! `spec/vectors/`; the `vectors` test regenerates them in memory and fails if any byte
//! differs, then judges every file on disk and fails if one goes unread.
//!
//! Everything here is deterministic: keys, relationship ids and salts are SHA-256 of fixed
//! labels, times are fixed, and nothing reads a clock or an unseeded random source.

use std::path::{Path, PathBuf};

use rapport_protocol::problem::HasCode;
use rapport_protocol::{log, Code, Message, Policy, Relationship};
use serde::{Deserialize, Serialize};

mod generate;
pub mod raw;

pub use generate::generate;

/// The vector folder, relative to the workspace root.
pub const VECTORS_DIR: &str = "spec/vectors";

/// The folders of `spec/vectors/` and what their files hold.
pub const FOLDERS: &[(&str, Shape)] = &[
    ("kinds", Shape::Single),
    ("invalid", Shape::Single),
    ("strict", Shape::Single),
    ("sequences", Shape::Sequence),
    ("logs", Shape::Log),
    ("seals", Shape::Bundle),
];

/// What a vector file holds and how it is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One envelope, judged by the envelope checks (§3.5).
    Single,
    /// Messages applied in order to one relationship (§7).
    Sequence,
    /// A relationship's log given to log verification (§7.6).
    Log,
    /// An export bundle with its seal, given to bundle verification (spec/node.md §7.3).
    Bundle,
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// One message: a single-message file, or an entry of a sequence or log file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vector {
    /// Identifier; for a file, its name without `.json`.
    pub name: String,
    /// What the vector shows.
    pub description: String,
    /// Whether the envelope is verified (for a sequence entry: and accepted).
    pub valid: bool,
    /// The expected problem code when not valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem_code: Option<String>,
    /// The envelope bytes.
    pub cose_hex: String,
    /// The key that signed (the kid).
    pub signer_public_key_hex: String,
    /// The payload bytes carried in the envelope, when there are any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_hex: Option<String>,
    /// SHA-256 of the envelope bytes.
    pub message_id_hex: String,
}

/// A sequence or log file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sequence {
    /// Identifier, the file name without `.json`.
    pub name: String,
    /// What the vector shows.
    pub description: String,
    /// Sequence: every message accepted. Log: the log verifies.
    pub valid: bool,
    /// Sequence: the code of the first refused message. Log: the verifier's code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem_code: Option<String>,
    /// The messages, in order.
    pub messages: Vec<Vector>,
}

/// A seal file: an export bundle and the verdict of bundle verification (spec/node.md §7.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleVector {
    /// Identifier, the file name without `.json`.
    pub name: String,
    /// What the vector shows.
    pub description: String,
    /// Whether the bundle verifies.
    pub valid: bool,
    /// The expected bundle code (spec/node.md §7.3) when not valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem_code: Option<String>,
    /// The kid of the bundle's seal, when it has one that parses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer_public_key_hex: Option<String>,
    /// The seal's payload bytes, when it has one that parses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal_payload_hex: Option<String>,
    /// The bundle, as a file holds it.
    pub bundle: serde_json::Value,
}

impl BundleVector {
    /// The verdict the file states.
    pub fn verdict(&self) -> Verdict {
        verdict_of(self.valid, self.problem_code.as_deref())
    }
}

impl Vector {
    /// The envelope bytes.
    pub fn cose(&self) -> Result<Vec<u8>, hex::FromHexError> {
        hex::decode(&self.cose_hex)
    }

    /// The verdict the file states.
    pub fn verdict(&self) -> Verdict {
        verdict_of(self.valid, self.problem_code.as_deref())
    }
}

impl Sequence {
    /// The verdict the file states for the whole.
    pub fn verdict(&self) -> Verdict {
        verdict_of(self.valid, self.problem_code.as_deref())
    }

    /// Every envelope, in order.
    pub fn envelopes(&self) -> Result<Vec<Vec<u8>>, hex::FromHexError> {
        self.messages.iter().map(Vector::cose).collect()
    }
}

/// Accepted, or refused with a problem code (by name, as in the files).
pub type Verdict = Result<(), String>;

fn verdict_of(valid: bool, code: Option<&str>) -> Verdict {
    match (valid, code) {
        (true, _) => Ok(()),
        (false, code) => Err(code.unwrap_or("").to_owned()),
    }
}

fn refused(code: Code) -> Verdict {
    Err(code.as_str().to_owned())
}

/// The verdict of the envelope checks (§3.5) on one envelope.
pub fn judge_envelope(bytes: &[u8]) -> Verdict {
    Message::open(bytes).map(drop).or_else(|e| refused(e.code()))
}

/// The verdicts on a sequence (§12): each message applied in order to one relationship, with
/// `now` = its own `at` under the LOG policy; a refused message changes nothing.
pub fn judge_sequence<B: AsRef<[u8]>>(envelopes: &[B]) -> Vec<Verdict> {
    let mut rel: Option<Relationship> = None;
    let mut verdicts = Vec::with_capacity(envelopes.len());
    for bytes in envelopes {
        let verdict = match Message::open(bytes.as_ref()) {
            Err(e) => refused(e.code()),
            Ok(m) => {
                let now = m.header().created_at;
                match rel.as_mut() {
                    None => match Relationship::open(&m, now, Policy::LOG) {
                        Ok((r, _)) => {
                            rel = Some(r);
                            Ok(())
                        }
                        Err(e) => refused(e.code),
                    },
                    Some(r) => r.handle(&m, now, Policy::LOG).map(drop).or_else(|e| refused(e.code)),
                }
            }
        };
        verdicts.push(verdict);
    }
    verdicts
}

/// The verdict of log verification (§7.6) on a whole log.
pub fn judge_log<B: AsRef<[u8]> + Sync>(envelopes: &[B]) -> Verdict {
    log::verify(envelopes).map(drop).or_else(|e| refused(e.code))
}

/// The verdict of bundle verification (spec/node.md §7.3) on a bundle file's bytes, as
/// `rapport verify FILE` reaches it: unsigned bundles refused.
pub fn judge_bundle(bytes: &[u8]) -> Verdict {
    rapport_node::bundle::verify_file(bytes, rapport_node::bundle::Unsigned::Refuse)
        .map(drop)
        .map_err(|e| e.code().to_owned())
}

/// The overall verdict of a sequence: that of its first refused message.
pub fn first_refusal(verdicts: &[Verdict]) -> Verdict {
    verdicts.iter().find(|v| v.is_err()).cloned().unwrap_or(Ok(()))
}

/// A vector file as written: its path under `spec/vectors/` and its exact text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// For instance `kinds/offer.json`.
    pub path: String,
    /// Pretty-printed JSON with a final newline.
    pub text: String,
}

/// Writes every vector under `root` (normally `spec/vectors/` of the workspace), removing any
/// `.json` file there that the generator no longer writes.
pub fn write_all(root: &Path) -> std::io::Result<usize> {
    let files = generate();
    for (folder, _) in FOLDERS {
        let dir = root.join(folder);
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                std::fs::remove_file(path)?;
            }
        }
    }
    for f in &files {
        std::fs::write(root.join(&f.path), &f.text)?;
    }
    Ok(files.len())
}
