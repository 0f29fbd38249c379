#!/usr/bin/env bash
# Instructions per proxied request: runs the line-table build of the proxy
# (target/prof) under valgrind's callgrind, warms it up, zeroes the
# counters, drives a fixed wrk (or h2load) run through the public or the authenticated
# route, dumps, and prints the total per request and the hottest functions
# (inclusive). Instruction counts repeat on a shared machine where wall
# clock does not; compare builds with it. `ws` instead relays WebSocket
# echoes (100 connections through the authenticated route, a 32-byte
# message every 10 ms each) and prints instructions per round trip (two
# frames relayed).
#
# Usage: bench/callgrind.sh [public|auth|ws] [seconds] [rows] [http|h2]
#   (h2: h2load, h2c prior knowledge, 8 clients of 10 streams each, in
#    place of wrk; warmed up over HTTP/2 first; not for ws)
#   (needs valgrind, nginx, wrk, the bench tools; the profiling build:
#    CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
#    cargo build --release --target-dir target/prof -p platform-proxy;
#    PP_BIN=path counts another build, without line tables;
#    BENCH_BROWSER=1 sends a browser's fields too, see bench/lib.sh;
#    CG_CACHE=1 simulates the caches too (32 KiB L1s, 1 MiB last level,
#    this machine's L2) with wrk on BENCH_CONNS connections rather than 8,
#    and prints misses a request and the functions with the most L1
#    instruction misses)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
which=${1:-public}
secs=${2:-10}
rows=${3:-40}
proto=${4:-http}
[[ "$proto" =~ ^(http|h2)$ ]] || die "http or h2, not '$proto'"
[ "$which" != ws ] || [ "$proto" = http ] || die "ws relays WebSocket echoes; h2 is for public or auth"
prof_bin=${PP_BIN:-$BENCH_ROOT/target/prof/release/platform-proxy}
[ -x "$prof_bin" ] || die "build the profiling binary first (see the header)"
[[ "$which" =~ ^(public|auth|ws)$ ]] || die "public, auth or ws, not '$which'"
command -v valgrind >/dev/null || die "valgrind is needed"
base=${BENCH_PORT_BASE:-18080}
px_port=$base; up_port=$((base + 1)); ws_port=$((base + 9))
bench_init
bench_port_free "$px_port" "$up_port" "$ws_port"
bench_start_upstream "$up_port"
upstream=127.0.0.1:$up_port
if [ "$which" = ws ]; then
    bench_build tools
    bench_spawn "$work/wsecho.log" "$BENCH_TOOLS/wsecho" --listen "127.0.0.1:$ws_port"
    bench_wait_tcp "$ws_port" "$spawned"
    upstream=127.0.0.1:$ws_port
fi
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
cache=${CG_CACHE:-0}
cg_args=()
wrk_conns=8
if [ "$cache" = 1 ]; then
    cg_args=(--cache-sim=yes --D1=32768,8,64 --I1=32768,8,64 --LL=1048576,16,64)
    wrk_conns=$BENCH_CONNS
fi
bench_spawn "$work/pp-cg.log" valgrind --tool=callgrind --callgrind-out-file="$out" "${cg_args[@]}" \
    "$prof_bin" serve --config "$work/pp-cg.toml"
vg_pid=$spawned
for _ in $(seq 300); do
    curl -s -o /dev/null -H 'Host: api.bench' "http://127.0.0.1:$px_port/healthz" && break
    kill -0 "$vg_pid" 2>/dev/null || { cat "$work/pp-cg.log" >&2; die "the proxy died under valgrind"; }
    sleep 0.2
done
pp_route_pair "$upstream"
if [ "$which" = ws ]; then
    ws_args=(--connect "127.0.0.1:$px_port" --url "ws://s.apps.bench:$px_port/ws"
        --header "Cookie: $cookie" --header "Origin: http://s.apps.bench:$px_port"
        --connections 100 --active 100 --interval-ms 10 --reply-timeout-secs 30)
    # Warm-up (handshakes included), then only the echoes are counted.
    bench_load "$BENCH_TOOLS/wsload" "${ws_args[@]}" --duration-secs 2 >/dev/null 2>"$work/wsload.log" \
        || { cat "$work/wsload.log" >&2; die "wsload failed"; }
    bench_load "$BENCH_TOOLS/wsload" "${ws_args[@]}" --duration-secs "$secs" --hold-secs 1 >"$work/ws.json" 2>"$work/wsload.log" &
    ws_pid=$!
    BENCH_PIDS+=("$ws_pid")
    # Counted from the idle hold after the handshakes: echoes only.
    for _ in $(seq 600); do grep -q holding "$work/wsload.log" && break; sleep 0.1; done
    grep -q holding "$work/wsload.log" || die "wsload did not connect: $(cat "$work/wsload.log")"
    callgrind_control -z "$vg_pid" >/dev/null 2>&1
    wait "$ws_pid" || die "wsload failed: $(cat "$work/wsload.log")"
    bench_forget "$ws_pid"
    callgrind_control -d "$vg_pid" >/dev/null 2>&1
    [ "$(json_num failed <"$work/ws.json")" = 0 ] && [ "$(json_num timeouts <"$work/ws.json")" = 0 ] \
        || die "not every echo came back: $(cat "$work/ws.json")"
    requests=$(json_num messages <"$work/ws.json")
