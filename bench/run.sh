#!/usr/bin/env bash
# Benchmark: `feedloom refresh --force` over N generated sources served by nginx on 127.0.0.1,
# side by side in one run with the floor (examples/floor.rs: bare concurrent fetch + quick-xml
# scan) and a Python feedparser aggregator (bench/py_aggregator.py). Three phases per round:
#   cold    empty database / no stored ETags: every source answers 200, every item is new
#   warm    the same again at once: every source answers 304
#   update  after bench/gen_sources.py --update 0.1: 10% of sources answer 200 with new items
# Each command runs under /usr/bin/time (wall, user+sys CPU, peak RSS); nginx's access log of
# that command gives requests, 200s, 304s and bytes. Prints a markdown table of the medians
# and the ratios (feedloom / floor, python / feedloom). Not part of CI.
# Needs: nginx, python3 with feedparser and requests, GNU time (Debian: apt-get install nginx
# time python3-pip; pip install feedparser requests) and a release build.
#
#   bench/run.sh 1000                    # 3 rounds
#   ROUNDS=1 PY=0 bench/run.sh 10000     # one round, without the Python aggregator
# Knobs: ROUNDS (3), PY (1: run the Python aggregator), PORT (18090), UPDATE (0.1), SEED (8),
# BENCH_WORK (/tmp/feedloom-bench: generated sources are kept there and reused; it must be readable
# by nginx's workers, which run as nobody when started by root, so not under /root).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
ROUNDS=${ROUNDS:-3}
PY=${PY:-1}
PORT=${PORT:-18090}
UPDATE=${UPDATE:-0.1}
SEED=${SEED:-8}
WORK=${BENCH_WORK:-/tmp/feedloom-bench}
BIN=${BIN:-target/release/feedloom}
FLOOR=${FLOOR:-target/release/examples/floor}
for t in nginx python3 /usr/bin/time; do command -v "$t" >/dev/null || { echo "bench: $t missing" >&2; exit 2; }; done
if [ "$PY" = 1 ]; then
    python3 -c 'import feedparser, requests' 2>/dev/null || { echo "bench: pip install feedparser requests (or PY=0)" >&2; exit 2; }
fi
[ -x "$BIN" ] && [ -x "$FLOOR" ] || cargo build --release --bin feedloom --example floor
[ -x "$BIN" ] || { echo "bench: $BIN is not built (for release-lto: cargo build --profile release-lto)" >&2; exit 1; }

SRC="$WORK/sources-$N-$SEED"
RUN="$WORK/run-$N"
BASE="http://127.0.0.1:$PORT/"
mkdir -p "$WORK"
chmod 755 "$WORK"   # nginx workers run as nobody when started by root
if [ -f "$SRC/state.json" ] && grep -q "\"base_url\": \"$BASE\"" "$SRC/state.json"; then
    python3 bench/gen_sources.py --out "$SRC" --reset
else
    rm -rf "$SRC"
    python3 bench/gen_sources.py --n "$N" --out "$SRC" --seed "$SEED" --base-url "$BASE"
fi
chmod -R a+rX "$SRC"
total_bytes=$(du -cb "$SRC"/feeds | tail -1 | cut -f1)

rm -rf "$RUN"
mkdir -p "$RUN/nginx/tmp" "$RUN/fl" "$RUN/py"
log="$RUN/nginx/access.log"
cat > "$RUN/nginx/nginx.conf" <<NGX
worker_processes auto;
daemon off;
pid $RUN/nginx/nginx.pid;
error_log $RUN/nginx/error.log warn;
events { worker_connections 4096; }
http {
    types { text/xml xml; application/atom+xml atom; application/rdf+xml rdf; text/plain txt; }
    log_format bench '\$status \$body_bytes_sent';
    access_log $log bench;
    sendfile on;
    tcp_nodelay on;
    etag on;
    keepalive_requests 100000;
    client_body_temp_path $RUN/nginx/tmp; proxy_temp_path $RUN/nginx/tmp;
    fastcgi_temp_path $RUN/nginx/tmp; uwsgi_temp_path $RUN/nginx/tmp; scgi_temp_path $RUN/nginx/tmp;
    server {
        listen 127.0.0.1:$PORT;
        root $SRC;
    }
}
NGX
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
nginx -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" &
pids+=($!)
first=$(head -1 "$SRC/urls.txt")
for _ in $(seq 100); do python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1])" "$first" 2>/dev/null && break; sleep 0.1; done

results="$RUN/results.tsv"
printf 'round\tphase\ttool\twall\tuser\tsys\trss_kb\trequests\ts200\ts304\tbytes\n' > "$results"
# measure ROUND PHASE TOOL CMD...: runs CMD under GNU time with a fresh access log, appends a row.
measure() {
    local round=$1 phase=$2 tool=$3; shift 3
    : > "$log"
    if ! /usr/bin/time -f '%e %U %S %M' -o "$RUN/time" "$@" > "$RUN/out" 2> "$RUN/err"; then
        echo "bench: $tool $phase failed:" >&2; tail -5 "$RUN/err" >&2; tail -3 "$RUN/out" >&2; exit 1
    fi
    sleep 0.2   # let nginx finish its log lines
    read -r wall user sys rss < <(tail -1 "$RUN/time")
    read -r reqs s200 s304 bytes < <(awk '{n++; if ($1==200) a++; if ($1==304) b++; s+=$2} END {print n+0, a+0, b+0, s+0}' "$log")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$phase" "$tool" "$wall" "$user" "$sys" "$rss" "$reqs" "$s200" "$s304" "$bytes" >> "$results"
    printf '  round %s %-6s %-8s wall %6ss cpu %6ss rss %6s MB  %s req (%s x 200, %s x 304) %s MB\n' "$round" "$phase" "$tool" "$wall" \
        "$(python3 -c "print(f'{$user+$sys:.2f}')")" "$((rss / 1024))" "$reqs" "$s200" "$s304" "$((bytes / 1000000))" >&2
}

echo "bench: N=$N, $(( total_bytes / 1000000 )) MB of sources, $ROUNDS rounds, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)" >&2
for round in $(seq "$ROUNDS"); do
    [ "$round" = 1 ] || python3 bench/gen_sources.py --out "$SRC" --reset >&2
    rm -rf "$RUN/fl" "$RUN/py" "$RUN/etags"
    mkdir -p "$RUN/fl" "$RUN/py"
    cp "$SRC/feedloom.toml" "$RUN/fl/feedloom.toml"
    fl=("$BIN" refresh --force -q --config "$RUN/fl/feedloom.toml")
    py=(python3 bench/py_aggregator.py --urls "$SRC/urls.txt" --db "$RUN/py/py.sqlite" --out "$RUN/py/merged.rss")
    floor=("$FLOOR" "$SRC/urls.txt" "$RUN/etags" 32)
    for phase in cold warm update; do
        if [ "$phase" = update ]; then python3 bench/gen_sources.py --out "$SRC" --update "$UPDATE" >&2; fi
        measure "$round" "$phase" floor "${floor[@]}"
        measure "$round" "$phase" feedloom "${fl[@]}"
        if [ "$PY" = 1 ]; then measure "$round" "$phase" python "${py[@]}"; fi
    done
done
echo "bench: done, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)" >&2
python3 bench/table.py "$results" "$N" "$total_bytes"
