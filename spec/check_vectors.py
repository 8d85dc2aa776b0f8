#!/usr/bin/env python3
"""Check Rapport's test vectors with off-the-shelf Python COSE and Ed25519 libraries.

This script shows that someone holding only the JSON vectors under ``spec/vectors/``
and generic libraries (pycose, pynacl, cbor2) -- no Rapport code -- can verify every
valid vector and recompute every message id (spec/protocol.md §3 and §12).

For every entry of every vector file (single-message files in ``kinds/``,
``invalid/``, ``strict/`` and every entry of the ``messages`` array of the files in
``sequences/`` and ``logs/``) it:

* recomputes the message id, SHA-256 of the envelope bytes (§3.4), and compares it
  with ``message_id_hex``;
* for an entry with ``valid: true`` -- and for a ``sequences/`` entry refused only by
  the relationship rules of §7, whose envelope passed every check of §3.5 -- decodes
  the envelope with pycose, checks that it is a tagged (18) COSE_Sign1 with
  ``alg`` EdDSA and ``kid`` equal to the signer key in the protected header, verifies
  the signature with pycose (OpenSSL through ``cryptography``) and, independently,
  with pynacl (libsodium) over a Sig_structure built by hand with cbor2, and checks
  the payload (equal to ``payload_hex``; a map with ``v`` = 1, a text ``kind`` and
  ``from`` equal to the signer key);
* for a refused entry whose code is about keys or signatures (``bad-signature``,
  ``invalid-key``, ``weak-key``) records whether each library accepts the signature.
  Off-the-shelf verifiers are not required to apply Rapport's strict rule (§3.3), so
  their verdicts on the ``strict/`` edge cases are only reported. A ``bad-signature``
  entry anywhere else is plain tampering, and a library that accepts it is a failure.

For every export bundle of ``seals/`` (spec/node.md §7) it applies the bundle checks of
node.md §7.3 by hand -- the seal's exact bytes (§7.2) with cbor2, its signature with pynacl
over a hand-built Sig_structure (and, for a valid one, with pycose, content type and all),
the count and the digest over the message ids, the manifest against the statement, the
exporter against the parties named in the messages' payloads, the relationship -- and
requires the vector's first code. Log verification (§7.6) and the phase a log establishes
are the state machine's, which this script does not replay: a vector expecting one of their
codes must pass every check here.

Usage: ``python3 spec/check_vectors.py [VECTORS_DIR]`` (default: ``vectors/`` next to
this script). Exit status 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import cbor2
import nacl.exceptions
import nacl.signing
from pycose import headers
from pycose.algorithms import EdDSA
from pycose.keys.okp import OKPKey
from pycose.messages.cosemessage import CoseMessage
from pycose.messages.sign1message import Sign1Message

# The vector directories of §12; each must hold at least one file.
EXPECTED_DIRS = ("kinds", "invalid", "strict", "sequences", "logs", "seals")

# The export bundle vectors (node.md §7), checked by check_bundle_file.
SEALS_DIR = "seals"

# Directory whose refused entries are signature/key edge cases on which generic
# verifiers may legitimately differ from Rapport's strict rule (§3.3).
STRICT_DIR = "strict"

# Codes produced by the envelope and payload checks (§3.5, §4.2). In a sequence, an
# entry refused with any other code was refused by the relationship rules (§7), so
# its envelope is sound and must verify like a valid one.
ENVELOPE_CODES = frozenset(
    {
        "too-large",
        "unsupported-structure",
        "malformed",
        "unsupported-algorithm",
        "non-deterministic",
        "invalid-key",
        "weak-key",
        "unsupported-version",
        "unknown-kind",
        "schema-violation",
        "too-deep",
        "wrong-key",
        "bad-signature",
    }
)

# Refusal codes whose vectors say something about signature verification itself.
SIGNATURE_CODES = frozenset({"bad-signature", "invalid-key", "weak-key"})

COSE_SIGN1_TAG = 18
EDDSA_ALG_ID = -8
KEY_LEN = 32
SIGNATURE_LEN = 64
# §3.5: the protected header is exactly {1: -8, 4: h'<kid>'} in this encoding.
PROTECTED_PREFIX = bytes.fromhex("a20127045820")

REQUIRED_FIELDS = ("name", "valid", "cose_hex", "signer_public_key_hex", "message_id_hex")


@dataclass(frozen=True)
class Entry:
    """One message vector: a single-message file or one element of ``messages``."""

    category: str  # the vector directory: kinds, invalid, strict, sequences, logs
    label: str  # where it comes from, for messages: "dir/file.json[#i name]"
    data: dict[str, Any]

    @property
    def valid(self) -> bool:
        return self.data.get("valid") is True

    @property
    def problem_code(self) -> Optional[str]:
        return self.data.get("problem_code")

    @property
    def cose(self) -> bytes:
        return bytes.fromhex(self.data["cose_hex"])

    @property
    def signer_key(self) -> bytes:
        return bytes.fromhex(self.data["signer_public_key_hex"])


@dataclass
class Verdict:
    """How one library judges a signature: accepted, or refused with a reason."""

    accepted: bool
    detail: str = ""

    def __str__(self) -> str:
        if self.accepted:
            return "accepts"
        return f"refuses ({self.detail})" if self.detail else "refuses"


@dataclass
class Report:
    """Running totals and failures of one run."""

    files: int = 0
    entries: int = 0
    ids_recomputed: int = 0
    valid_verified: int = 0
    state_refused_verified: int = 0
    bundles_checked: int = 0
    seals_verified: int = 0
    failures: list[str] = field(default_factory=list)
    # (entry, expected, pycose verdict, pynacl verdict) for key/signature refusals.
    edge_cases: list[tuple[Entry, str, Verdict, Verdict]] = field(default_factory=list)

    def fail(self, label: str, reason: str) -> None:
        self.failures.append(f"FAIL {label}: {reason}")


# --------------------------------------------------------------------------- loading


def load_entries(root: Path, report: Report) -> Iterator[Entry]:
    """Yield every vector entry under ``root``, counting files and checking layout."""
    for name in EXPECTED_DIRS:
        if not sorted((root / name).glob("*.json")):
            report.fail(f"{name}/", "no vector files in this directory")
    for path in sorted(root.glob("*/*.json")):
        report.files += 1
        rel = path.relative_to(root).as_posix()
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            report.fail(rel, f"cannot read JSON: {exc}")
            continue
        if not isinstance(doc, dict):
            report.fail(rel, "top level is not a JSON object")
            continue
        if doc.get("name") != path.stem:
            report.fail(rel, f"name {doc.get('name')!r} differs from the file name")
        if path.parent.name == SEALS_DIR:
            check_bundle_file(rel, doc, report)
            continue
        yield from entries_of(path.parent.name, rel, doc, report)


def entries_of(category: str, rel: str, doc: dict[str, Any], report: Report) -> Iterator[Entry]:
    """Split a file into its entries: itself, or each element of ``messages``."""
    if "messages" not in doc:
        yield Entry(category, rel, doc)
        return
    messages = doc["messages"]
    if not isinstance(messages, list) or not messages:
        report.fail(rel, "`messages` is not a non-empty array")
        return
    for index, message in enumerate(messages):
        name = message.get("name", "?") if isinstance(message, dict) else "?"
        label = f"{rel}[#{index} {name}]"
        if not isinstance(message, dict):
            report.fail(label, "entry is not a JSON object")
            continue
        yield Entry(category, label, message)


def entry_format_problems(entry: Entry) -> list[str]:
    """Check the fields of §12 that this script relies on."""
    data = entry.data
    problems = [f"missing field `{name}`" for name in REQUIRED_FIELDS if name not in data]
    if problems:
        return problems
    if not isinstance(data["valid"], bool):
        problems.append("`valid` is not a boolean")
    if data["valid"] is True and "problem_code" in data:
        problems.append("`problem_code` present on a valid entry")
    if data["valid"] is False and not isinstance(data.get("problem_code"), str):
        problems.append("`problem_code` missing on a refused entry")
    for name in ("cose_hex", "signer_public_key_hex", "message_id_hex", "payload_hex"):
        if name in data and not is_hex(data[name]):
            problems.append(f"`{name}` is not lowercase hex")
    return problems


def is_hex(value: Any) -> bool:
    if not isinstance(value, str) or len(value) % 2 or value != value.lower():
        return False
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------ message id


def message_id(cose: bytes) -> str:
    """§3.4: SHA-256 of the envelope bytes exactly as sent."""
    return hashlib.sha256(cose).hexdigest()


def check_message_id(entry: Entry, report: Report) -> None:
    computed = message_id(entry.cose)
    report.ids_recomputed += 1
    if computed != entry.data["message_id_hex"]:
        report.fail(entry.label, f"message id {computed} != {entry.data['message_id_hex']}")


# ------------------------------------------------------------------ valid envelopes


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """RFC 9052 §4.4 Sig_structure for COSE_Sign1 with empty external AAD (§3.3)."""
    return cbor2.dumps(["Signature1", protected, b"", payload])


def raw_sign1_parts(cose: bytes) -> tuple[bytes, Any, Any, bytes]:
    """Decode the envelope with cbor2 alone: (protected, unprotected, payload, signature)."""
    item = cbor2.loads(cose)
    if not isinstance(item, cbor2.CBORTag) or item.tag != COSE_SIGN1_TAG:
        raise ValueError("not a CBOR item tagged 18")
    parts = item.value
    if not isinstance(parts, list) or len(parts) != 4:
        raise ValueError("tag 18 does not hold an array of four")
    protected, unprotected, payload, signature = parts
    if not isinstance(protected, bytes) or not isinstance(signature, bytes):
        raise ValueError("protected header or signature is not a byte string")
    return protected, unprotected, payload, signature


def pycose_key(public_key: bytes) -> OKPKey:
    """An Ed25519 OKP COSE_Key from raw public key bytes."""
    return OKPKey(crv="Ed25519", x=public_key)


def decode_sign1(cose: bytes) -> Sign1Message:
    message = CoseMessage.decode(cose)
    if not isinstance(message, Sign1Message):
        raise TypeError(f"pycose decoded a {type(message).__name__}, not a Sign1Message")
    return message


def pycose_envelope_problems(entry: Entry) -> list[str]:
    """Decode and verify a valid envelope with pycose; return what is wrong."""
    cose, key = entry.cose, entry.signer_key
    if cose[:1] != b"\xd2":
        return ["envelope does not start with the one-byte tag 18 (d2)"]
    try:
        message = decode_sign1(cose)
    except Exception as exc:  # pycose raises many exception types
        return [f"pycose cannot decode the envelope: {type(exc).__name__}: {exc}"]
    problems: list[str] = []
    alg = message.phdr.get(headers.Algorithm)
    if alg is not EdDSA or getattr(alg, "identifier", None) != EDDSA_ALG_ID:
        problems.append(f"protected alg is {alg!r}, not EdDSA (-8)")
    kid = message.phdr.get(headers.KID)
    if kid != key:
        problems.append(f"protected kid {kid!r} != signer_public_key_hex")
    if message.uhdr:
        problems.append(f"unprotected header is not empty: {message.uhdr!r}")
    expected_payload = payload_of(entry)
    if expected_payload is None:
        problems.append("valid entry has no payload_hex")
    elif message.payload != expected_payload:
        problems.append("pycose payload != payload_hex")
    message.key = pycose_key(key)
    try:
        if message.verify_signature() is not True:
            problems.append("pycose verify_signature() returned False")
    except Exception as exc:
        problems.append(f"pycose verify_signature() raised {type(exc).__name__}: {exc}")
    problems.extend(pycose_sig_structure_problems(message))
    return problems


def pycose_sig_structure_problems(message: Sign1Message) -> list[str]:
    """Compare pycose's to-be-signed bytes (a private helper, if present) with ours."""
    create: Optional[Callable[[], bytes]] = getattr(message, "_create_sig_structure", None)
    if create is None or message.payload is None:
        return []
    ours = sig_structure(message.phdr_encoded, message.payload)
    if create() != ours:
        return ["pycose's Sig_structure differs from the hand-built one"]
    return []


