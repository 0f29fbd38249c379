#!/usr/bin/env bash
# A/B of two platform-proxy binaries on the same upstream: both run side by
# side (pinned to core 1 with the upstream), wrk alternates between them;
# prints the median req/s of each, their ratio and each one's RSS after load.
# Usage: bench/ab.sh BIN_A BIN_B [runs] [secs] [public|auth]
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bin_a=$1; bin_b=$2; runs=${3:-5}; secs=${4:-8}; which=${5:-public}
base=${BENCH_PORT_BASE:-18080}
up_port=$((base + 1)); pa=$((base + 2)); pb=$((base + 3))
bench_init
bench_port_free "$up_port" "$pa" "$pb"
bench_start_upstream "$up_port"
declare -A cookies pids
for side in a b; do
  if [ $side = a ]; then BENCH_BIN=$bin_a; port=$pa; else BENCH_BIN=$bin_b; port=$pb; fi
  bench_start_pp "$port" "ab-$side"
  pids[$side]=$px_pid
  pp_route_pair "127.0.0.1:$up_port"
  cookies[$side]=$cookie
done
host=b.apps.bench; [ "$which" = auth ] && host=s.apps.bench
declare -a ra rb
for i in $(seq "$runs"); do
  for side in a b; do
    port=$pa; [ $side = b ] && port=$pb
    c=""; [ "$which" = auth ] && c=${cookies[$side]}
    bench_wrk "$side" "$secs" "http://127.0.0.1:$port/1k.txt" "$host" "$c"
    if [ $side = a ]; then ra+=("$wrk_rps"); else rb+=("$wrk_rps"); fi
  done
  echo "run $i: A ${ra[-1]} | B ${rb[-1]}"
done
ma=$(median "${ra[@]}"); mb=$(median "${rb[@]}")
echo "median A $ma req/s, B $mb req/s"
awk -v a="$ma" -v b="$mb" 'BEGIN{printf "B/A: %.3f\n", b/a}'
echo "RSS after load: A $(rss_kib "${pids[a]}") KiB, B $(rss_kib "${pids[b]}") KiB"
