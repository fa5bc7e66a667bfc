#!/usr/bin/env bash
# Benchmark: `feedloom serve` against nginx serving the same ~500 KB Atom file, side by side in
# one run, full 200s and conditional 304s (If-None-Match). Prints requests/s and the ratio.
# Needs: wrk, nginx, curl, python3 (Debian: apt-get install wrk nginx curl python3), and a release
# build (`cargo build --release`). Not part of CI.
#
#   bench/serve.sh                 # 3 rounds x 10 s per server and case, 2 threads, 64 connections
#   DURATION=30s CONNECTIONS=128 ROUNDS=5 bench/serve.sh
# The servers take turns (feedloom, nginx, feedloom, ...) and the best round of each counts, so
# load from other processes on a shared machine skews both alike.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
FL_PORT=${FL_PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18081}
BIN=${BIN:-target/release/feedloom}
[ -x "$BIN" ] || cargo build --release
for t in wrk nginx curl python3; do command -v "$t" >/dev/null || { echo "bench: $t missing" >&2; exit 2; }; done

work=$(mktemp -d)
chmod 755 "$work"   # nginx workers run as nobody when started by root
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# A source with 400 items; the output keeps 250 of them: all.atom is about 500 KB.
python3 - "$work/source.atom" <<'PY'
import sys
items = []
for i in range(400):
    body = " ".join(f"Sentence {j} of story {i} says something about the budget, the weather and the markets." for j in range(6))
    items.append(f"""<entry><id>urn:bench:{i}</id><title>Story number {i} about the news of the day</title>
<link href="https://example.org/news/{i}"/><updated>2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z</updated>
<author><name>Reporter {i % 17}</name></author>
<content type="html">&lt;p&gt;{body}&lt;/p&gt;&lt;p&gt;{body}&lt;/p&gt;</content></entry>""")
open(sys.argv[1], "w").write(f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Bench source</title><id>urn:bench</id>
<updated>2026-11-28T00:00:00Z</updated>{''.join(items)}</feed>
""")
PY
cat > "$work/config.toml" <<CONF
[settings]
listen = "127.0.0.1:$FL_PORT"
base_url = "http://127.0.0.1:$FL_PORT/"
default_interval = "30m"
max_items_per_source = 400
[[source]]
name = "bench"
url = "source.atom"
[[feed]]
name = "all"
title = "All"
limit = 250
formats = ["atom"]
CONF

"$BIN" serve --config "$work/config.toml" -q 2>"$work/feedloom.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$FL_PORT/all.atom" -o /dev/null && break; sleep 0.1; done
size=$(stat -c %s "$work/public/all.atom")

mkdir -p "$work/nginx/logs"
cat > "$work/nginx/nginx.conf" <<NGX
worker_processes auto;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    types { application/atom+xml atom; }
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    client_body_temp_path $work/nginx/tmp; proxy_temp_path $work/nginx/tmp;
    fastcgi_temp_path $work/nginx/tmp; uwsgi_temp_path $work/nginx/tmp; scgi_temp_path $work/nginx/tmp;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $work/public;
    }
}
NGX
mkdir -p "$work/nginx/tmp"
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$NGINX_PORT/all.atom" -o /dev/null && break; sleep 0.1; done

etag() { curl -sI "$1" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}'; }
fl_etag=$(etag "http://127.0.0.1:$FL_PORT/all.atom")
ng_etag=$(etag "http://127.0.0.1:$NGINX_PORT/all.atom")
cmp <(curl -s "http://127.0.0.1:$FL_PORT/all.atom") <(curl -s "http://127.0.0.1:$NGINX_PORT/all.atom")
for e in "$fl_etag" "$ng_etag"; do [ -n "$e" ] || { echo "bench: no ETag" >&2; exit 1; }; done
for p in $FL_PORT $NGINX_PORT; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $([ $p = $FL_PORT ] && echo "$fl_etag" || echo "$ng_etag")" "http://127.0.0.1:$p/all.atom")
    [ "$code" = 304 ] || { echo "bench: port $p answered $code to If-None-Match" >&2; exit 1; }
done

rps() { wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$@" | awk '/^Requests\/sec/{print $2}'; }
best() { python3 -c "import sys; print(max(float(x) for x in sys.argv[1:]))" "$@"; }
echo "file: all.atom, $size bytes; wrk -t$THREADS -c$CONNECTIONS -d$DURATION, best of $ROUNDS interleaved rounds; $(nproc) cores; $(date -u +%FT%TZ)"
printf '%-6s %14s %14s %8s\n' case feedloom nginx ratio
for case in 200 304; do
    if [ $case = 200 ]; then fl_h=(); ng_h=(); else fl_h=(-H "If-None-Match: $fl_etag"); ng_h=(-H "If-None-Match: $ng_etag"); fi
    fls=(); ngs=()
    for _ in $(seq "$ROUNDS"); do
        fls+=("$(rps "${fl_h[@]}" "http://127.0.0.1:$FL_PORT/all.atom")")
        ngs+=("$(rps "${ng_h[@]}" "http://127.0.0.1:$NGINX_PORT/all.atom")")
    done
    echo "  $case rounds: feedloom ${fls[*]}; nginx ${ngs[*]}" >&2
    fl=$(best "${fls[@]}"); ng=$(best "${ngs[@]}")
    printf '%-6s %14s %14s %8s\n' "$case" "$fl" "$ng" "$(python3 -c "print(f'{$fl/$ng:.2f}x')")"
done