def payload_of(entry: Entry) -> Optional[bytes]:
    value = entry.data.get("payload_hex")
    return None if value is None else bytes.fromhex(value)


def raw_envelope_problems(entry: Entry) -> list[str]:
    """Rapport's envelope profile (§3.5) and a pynacl check of the signature."""
    key = entry.signer_key
    try:
        protected, unprotected, payload, signature = raw_sign1_parts(entry.cose)
    except Exception as exc:
        return [f"cbor2 cannot read the envelope: {type(exc).__name__}: {exc}"]
    problems: list[str] = []
    if len(key) != KEY_LEN:
        problems.append(f"signer key is {len(key)} bytes, not {KEY_LEN}")
    if protected != PROTECTED_PREFIX + key:
        problems.append("protected header bytes are not a2 01 27 04 58 20 <kid>")
    if unprotected != {}:
        problems.append("unprotected header is not an empty map")
    if not isinstance(payload, bytes):
        return problems + ["payload is not an embedded byte string"]
    if len(signature) != SIGNATURE_LEN:
        problems.append(f"signature is {len(signature)} bytes, not {SIGNATURE_LEN}")
    to_be_signed = sig_structure(protected, payload)
    if not to_be_signed.startswith(bytes.fromhex("846a5369676e617475726531") + b"\x58\x26" + protected):
        problems.append("Sig_structure does not have the layout of §3.3")
    verdict = pynacl_verify(key, to_be_signed, signature)
    if not verdict.accepted:
        problems.append(f"pynacl refuses the signature: {verdict.detail}")
    problems.extend(payload_problems(payload, key))
    return problems


