#!/usr/bin/env bash
# What each proxy asks of the kernel a request: runs wrk (HTTP/1.1, 1 KiB
# GET, 64 connections) against nginx, HAProxy and both platform-proxy routes
# in turn, counts system calls, the times the process was switched out and
# the wakeups it made with `perf stat` on the proxy's process, and
# divides them, and its user and system time (/proc), by the requests done.
# Counts are steadier than rates on a shared machine: they tell whether a
# gap is more calls or dearer ones.
#
# Usage: bench/counts.sh [secs]   (needs perf, nginx, haproxy, wrk)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
secs=${1:-6}
command -v perf >/dev/null || die "perf is needed (Debian: linux-perf)"
base=${BENCH_PORT_BASE:-18080}
up=$((base + 1)); ngx=$((base + 2)); hap=$((base + 3)); px=$((base + 4))
bench_init
bench_build proxy
bench_port_free "$up" "$ngx" "$hap" "$px"
bench_start_upstream "$up"
bench_start_nginx_proxy "$ngx" "$up"
bench_start_haproxy "$hap" "$up"
bench_start_pp "$px" counts
pp_route_pair "127.0.0.1:$up"
events=raw_syscalls:sys_enter,syscalls:sys_enter_epoll_wait,sched:sched_wakeup,sched:sched_switch,page-faults

# The machine's TCP segments sent so far (/proc/net/snmp OutSegs): every
# process's, so a run's difference counts the client's, the upstream's and
# the proxy's together; only the proxy changes between peers.
tcp_out_segs() { awk '/^Tcp:/ { if (++seen == 2) print $12 }' /proc/net/snmp; }

# The times PID's threads were preempted so far: switched out while they
# could have run on (nonvoluntary), as against asleep with nothing to do.
preempted() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^nonvoluntary_ctxt_switches/{n+=$2} END{print n+0}'; }

# count NAME PID PORT HOST [COOKIE]
count() {
    local name=$1 pid=$2 port=$3 host=$4 ck=${5:-} out n u0 s0 u1 s1
    perf stat -e "$events" -p "$pid" -o "$work/counts-$name.txt" -- sleep "$secs" &
    local stat=$!
    read -r u0 s0 < <(cpu_ticks "$pid")
    g0=$(tcp_out_segs)
    p0=$(preempted "$pid")
    out=$(bench_load wrk -t1 -c"$BENCH_CONNS" -d"${secs}s" -H "Host: $host" ${ck:+-H "Cookie: $ck"} "${BENCH_FIELDS[@]}" \
        "http://127.0.0.1:$port/1k.txt" 2>&1) || true
    read -r u1 s1 < <(cpu_ticks "$pid")
    g1=$(tcp_out_segs)
    p1=$(preempted "$pid")
    wait "$stat" || true
    grep -q "Non-2xx" <<<"$out" && { echo "$out" >&2; die "$name: non-2xx answers"; }
    n=$(awk '/requests in/{print $1}' <<<"$out")
    [ -n "$n" ] && [ "$n" -gt 0 ] || { echo "$out" >&2; die "$name: no requests done"; }
    awk -v name="$name" -v n="$n" -v rps="$(awk '/Requests\/sec/{print $2}' <<<"$out")" \
        -v us="$(per_request_us "$u0" "$u1" "$n")" -v ss="$(per_request_us "$s0" "$s1" "$n")" -v segs="$(( g1 - g0 ))" -v pre="$(( p1 - p0 ))" '
        /^ +[0-9,.]+ +[a-z]/ { v=$1; gsub(",", "", v); c[$2]=v/n }
        END {
            printf "| %s | %.0f | %.2f | %.2f | %.2f | %.2f | %.3f | %.3f | %.3f | %.2f | %.4f |\n", name, rps,
                c["raw_syscalls:sys_enter"], c["syscalls:sys_enter_epoll_wait"], us, ss,
                c["sched:sched_switch"], pre/n, c["sched:sched_wakeup"], segs/n, c["page-faults"]
        }' "$work/counts-$name.txt"
}

echo "## Per request, wrk -t1 -c$BENCH_CONNS -d${secs}s, HTTP/1.1 1 KiB GET"
echo "| peer | req/s | system calls | epoll_wait | user µs | system µs | switched out | of them preempted | wakeups made | TCP segments | page faults |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
# nginx's worker is the process that proxies; its master only waits.
count nginx "$(pgrep -P "$ngx_pid" | head -n1)" "$ngx" 127.0.0.1
count haproxy "$hap_pid" "$hap" 127.0.0.1
bench_target public
count pp-public "$px_pid" "$px" "$host"
bench_target auth
count pp-auth "$px_pid" "$px" "$host" "$cookie"
echo
echo "Switched out: preempted or asleep; of them preempted: switched out while the process could have run on (nonvoluntary, /proc). Wakeups made: the tasks this process woke (the upstream on its core, the load tool on the other). TCP segments: all sent on the machine during the run, client and upstream included (4 a request if every one carries data; more are bare ACKs or split writes). Page faults: the proxy's own (memory touched for the first time, or given back and touched again)."
