#!/usr/bin/env bash
# Instructions per proxied request: runs the line-table build of the proxy
# (target/prof) under valgrind's callgrind, warms it up, zeroes the
# counters, drives a fixed wrk run through the public or the authenticated
# route, dumps, and prints the total per request and the hottest functions
# (inclusive). Instruction counts repeat on a shared machine where wall
# clock does not; compare builds with it.
#
# Usage: bench/callgrind.sh [public|auth] [seconds] [rows]
#   (needs valgrind, nginx, wrk; the profiling build:
#    CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
#    cargo build --release --target-dir target/prof -p platform-proxy)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
which=${1:-public}
secs=${2:-10}
rows=${3:-40}
prof_bin=$BENCH_ROOT/target/prof/release/platform-proxy
[ -x "$prof_bin" ] || die "build the profiling binary first (see the header)"
command -v valgrind >/dev/null || die "valgrind is needed"
base=${BENCH_PORT_BASE:-18080}
px_port=$base; up_port=$((base + 1))
bench_init
bench_port_free "$px_port" "$up_port"
bench_start_upstream "$up_port"
cat >"$work/pp-cg.toml" <<TOML
api_host = "api.bench"
apps_domain = "apps.bench"
[server]
listen = ["127.0.0.1:$px_port"]
shutdown_grace_secs = 1
[store]
url = "sqlite://$work/pp-cg.db"
[api]
bootstrap_token = "$BENCH_TOKEN"
[log]
level = "warn"
TOML
out=$work/callgrind.out
bench_spawn "$work/pp-cg.log" valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$prof_bin" serve --config "$work/pp-cg.toml"
vg_pid=$spawned
for _ in $(seq 300); do
    curl -s -o /dev/null -H 'Host: api.bench' "http://127.0.0.1:$px_port/healthz" && break
    kill -0 "$vg_pid" 2>/dev/null || { cat "$work/pp-cg.log" >&2; die "the proxy died under valgrind"; }
    sleep 0.2
done
pp_route_pair "127.0.0.1:$up_port"
bench_target "$which"
bench_check "$which" "http://127.0.0.1:$px_port/1k.txt" "$host" "$([ "$which" = auth ] && echo "$cookie")"
callgrind_control -z "$vg_pid" >/dev/null 2>&1
run=$(bench_load wrk -t1 -c8 -d"${secs}s" -H "Host: $host" "${hdr[@]}" "http://127.0.0.1:$px_port/1k.txt")
callgrind_control -d "$vg_pid" >/dev/null 2>&1
grep -q "Non-2xx" <<<"$run" && die "non-2xx answers during the run: $run"
requests=$(awk '/requests in/{print $1}' <<<"$run")
dump=$(ls -t "$out".* 2>/dev/null | head -1)
[ -n "$dump" ] || die "callgrind wrote no dump"
total=$(callgrind_annotate --auto=no "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
echo "$which route: $requests requests, $total instructions, $((total / requests)) per request"
callgrind_annotate --inclusive=yes --auto=no --threshold=100 "$dump" 2>/dev/null \
    | grep -E '^ *[0-9,]+ \(' | grep -v 'PROGRAM TOTALS' \
    | grep -vE 'clone\.S|pthread_create|thread_start|tokio-[0-9.]+/src/runtime' \
    | sed -E 's|/root/\.cargo/registry/src/[^/]+/||; s|/rustc/[0-9a-f]+/||; s| \[[^]]*\]$||' \
    | head -n "$rows" | cut -c1-180