def payload_problems(payload: bytes, key: bytes) -> list[str]:
    """The payload is a CBOR map with v = 1, a text kind, and from = the signer key."""
    try:
        value = cbor2.loads(payload)
    except Exception as exc:
        return [f"cbor2 cannot decode the payload: {type(exc).__name__}: {exc}"]
    if not isinstance(value, dict):
        return [f"payload is a {type(value).__name__}, not a map"]
    problems: list[str] = []
    version = value.get("v")
    if type(version) is not int or version != 1:
        problems.append(f"payload v is {version!r}, not 1")
    if not isinstance(value.get("kind"), str):
        problems.append(f"payload kind is {value.get('kind')!r}, not a text string")
    if value.get("from") != key:
        problems.append("payload from != signer_public_key_hex")
    return problems


def verify_sound_envelope(entry: Entry, report: Report) -> bool:
    """Run every check on an envelope that Rapport accepts; record failures."""
    problems = pycose_envelope_problems(entry) + raw_envelope_problems(entry)
    for problem in problems:
        report.fail(entry.label, problem)
    return not problems


# ------------------------------------------------------------- refused signatures


def pynacl_verify(key: bytes, to_be_signed: bytes, signature: bytes) -> Verdict:
    try:
        nacl.signing.VerifyKey(key).verify(to_be_signed, signature)
    except nacl.exceptions.BadSignatureError:
        return Verdict(False, "BadSignatureError")
    except Exception as exc:  # e.g. a key of the wrong length
        return Verdict(False, f"{type(exc).__name__}: {exc}")
    return Verdict(True)


