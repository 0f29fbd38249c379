#!/usr/bin/env bash
# Quick side-by-side: 1 KiB GET direct to an nginx upstream vs through
# platform-proxy on a public host route (transport only) and on an
# authenticated one (session cookie opened, revocation checked, route
# authorized, identity headers set on every request), wrk -t1 -c64,
# alternating runs, medians. Load generator pinned to core 0, upstream and
# proxy to core 1. bench/run.sh adds the peers (nginx, haproxy, CHP).
# Usage: bench/quick.sh [runs] [seconds]   (needs nginx, wrk; release build)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
runs=${1:-3}
secs=${2:-10}
base=${BENCH_PORT_BASE:-18080}
px_port=$base; up_port=$((base + 1))
bench_init
bench_build proxy
bench_port_free "$px_port" "$up_port"

bench_start_upstream "$up_port"
bench_start_pp "$px_port" quick
pp_route_pair "127.0.0.1:$up_port"
bench_check auth "http://127.0.0.1:$px_port/1k.txt" s.apps.bench "$cookie"
echo "authenticated route with cookie: 200"
rss_idle=$(rss_kib "$px_pid")

declare -a d_rps d_p99 p_rps p_p99 a_rps a_p99
for i in $(seq "$runs"); do
  bench_wrk direct "$secs" "http://127.0.0.1:$up_port/1k.txt" "127.0.0.1:$up_port"; d_rps+=("$wrk_rps"); d_p99+=("$wrk_p99")
  bench_wrk public "$secs" "http://127.0.0.1:$px_port/1k.txt" b.apps.bench; p_rps+=("$wrk_rps"); p_p99+=("$wrk_p99")
  bench_wrk auth "$secs" "http://127.0.0.1:$px_port/1k.txt" s.apps.bench "$cookie"; a_rps+=("$wrk_rps"); a_p99+=("$wrk_p99")
  echo "run $i: direct ${d_rps[-1]} req/s p99 ${d_p99[-1]} ms | public ${p_rps[-1]} req/s p99 ${p_p99[-1]} ms | authenticated ${a_rps[-1]} req/s p99 ${a_p99[-1]} ms"
done
rss_after=$(rss_kib "$px_pid")
md=$(median "${d_rps[@]}"); mp=$(median "${p_rps[@]}"); ma=$(median "${a_rps[@]}")
echo
echo "median direct:        $md req/s, p99 $(median "${d_p99[@]}") ms"
echo "median public route:  $mp req/s, p99 $(median "${p_p99[@]}") ms"
echo "median authenticated: $ma req/s, p99 $(median "${a_p99[@]}") ms"
awk -v a="$mp" -v b="$md" 'BEGIN{printf "public/direct: %.2f\n", a/b}'
awk -v a="$ma" -v b="$mp" 'BEGIN{printf "authenticated/public: %.2f\n", a/b}'
echo "proxy RSS idle: ${rss_idle} KiB, after load: ${rss_after} KiB"
