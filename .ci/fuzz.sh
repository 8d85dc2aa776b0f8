#!/usr/bin/env bash
# Runs every cargo-fuzz target of rapport-protocol (protocol/fuzz) and of rapport-node
# (node/fuzz) for FUZZ_SECONDS seconds each (default 5), after seeding each target's corpus:
#   envelope <- every `cose_hex`, payload <- every `payload_hex`,
#   log      <- every sequence file's `messages`, as 4-byte big-endian length + envelope records,
#   strict   <- three inputs for each edge-case mode byte 1-255 (protocol/fuzz/fuzz_targets/strict.rs)
#              over a fixed key seed and message,
#   bundle, api, config <- node/fuzz/seeds/<target>/ (checked in, written from the vectors by
#              node/fuzz/examples/seeds.rs); config also <- networks/*.toml.
# Both fuzz workspaces build into one target directory, so that what they share
# (rapport-protocol, libFuzzer, the crypto and serde crates) is compiled once.
# Exits non-zero if any target crashes (the crashing input is left in
# <crate>/fuzz/artifacts/<target>/) or fails to build.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${FUZZ_SECONDS:-5}"
target_dir="$root/target/fuzz"
targets=(envelope payload log strict)
node_targets=(bundle config api)

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cd "$root/protocol"
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
done

python3 - "$root/spec/vectors" "fuzz/corpus" <<'PY'
import hashlib, json, pathlib, struct, sys

vectors, corpus = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
seeds = {"envelope": set(), "payload": set(), "log": set(), "strict": set()}
# The strict target's built inputs: mode byte, key seed (32), pick, message.
key_seed = hashlib.sha256(b"rapport strict fuzz seed").digest()
for mode in range(1, 256):
    for pick in (0, 1, 5):
        seeds["strict"].add(bytes([mode]) + key_seed + bytes([pick]) + b"an offer")

def unhex(v):
    try:
        return bytes.fromhex(v) if isinstance(v, str) else None
    except ValueError:
        return None

def walk(node):
    if isinstance(node, dict):
        cose, payload = unhex(node.get("cose_hex")), unhex(node.get("payload_hex"))
        if cose is not None:
            seeds["envelope"].add(cose)
            seeds["log"].add(struct.pack(">I", len(cose)) + cose)
        if payload is not None:
            seeds["payload"].add(payload)
        messages = node.get("messages")
        if isinstance(messages, list):
            envelopes = [unhex(m.get("cose_hex")) for m in messages if isinstance(m, dict)]
            seeds["log"].add(b"".join(struct.pack(">I", len(e)) + e for e in envelopes if e is not None))
        for v in node.values():
            walk(v)
    elif isinstance(node, list):
        for v in node:
            walk(v)

files = sorted(vectors.glob("**/*.json")) if vectors.is_dir() else []
for f in files:
    try:
        walk(json.loads(f.read_text()))
    except (OSError, ValueError) as e:
        print(f"fuzz.sh: skipping {f}: {e}", file=sys.stderr)
for target, found in seeds.items():
    for seed in found:
        (corpus / target / ("vector-" + hashlib.sha1(seed).hexdigest())).write_bytes(seed)
print(f"fuzz.sh: {len(files)} vector files; seeds: "
      + ", ".join(f"{t} {len(s)}" for t, s in seeds.items()), file=sys.stderr)
PY

failed=()
for t in "${targets[@]}"; do
    echo "fuzz.sh: running $t for ${seconds}s" >&2
    if ! cargo +nightly fuzz run --target-dir "$target_dir" "$t" "fuzz/corpus/$t" -- -max_total_time="$seconds"; then
        failed+=("protocol/$t")
    fi
done

cd "$root/node"
for t in "${node_targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    echo "fuzz.sh: $t: $(find "fuzz/seeds/$t" -type f | wc -l) seeds in node/fuzz/seeds/$t" >&2
done
for f in "$root"/networks/*.toml; do
    cp "$f" "fuzz/corpus/config/network-$(basename "$f")"
done

for t in "${node_targets[@]}"; do
    echo "fuzz.sh: running $t for ${seconds}s" >&2
    # New inputs go to the first directory, the corpus; the seeds stay as checked in.
    if ! cargo +nightly fuzz run --target-dir "$target_dir" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" \
        -- -max_total_time="$seconds"; then
        failed+=("node/$t")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz.sh: failed: ${failed[*]} (crashing inputs in <crate>/fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz.sh: all targets ran ${seconds}s without a crash" >&2