def pycose_judgement(entry: Entry) -> Verdict:
    """Does pycose, used plainly, accept this envelope's signature under the signer key?"""
    try:
        message = decode_sign1(entry.cose)
        message.key = pycose_key(entry.signer_key)
        accepted = message.verify_signature()
    except Exception as exc:
        return Verdict(False, f"{type(exc).__name__}")
    return Verdict(bool(accepted), "" if accepted else "verify_signature() False")


def pynacl_judgement(entry: Entry) -> Verdict:
    """Does pynacl accept the signature over the hand-built Sig_structure?"""
    try:
        protected, _, payload, signature = raw_sign1_parts(entry.cose)
    except Exception as exc:
        return Verdict(False, f"unreadable envelope: {type(exc).__name__}")
    if not isinstance(payload, bytes):
        return Verdict(False, "no embedded payload")
    return pynacl_verify(entry.signer_key, sig_structure(protected, payload), signature)


def judge_refused_signature(entry: Entry, report: Report) -> None:
    """Record how the libraries judge a key/signature refusal; fail on accepted tampering."""
    code = entry.problem_code or ""
    by_pycose, by_pynacl = pycose_judgement(entry), pynacl_judgement(entry)
    report.edge_cases.append((entry, code, by_pycose, by_pynacl))
    if entry.category == STRICT_DIR or code != "bad-signature":
        return  # edge cases of the strict rule: report only
    for library, verdict in (("pycose", by_pycose), ("pynacl", by_pynacl)):
        if verdict.accepted:
            report.fail(entry.label, f"{library} accepts a tampered message (bad-signature)")


