#!/usr/bin/env bash
# Runs each fuzz target for the given number of seconds (default 600) with the nightly toolchain
# and cargo-fuzz; crashes land in fuzz/artifacts/<target>/ and become fixtures in tests/.
#   fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"; shift || true
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(decode_parse normalize)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p fuzz/corpus/decode_parse fuzz/corpus/normalize
cp -n feeds/* tests/fixtures/parse/formats/*.xml fuzz/corpus/decode_parse/ 2>/dev/null || true
for t in "${targets[@]}"; do
  echo "== $t for ${secs}s"
  cargo +nightly fuzz run "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -max_len=262144 -timeout=10
done
