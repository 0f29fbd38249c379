#!/usr/bin/env bash
# A/B of two platform-proxy binaries on the same upstream: both run side by
# side (pinned to core 1 with the upstream), wrk alternates between them
# (each run's first side alternating too); prints the median req/s of each,
# their ratio, the median of each run's own B/A (a pair measured moments
# apart, steadier when the machine's load drifts), each one's core time per
# request (user and system, from /proc; steadier than req/s on a shared
# machine, where neighbours steal the core) and each one's RSS after load.
# Usage: bench/ab.sh BIN_A BIN_B [runs] [secs] [public|auth] [h1|h2]
# (h2: h2load, h2c prior knowledge, 64 clients of 10 streams each)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bin_a=$1; bin_b=$2; runs=${3:-5}; secs=${4:-8}; which=${5:-public}; proto=${6:-h1}
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
declare -a ra rb ua ub sa sb
for i in $(seq "$runs"); do
  # Alternating who goes first: the machine's load drifts within a run
  # pair too, and a fixed order would hand the drift to one side.
  sides="a b"; ((i % 2)) || sides="b a"
  for side in $sides; do
    port=$pa; [ $side = b ] && port=$pb
    c=""; [ "$which" = auth ] && c=${cookies[$side]}
    read -r u0 s0 < <(cpu_ticks "${pids[$side]}")
    if [ "$proto" = h2 ]; then
      bench_h2load "$side" "$secs" "http://127.0.0.1:$port/1k.txt" ":authority: $host" ${c:+"cookie: $c"}
      wrk_rps=$h2_rps; wrk_requests=$h2_requests
    else
      bench_wrk "$side" "$secs" "http://127.0.0.1:$port/1k.txt" "$host" "$c"
    fi
    read -r u1 s1 < <(cpu_ticks "${pids[$side]}")
    # Core time per request, in microseconds.
    u=$(per_request_us "$u0" "$u1" "$wrk_requests")
    s=$(per_request_us "$s0" "$s1" "$wrk_requests")
    if [ $side = a ]; then ra+=("$wrk_rps"); ua+=("$u"); sa+=("$s"); else rb+=("$wrk_rps"); ub+=("$u"); sb+=("$s"); fi
  done
  echo "run $i: A ${ra[-1]} (user ${ua[-1]} µs, system ${sa[-1]} µs a request) | B ${rb[-1]} (user ${ub[-1]}, system ${sb[-1]})"
done
ma=$(median "${ra[@]}"); mb=$(median "${rb[@]}")
echo "median A $ma req/s, B $mb req/s"
awk -v a="$ma" -v b="$mb" 'BEGIN{printf "B/A: %.3f\n", b/a}'
pairs=()
for i in "${!ra[@]}"; do pairs+=("$(awk -v a="${ra[$i]}" -v b="${rb[$i]}" 'BEGIN{printf "%.4f", b/a}')"); done
echo "median of the runs' own B/A: $(median "${pairs[@]}")"
mua=$(median "${ua[@]}"); mub=$(median "${ub[@]}"); msa=$(median "${sa[@]}"); msb=$(median "${sb[@]}")
echo "core time a request, medians: A user $mua µs + system $msa µs | B user $mub µs + system $msb µs"
awk -v a="$mua" -v b="$mub" 'BEGIN{printf "user time B/A: %.3f\n", b/a}'
echo "RSS after load: A $(rss_kib "${pids[a]}") KiB ($(rss_split "${pids[a]}")), B $(rss_kib "${pids[b]}") KiB ($(rss_split "${pids[b]}"))"