# ---------------------------------------------------------------------- main flow


def is_state_refusal(entry: Entry) -> bool:
    """A sequence entry refused by §7 only: its envelope passed every check of §3.5."""
    return entry.category == "sequences" and not entry.valid and entry.problem_code not in ENVELOPE_CODES


def check_entry(entry: Entry, report: Report) -> None:
    report.entries += 1
    format_problems = entry_format_problems(entry)
    for problem in format_problems:
        report.fail(entry.label, problem)
    if format_problems:
        return
    check_message_id(entry, report)
    if entry.valid:
        if verify_sound_envelope(entry, report):
            report.valid_verified += 1
    elif is_state_refusal(entry):
        if verify_sound_envelope(entry, report):
            report.state_refused_verified += 1
    if entry.valid and entry.category == STRICT_DIR:
        record_strict_valid(entry, report)
    elif not entry.valid and (entry.category == STRICT_DIR or entry.problem_code in SIGNATURE_CODES):
        judge_refused_signature(entry, report)


def record_strict_valid(entry: Entry, report: Report) -> None:
    """Put the strict rule's accepted edge cases in the table too (already verified)."""
    report.edge_cases.append((entry, "valid", pycose_judgement(entry), pynacl_judgement(entry)))


# ------------------------------------------------------------------ export bundles

SEAL_CONTENT_TYPE = "application/vnd.rapport.export-seal+cbor"
BUNDLE_FORMAT = "rapport-export/2"
UNSIGNED_FORMAT = "rapport-export/1"
MAX_SEAL_SIZE = 1024
MANIFEST_KEYS = {"relationship", "exported_by", "exported_at", "phase", "ids"}
STATEMENT_TYPES = {
    "format": str,
    "relationship": bytes,
    "exported_by": bytes,
    "exported_at": int,
    "phase": str,
    "count": int,
    "digest": bytes,
}
# Codes of checks this script does not make (log verification, node.md §7.3 check 12, and
# the phase half of check 14): a vector expecting one of them must pass every check here.
UNDECIDED_BUNDLE_CODES = ENVELOPE_CODES | {
    "false-claim",
    "clock-skew",
    "expired",
    "not-a-party",
    "wrong-relationship",
    "chain-gap",
    "fork",
    "replay",
    "bad-ack",
    "reordered",
    "out-of-state",
    "not-permitted",
    "unknown-reference",
    "stale-proposal",
    "consent-required",
    "notice-too-short",
    "incomplete-disposition",
    "closed",
}


def seal_protected(kid: bytes) -> bytes:
    """node.md §7.2: {1: -8, 3: content type, 4: h'<kid>'}, built by hand."""
    ct = SEAL_CONTENT_TYPE.encode()
    return bytes([0xA3, 0x01, 0x27, 0x03, 0x78, len(ct)]) + ct + bytes([0x04, 0x58, 0x20]) + kid