else
    bench_target "$which"
    bench_check "$which" "http://127.0.0.1:$px_port/1k.txt" "$host" "$([ "$which" = auth ] && echo "$cookie")"
    callgrind_control -z "$vg_pid" >/dev/null 2>&1
    if [ "$proto" = h2 ]; then
        c=""; [ "$which" = auth ] && c=$cookie
        # A second over HTTP/2 before counting: its one-time costs (the
        # connection's tables, first streams) are not the per-request ones.
        H2LOAD_CLIENTS=8 bench_h2load warm-up 1 "http://127.0.0.1:$px_port/1k.txt" \
            ":authority: $host" ${c:+"cookie: $c"}
        callgrind_control -z "$vg_pid" >/dev/null 2>&1
        H2LOAD_CLIENTS=8 bench_h2load callgrind "$secs" "http://127.0.0.1:$px_port/1k.txt" \
            ":authority: $host" ${c:+"cookie: $c"}
        callgrind_control -d "$vg_pid" >/dev/null 2>&1
        requests=$h2_requests
    else
        run=$(bench_load wrk -t1 -c"$wrk_conns" -d"${secs}s" -H "Host: $host" "${hdr[@]}" "${BENCH_FIELDS[@]}" \
            "http://127.0.0.1:$px_port/1k.txt")
        callgrind_control -d "$vg_pid" >/dev/null 2>&1
        grep -q "Non-2xx" <<<"$run" && die "non-2xx answers during the run: $run"
        requests=$(awk '/requests in/{print $1}' <<<"$run")
    fi
fi
dump=$(ls -t "$out".* 2>/dev/null | head -1)
[ -n "$dump" ] || die "callgrind wrote no dump"
total=$(callgrind_annotate --auto=no "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
unit=request; [ "$which" = ws ] && unit="echo round trip"
over=""; [ "$which" = ws ] || over=" over $([ "$proto" = h2 ] && echo HTTP/2 || echo HTTP/1.1)"
echo "$which route$over: $requests ${unit}s, $total instructions, $((total / requests)) per $unit"
callgrind_annotate --inclusive=yes --auto=no --show=Ir --threshold=100 "$dump" 2>/dev/null \
    | grep -E '^ *[0-9,]+ \(' | grep -v 'PROGRAM TOTALS' \
    | grep -vE 'clone\.S|pthread_create|thread_start|tokio-[0-9.]+/src/runtime' \
    | sed -E 's|/root/\.cargo/registry/src/[^/]+/||; s|/rustc/[0-9a-f]+/||; s| \[[^]]*\]$||' \
    | head -n "$rows" | cut -c1-180 || true # head closes the pipe early
if [ "$cache" = 1 ]; then
    # Misses a request, then the functions by their own L1 instruction
    # misses: where the request's code footprint is.
    callgrind_annotate --auto=no "$dump" 2>/dev/null | awk -v n="$requests" '
        /^Events shown:/ { for (i = 3; i <= NF; i++) name[i - 2] = $i; next }
        /PROGRAM TOTALS/ {
            k = 0
            for (i = 1; i <= NF; i++) if ($i ~ /^[0-9,]+$/) { v = $i; gsub(",", "", v); printf "%s %.1f  ", name[++k], v / n }
            print "(a request)"; exit
        }'
    # Self cost; the runtime's loop and main, into which every task's poll
    # is inlined, are left out (they read 95% and more).
    callgrind_annotate --auto=no --inclusive=no --show=I1mr,Ir --sort=I1mr --threshold=100 "$dump" 2>/dev/null \
        | grep -E '^ *[0-9,]+ \(' | grep -v 'PROGRAM TOTALS' | awk '$2 !~ /^\((9[5-9]\.|100)/' \
        | sed -E 's|/root/\.cargo/registry/src/[^/]+/||; s|/rustc/[0-9a-f]+/||; s| \[[^]]*\]$||' \
        | head -n "$rows" | cut -c1-200 || true
fi
