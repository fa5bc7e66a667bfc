#!/usr/bin/env bash
# Cross-check of bench/run.sh with the team's own tools in ../shared/bench: its generator, its
# nginx script, its floor tool (`floor fetch`, `floor scan`) and its Python aggregator
# (peers/py_aggregator.py), run side by side with feedloom, cold / warm / update, on the same
# machine. The feedloom config is the generated OPML through `feedloom sources import`, with the
# settings bench/run.sh uses. Prints one line per command and a table of medians. Not part of CI.
# Needs: ../shared/bench, nginx, python3 with feedparser, requests and feedgen, GNU time, cargo
# (the floor tool is built under BENCH_WORK) and a release build of feedloom.
#
#   bench/crosscheck.sh 1000                  # 3 rounds, the Python aggregator in the first only
# Knobs: ROUNDS (3), PY_ROUNDS (1), PORT (18088), UPDATE (0.1), BIN (target/release/feedloom),
# BENCH_WORK (/tmp/feedloom-crosscheck; nginx's workers must be able to read it).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
ROUNDS=${ROUNDS:-3}
PY_ROUNDS=${PY_ROUNDS:-1}
PORT=${PORT:-18088}
UPDATE=${UPDATE:-0.1}
BIN=${BIN:-target/release/feedloom}
SHARED=$(realpath ../shared/bench)
export BENCH_WORK=${BENCH_WORK:-/tmp/feedloom-crosscheck}
for t in nginx python3 /usr/bin/time cargo; do command -v "$t" >/dev/null || { echo "crosscheck: $t missing" >&2; exit 2; }; done
python3 -c 'import feedparser, requests, feedgen' 2>/dev/null \
    || { echo "crosscheck: pip install feedparser requests feedgen" >&2; exit 2; }
[ -x "$BIN" ] || cargo build --release --bin feedloom
BIN=$(realpath "$BIN")

SRC="$BENCH_WORK/sources-$N"
RUN="$BENCH_WORK/run-$N"
mkdir -p "$BENCH_WORK"
chmod 755 "$BENCH_WORK"   # nginx workers run as nobody when started by root
CARGO_TARGET_DIR="$BENCH_WORK/floor-target" cargo build -q --release --manifest-path "$SHARED/floor/Cargo.toml"
FLOOR="$BENCH_WORK/floor-target/release/floor"
gen() { python3 "$SHARED/gen_sources.py" --n "$N" --out "$SRC" --base-url "http://127.0.0.1:$PORT/" "$@" >&2; chmod -R a+rX "$SRC"; }
gen
cleanup() { bash "$SHARED/serve_sources.sh" stop crosscheck >/dev/null 2>&1 || true; }
trap cleanup EXIT
bash "$SHARED/serve_sources.sh" start "$SRC" "$PORT" crosscheck >&2
for _ in $(seq 100); do python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1])" "http://127.0.0.1:$PORT/urls.txt" 2>/dev/null && break; sleep 0.1; done

rm -rf "$RUN"
mkdir -p "$RUN"
cat > "$RUN/base.toml" <<'TOML'
[settings]
database = "feedloom.db"
output_dir = "public"
base_url = "http://127.0.0.1:8080/"
allow_private_networks = true
concurrency = 32
per_host_concurrency = 32
languages = ["en", "ru", "uk", "de", "fr", "es"]

[[feed]]
name = "all"
title = "All sources"
limit = 500
TOML
"$BIN" sources import -q --config "$RUN/base.toml" "$SRC/feeds.opml" > "$RUN/import.log" 2>&1

results="$RUN/results.tsv"
printf 'round\tphase\ttool\twall\tcpu\trss_kb\n' > "$results"
# measure ROUND PHASE TOOL CMD...: runs CMD under GNU time, appends a row, prints a line.
measure() {
    local round=$1 phase=$2 tool=$3; shift 3
    if ! /usr/bin/time -f '%e %U %S %M' -o "$RUN/time" "$@" > "$RUN/out" 2> "$RUN/err"; then
        echo "crosscheck: $tool $phase failed:" >&2; tail -5 "$RUN/err" >&2; exit 1
    fi
    read -r wall user sys rss < <(tail -1 "$RUN/time")
    local cpu; cpu=$(python3 -c "print(f'{$user+$sys:.2f}')")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$phase" "$tool" "$wall" "$cpu" "$rss" >> "$results"
    printf '  round %s %-6s %-11s wall %6ss cpu %6ss rss %5s MB\n' "$round" "$phase" "$tool" "$wall" "$cpu" "$((rss / 1024))" >&2
}

echo "crosscheck: N=$N, $ROUNDS rounds, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)" >&2
for round in $(seq "$ROUNDS"); do
    [ "$round" = 1 ] || gen   # the generated state again: every source new to a fresh store
    rm -rf "$RUN/fl" "$RUN/py" "$SRC/urls.txt.etags"
    mkdir -p "$RUN/fl" "$RUN/py"
    cp "$RUN/base.toml" "$RUN/fl/feedloom.toml"
    for phase in cold warm update; do
        if [ "$phase" = update ]; then gen --update "$UPDATE"; fi
        if [ "$phase" = cold ]; then
            measure "$round" "$phase" floor-fetch "$FLOOR" fetch "$SRC/urls.txt" 32 -
            measure "$round" "$phase" floor-scan "$FLOOR" scan "$SRC"/s*.xml
        else
            measure "$round" "$phase" floor-fetch "$FLOOR" fetch "$SRC/urls.txt" 32 "$SRC/urls.txt.etags"
        fi
        measure "$round" "$phase" feedloom "$BIN" refresh --force -q --config "$RUN/fl/feedloom.toml"
        if [ "$round" -le "$PY_ROUNDS" ]; then
            measure "$round" "$phase" python python3 "$SHARED/peers/py_aggregator.py" \
                --urls "$SRC/urls.txt" --state "$RUN/py" --out "$RUN/py/merged.atom"
        fi
    done
done
echo "crosscheck: done, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)" >&2
python3 - "$results" "$N" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
print(f"N = {int(sys.argv[2]):,} sources from ../shared/bench/gen_sources.py; medians over the rounds each ran\n")
print("| phase | tool | wall s | CPU s | peak RSS MB | rounds |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
med = {}
for phase in ("cold", "warm", "update"):
    for tool in ("floor-fetch", "floor-scan", "feedloom", "python"):
        rs = [r for r in rows if r["phase"] == phase and r["tool"] == tool]
        if not rs:
            continue
        m = {k: statistics.median(float(r[k]) for r in rs) for k in ("wall", "cpu", "rss_kb")}
        med[phase, tool] = m
        print(f"| {phase} | {tool} | {m['wall']:.2f} | {m['cpu']:.2f} | {m['rss_kb'] / 1024:.0f} | {len(rs)} |")
print("\n| phase | feedloom / (floor fetch + scan) wall | python / feedloom wall |")
print("| --- | ---: | ---: |")
for phase in ("cold", "warm", "update"):
    fl = med.get((phase, "feedloom"))
    if not fl:
        continue
    floor = med.get((phase, "floor-fetch"), {"wall": 0})["wall"] + med.get((phase, "floor-scan"), {"wall": 0})["wall"]
    py = med.get((phase, "python"))
    r1 = f"{fl['wall'] / floor:.1f}x" if floor > 0 else "-"
    r2 = f"{py['wall'] / fl['wall']:.1f}x" if py and fl["wall"] > 0 else "-"
    print(f"| {phase} | {r1} | {r2} |")
PY