def seal_problem(seal: bytes) -> tuple[Optional[str], Optional[dict[str, Any]]]:
    """node.md §7.2 checks by hand: (the failure, or None, and the statement)."""
    if len(seal) > MAX_SEAL_SIZE:
        return "too large", None
    try:
        protected, unprotected, payload, signature = raw_sign1_parts(seal)
        header = cbor2.loads(protected)
    except Exception as exc:
        return f"not a COSE_Sign1: {exc}", None
    kid = header.get(4) if isinstance(header, dict) else None
    if not isinstance(kid, bytes) or len(kid) != KEY_LEN:
        return "no 32-byte kid", None
    if protected != seal_protected(kid):
        return "protected header is not the seal's", None
    if unprotected != {} or not isinstance(payload, bytes) or len(signature) != SIGNATURE_LEN:
        return "unprotected header, payload or signature", None
    try:
        statement = cbor2.loads(payload)
    except Exception as exc:
        return f"statement is not CBOR: {exc}", None
    if cbor2.dumps(statement, canonical=True) != payload:
        return "statement is not deterministically encoded", None
    if not isinstance(statement, dict) or set(statement) != set(STATEMENT_TYPES):
        return "statement keys", None
    for key, kind in STATEMENT_TYPES.items():
        if not isinstance(statement[key], kind) or isinstance(statement[key], bool):
            return f"statement {key} type", None
    if statement["format"] != BUNDLE_FORMAT:
        return "statement format", None
    if statement["exported_by"] != kid:
        return "exported_by is not the kid", None
    verdict = pynacl_verify(kid, sig_structure(protected, payload), signature)
    if not verdict.accepted:
        return f"pynacl: {verdict.detail}", None
    return None, statement


def parties(envelopes: list[bytes]) -> tuple[set[bytes], set[bytes]]:
    """The `from` and `to` keys and the `rel` ids named in the messages' payloads."""
    keys: set[bytes] = set()
    rels: set[bytes] = set()
    for cose in envelopes:
        try:
            payload = cbor2.loads(raw_sign1_parts(cose)[2])
        except Exception:
            continue
        if isinstance(payload, dict):
            keys.update(k for k in (payload.get("from"), payload.get("to")) if isinstance(k, bytes))
            if isinstance(payload.get("rel"), bytes):
                rels.add(payload["rel"])
    return keys, rels


def judge_bundle(b: Any) -> Optional[str]:
    """The first code of node.md §7.3 this script can decide, or None."""
    if not isinstance(b, dict) or not {"format", "manifest", "messages"} <= set(b) <= {
        "format",
        "manifest",
        "seal",
        "messages",
    }:
        return "malformed-bundle"
    m, messages = b["manifest"], b["messages"]
    if not isinstance(m, dict) or set(m) != MANIFEST_KEYS or not isinstance(messages, list):
        return "malformed-bundle"
    if b["format"] not in (BUNDLE_FORMAT, UNSIGNED_FORMAT):
        return "unknown-format"
    if b["format"] == UNSIGNED_FORMAT and "seal" in b:
        return "malformed-bundle"
    try:
        envelopes = [bytes.fromhex(h) for h in messages]
        seal = bytes.fromhex(b["seal"]) if "seal" in b else None
    except (TypeError, ValueError):
        return "malformed-bundle"
    if seal is None:
        return "unsigned"
    problem, statement = seal_problem(seal)
    if statement is None:
        return "bad-seal"
    ids = [hashlib.sha256(e).digest() for e in envelopes]
    if len(ids) < statement["count"]:
        return "truncated"
    if len(ids) > statement["count"] or hashlib.sha256(b"".join(ids)).digest() != statement["digest"]:
        return "messages-altered"
    claims = (
        (m["exported_by"], statement["exported_by"].hex()),
        (m["exported_at"], statement["exported_at"]),
        (m["relationship"], statement["relationship"].hex()),
        (m["phase"], statement["phase"]),
        (m["ids"], [i.hex() for i in ids]),
    )
    if any(manifest != sealed for manifest, sealed in claims):
        return "manifest-edited"
    keys, rels = parties(envelopes)
    if statement["exported_by"] not in keys:
        return "seal-not-by-party"
    if rels and rels != {statement["relationship"]}:
        return "false-claim"
    return None


def pycose_seal_problems(seal: bytes, kid: bytes) -> list[str]:
    """A valid seal, decoded and verified by pycose: content type, kid and signature."""
    try:
        message = decode_sign1(seal)
    except Exception as exc:
        return [f"pycose cannot decode the seal: {type(exc).__name__}: {exc}"]
    problems = []
    if message.phdr.get(headers.ContentType) != SEAL_CONTENT_TYPE:
        problems.append(f"content type is {message.phdr.get(headers.ContentType)!r}")
    if message.phdr.get(headers.KID) != kid:
        problems.append("kid differs from signer_public_key_hex")
    message.key = pycose_key(kid)
    try:
        if message.verify_signature() is not True:
            problems.append("pycose verify_signature() returned False")
    except Exception as exc:
        problems.append(f"pycose verify_signature() raised {type(exc).__name__}: {exc}")
    return problems


def check_bundle_file(rel: str, doc: dict[str, Any], report: Report) -> None:
    """A seals/ vector: this script's verdict on its bundle agrees with the file's."""
    report.bundles_checked += 1
    valid, code = doc.get("valid"), doc.get("problem_code")
    if valid is not (code is None):
        report.fail(rel, "`problem_code` must be present exactly when `valid` is false")
        return
    got = judge_bundle(doc.get("bundle"))
    if code in UNDECIDED_BUNDLE_CODES:
        if got is not None:
            report.fail(rel, f"expected {code} (not decided here), but check {got} fails first")
        return
    if got != code:
        report.fail(rel, f"expected {code or 'valid'}, this script finds {got or 'valid'}")
        return
    if valid:
        seal = bytes.fromhex(doc["bundle"]["seal"])
        kid = bytes.fromhex(doc.get("signer_public_key_hex", ""))
        if cbor2.loads(seal).value[2].hex() != doc.get("seal_payload_hex"):
            report.fail(rel, "seal_payload_hex is not the seal's payload")
        for problem in pycose_seal_problems(seal, kid):
            report.fail(rel, problem)
        report.seals_verified += 1


def library_versions() -> str:
    names = ("pycose", "cryptography", "pynacl", "cbor2")
    parts = [f"{name} {metadata.version(name)}" for name in names]
    try:
        from cryptography.hazmat.backends.openssl import backend

        parts.append(backend.openssl_version_text())
    except Exception:  # the backend layout is not a stable API
        pass
    return ", ".join(parts)


def print_edge_case_table(report: Report) -> None:
    if not report.edge_cases:
        return
    rows = [
        (entry.label, expected, str(by_pycose), str(by_pynacl))
        for entry, expected, by_pycose, by_pynacl in report.edge_cases
    ]
    header = ("vector", "Rapport", "pycose (OpenSSL)", "pynacl (libsodium)")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print("Key and signature edge cases (strict/ and every invalid-key/weak-key/bad-signature entry):")
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    strict_accepted = [
        (entry.label, lib)
        for entry, expected, by_pycose, by_pynacl in report.edge_cases
        if entry.category == STRICT_DIR and expected != "valid"
        for lib, verdict in (("pycose", by_pycose), ("pynacl", by_pynacl))
        if verdict.accepted
    ]
    print(
        f"  {len(strict_accepted)} library verdicts accept a strict/ vector that Rapport refuses "
        "(expected: generic verifiers do not apply the strict rule of §3.3; not a failure)."
    )


def parse_args(argv: list[str]) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent / "vectors"
    parser.add_argument("vectors", nargs="?", type=Path, default=default, help=f"default: {default}")
    vectors: Path = parser.parse_args(argv).vectors
    return vectors


def main(argv: list[str]) -> int:
    root = parse_args(argv)
    print(f"libraries: {library_versions()}")
    if not root.is_dir():
        print(f"FAIL {root}: not a directory")
        return 1
    report = Report()
    for entry in load_entries(root, report):
        check_entry(entry, report)
    print_edge_case_table(report)
    for failure in report.failures:
        print(failure)
    if report.entries == 0:
        print(f"FAIL {root}: no vectors found")
        report.failures.append("no vectors")
    print(
        f"checked {report.files} files, {report.entries} entries: "
        f"{report.valid_verified} valid verified, {report.ids_recomputed} ids recomputed "
        f"(+{report.state_refused_verified} sequence entries refused by §7 whose envelopes verified); "
        f"{report.bundles_checked} export bundles judged, {report.seals_verified} valid seals verified by pycose; "
        f"{len(report.failures)} failures"
    )
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
