#!/usr/bin/env bash
# Side-by-side benchmark of platform-proxy against its peers on loopback.
#
#   bench/run.sh http|h2|tls|ws|sse|stream|conns|propagation|table|all [runs] [seconds]
#
#   http         1 KiB GET with wrk -t1 -c64: direct to the nginx upstream (the
#                physical limit), nginx and haproxy as reverse proxies with
#                upstream keep-alive, configurable-http-proxy, platform-proxy
#                on a public route and on an authenticated one (session
#                cookie, authorization, identity headers).
#   h2           the same over HTTP/2 with h2load -c64 -m10 (h2c prior
#                knowledge on plain listeners): direct, nginx, haproxy,
#                platform-proxy public and authenticated. CHP speaks no h2.
#   ws           WebSocket through platform-proxy's authenticated route (and
#                nginx for scale): RSS per idle connection at WS_IDLE (5000)
#                connections; echo round trip at WS_ACTIVE (1000) active
#                connections, direct vs through each proxy.
#   sse          Server-Sent Events latency: SSE_STREAMS (200) streams of one
#                event every SSE_INTERVAL_MS (100) from sseserve, read by
#                sseload: direct, nginx, platform-proxy authenticated; time
#                from the event's write to its read, p50/p99. The streams'
#                ticks are spread over the interval, as independent apps'
#                are; SSE_ALIGNED=1 keeps them in step (every stream's
#                event in the same millisecond: a burst).
#   stream       a STREAM_MIB (1024) MiB upload (to the sink tool, which
#                answers once it has read the whole body) and download
#                (from nginx) with curl: direct, nginx, platform-proxy
#                public and authenticated (bodies spliced, the default),
#                and a second platform-proxy that copies them
#                (server.splice = "off"), public; MiB/s and RSS.
#   conns        memory per keep-alive HTTP connection under load: RSS while
#                wrk holds 64 and then CONNS_MANY (512) connections busy
#                (1 KiB GETs), for nginx, haproxy and platform-proxy's
#                authenticated route; the difference over the extra
#                connections is each one's cost, client and upstream side.
#   tls          case 1 over TLS 1.3 (ECDSA P-256, a certificate made for the
#                run): h2load -c64 -m10 over HTTP/2 by ALPN, and wrk -c64
#                over HTTP/1.1; nginx, haproxy and platform-proxy's
#                authenticated route. Handshakes are not measured: both
#                tools keep their connections.
#   propagation  route created through the API -> first 2xx through the
#                proxy, over PROP_ROUTES (50) new routes per run.
#   table        TABLE_ROUTES (100000) host routes in the store: time from
#                exec to the first 200 through one of them, and RSS; then,
#                on the last start, TABLE_PROP_ROUTES (20) routes created
#                through the API with the table full (create -> first 2xx).
#
# Runs alternate through the peers (reversed every other run) and the table
# shows medians. Load tools run on core 0; upstream and proxies on core 1.
# Every server binds 127.0.0.1 (ports from BENCH_PORT_BASE, 18080); all
# processes are stopped on exit. Needs scripts/install-bench-deps.sh and
# builds the release binaries when they are older than their sources.
#
# Environment: WS_IDLE (5000), WS_ACTIVE (1000), WS_HOLD (seconds the idle
# connections stay open, 5), WS_INTERVAL_MS (100), SSE_STREAMS (200),
# SSE_INTERVAL_MS (100), SSE_ALIGNED (unset), CONNS_MANY (512), PROP_ROUTES (50), BENCH_PORT_BASE (18080; the
# fourteen ports from it), BENCH_KEEP=1 (keep the
# configs and logs). The script raises its own `ulimit -n` to 20000 (5000
# tunnels take ~15000 descriptors in nginx); where the hard limit is lower,
# run `ulimit -n 20000` as root before it. The load tools (wsload, sseload,
# propagate) refuse any address outside loopback.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,/^set -euo/{/^set/d;s/^# \{0,1\}//;p}' "$0"; exit 2; }
case=${1:-}
runs=${2:-3}
secs=${3:-10}
[[ "$case" =~ ^(http|h2|tls|ws|sse|stream|conns|propagation|table|all)$ ]] || usage
[[ "$runs" =~ ^[0-9]+$ && "$runs" -ge 1 && "$runs" -le 50 ]] || die "runs: 1..50"
[[ "$secs" =~ ^[0-9]+$ && "$secs" -ge 1 && "$secs" -le 600 ]] || die "seconds: 1..600"

base=${BENCH_PORT_BASE:-18080}
px_port=$base          # platform-proxy (HTTP/1.1 and h2c on one listener)
up_port=$((base + 1))  # nginx upstream, HTTP/1.1
up_h2=$((base + 2))    # nginx upstream, h2c
ngx_port=$((base + 3)) # nginx reverse proxy
ngx_h2=$((base + 4))
hap_port=$((base + 5)) # haproxy
hap_h2=$((base + 6))
chp_port=$((base + 7)) # configurable-http-proxy and its API
chp_api=$((base + 8))
ws_port=$((base + 9))  # wsecho upstream
sse_port=$((base + 10)) # sseserve upstream
sink_port=$((base + 14)) # the upload case's sink
copy_port=$((base + 15)) # the stream case's copying platform-proxy
pp_tls=$((base + 11))  # TLS listeners: platform-proxy, nginx, haproxy
ngx_tls=$((base + 12))
hap_tls=$((base + 13))

# WebSocket and idle-connection counts need a descriptor per socket (the
# proxy holds two per tunnel); every process started below inherits this.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

bench_init
bench_build tools
bench_port_free "$px_port" "$up_port" "$up_h2" "$ngx_port" "$ngx_h2" "$hap_port" "$hap_h2" "$chp_port" "$chp_api" "$ws_port" "$sse_port" \
    "$pp_tls" "$ngx_tls" "$hap_tls" "$sink_port" "$copy_port"

# order RUN NAME...: the names, reversed on even runs.
order() {
    local run=$1
    shift
    if ((run % 2)); then printf '%s\n' "$@"; else printf '%s\n' "$@" | tac; fi
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "-" }'; }

# Says, under a case's table, whether the peers did the proxy's
# per-request work too (BENCH_EQUAL_WORK, bench/lib.sh).
peers_work() {
    if [ -n "${BENCH_EQUAL_WORK:-}" ]; then
        echo "BENCH_EQUAL_WORK: nginx and haproxy set the five X-Forwarded-* fields and a correlation id both ways, as platform-proxy does; they still do no authentication."
    fi
}

# Starts platform-proxy with a public route b.apps.bench and an
# authenticated one s.apps.bench to UPSTREAM; sets cookie.
pp_with_routes() {
    local tag=$1 upstream=$2
    bench_start_pp "$px_port" "$tag"
    pp_route_pair "$upstream"
}

case_http() {
    echo "## HTTP/1.1: 1 KiB GET, wrk -t1 -c$BENCH_CONNS -d${secs}s, $runs run(s)"
    bench_start_upstream "$up_port"
    bench_start_nginx_proxy "$ngx_port" "$up_port"
    bench_start_haproxy "$hap_port" "$up_port"
    bench_start_chp "$chp_port" "$chp_api" "$up_port"
    pp_with_routes http "127.0.0.1:$up_port"

    local peers=(direct nginx haproxy chp pp-public pp-auth)
    declare -A url host ck pid
    url[direct]=http://127.0.0.1:$up_port/1k.txt; host[direct]=127.0.0.1:$up_port; pid[direct]=$up_pid
    url[nginx]=http://127.0.0.1:$ngx_port/1k.txt; host[nginx]=127.0.0.1:$ngx_port; pid[nginx]=$ngx_pid
    url[haproxy]=http://127.0.0.1:$hap_port/1k.txt; host[haproxy]=127.0.0.1:$hap_port; pid[haproxy]=$hap_pid
    url[chp]=http://127.0.0.1:$chp_port/1k.txt; host[chp]=127.0.0.1:$chp_port; pid[chp]=$chp_pid
    url[pp-public]=http://127.0.0.1:$px_port/1k.txt; host[pp-public]=b.apps.bench; pid[pp-public]=$px_pid
    url[pp-auth]=http://127.0.0.1:$px_port/1k.txt; host[pp-auth]=s.apps.bench; pid[pp-auth]=$px_pid
    ck[pp-auth]=$cookie

    local p t0
    declare -A rps p99 rss core
    for p in "${peers[@]}"; do
        bench_check "$p" "${url[$p]}" "${host[$p]}" "${ck[$p]:-}"
        # One second of warm-up: pools filled, caches primed, JIT warm.
        bench_wrk "$p" 1 "${url[$p]}" "${host[$p]}" "${ck[$p]:-}"
    done
    local i
    declare -A own this_run
    for i in $(seq "$runs"); do
        local line="run $i:"
        for p in $(order "$i" "${peers[@]}"); do
            t0=$(cpu_sum "${pid[$p]}")
            bench_wrk "$p" "$secs" "${url[$p]}" "${host[$p]}" "${ck[$p]:-}"
            core[$p]+=" $(per_request_us "$t0" "$(cpu_sum "${pid[$p]}")" "$wrk_requests")"
            rps[$p]+=" $wrk_rps"; p99[$p]+=" $wrk_p99"; this_run[$p]=$wrk_rps
            rss[$p]+=" $(rss_kib "${pid[$p]}")"
            line+=" $p $wrk_rps/s ${wrk_p99}ms |"
        done
        own_ratios this_run "${peers[@]}"
        echo "${line% |}"
    done

    declare -A m_rps m_p99 m_rss m_core
    for p in "${peers[@]}"; do
        # shellcheck disable=SC2086 # word-split the space-separated samples
        { m_rps[$p]=$(median ${rps[$p]}); m_p99[$p]=$(median ${p99[$p]}); m_rss[$p]=$(median ${rss[$p]}); m_core[$p]=$(median ${core[$p]}); }
    done
    local best
    best=$(awk -v a="${m_rps[nginx]}" -v b="${m_rps[haproxy]}" 'BEGIN{print (a > b) ? a : b}')
    echo
    echo "| peer | req/s median | p99 ms median | core µs a request | RSS KiB after load | req/s vs faster of nginx/haproxy | the same, runs' own | req/s vs CHP | core time vs haproxy | RSS vs nginx |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for p in "${peers[@]}"; do
        # shellcheck disable=SC2086
        echo "| $p | ${m_rps[$p]} | ${m_p99[$p]} | ${m_core[$p]} | ${m_rss[$p]} | $(ratio "${m_rps[$p]}" "$best") | $(median ${own[$p]}) | $(ratio "${m_rps[$p]}" "${m_rps[chp]}") | $(ratio "${m_core[$p]}" "${m_core[haproxy]}") | $(ratio "${m_rss[$p]}" "${m_rss[nginx]}") |"
    done
    echo
    echo "direct and nginx RSS: master + worker; pp-public and pp-auth are one process (measured after each's runs)."
    peers_work
    echo "Core time a request: the process's user + system time over the run (/proc; for direct, the upstream's), steadier than req/s when neighbours steal the core."
    bench_stop_all
}

case_h2() {
    echo "## HTTP/2 (h2c prior knowledge): 1 KiB GET, h2load -t1 -c64 -m10 -D ${secs}, $runs run(s)"
    bench_start_upstream "$up_port" "$up_h2"
    bench_start_nginx_proxy "$ngx_port" "$up_port" "$ngx_h2"
    bench_start_haproxy "$hap_port" "$up_port" "$hap_h2"
    pp_with_routes h2 "127.0.0.1:$up_port"

    local peers=(direct nginx haproxy pp-public pp-auth)
    declare -A url auth ck pid
    url[direct]=http://127.0.0.1:$up_h2/1k.txt; pid[direct]=$up_pid
    url[nginx]=http://127.0.0.1:$ngx_h2/1k.txt; pid[nginx]=$ngx_pid
    url[haproxy]=http://127.0.0.1:$hap_h2/1k.txt; pid[haproxy]=$hap_pid
    # h2load takes :authority from the URL; -H ':authority: …' names the route.
    url[pp-public]=http://127.0.0.1:$px_port/1k.txt; auth[pp-public]=b.apps.bench; pid[pp-public]=$px_pid
    url[pp-auth]=http://127.0.0.1:$px_port/1k.txt; auth[pp-auth]=s.apps.bench; pid[pp-auth]=$px_pid
    ck[pp-auth]=$cookie

    local p i
    h2args() { # peer -> header arguments for bench_h2load
        [ -n "${auth[$1]:-}" ] && printf '%s\n' ":authority: ${auth[$1]}"
        [ -n "${ck[$1]:-}" ] && printf '%s\n' "cookie: ${ck[$1]}"
        return 0
    }
    declare -A rps mean max rss core
    local t0
    for p in "${peers[@]}"; do
        mapfile -t hs < <(h2args "$p")
        bench_h2load "$p" 1 "${url[$p]}" "${hs[@]}"
    done
    declare -A own this_run
    for i in $(seq "$runs"); do
        local line="run $i:"
        for p in $(order "$i" "${peers[@]}"); do
            mapfile -t hs < <(h2args "$p")
            t0=$(cpu_sum "${pid[$p]}")
            bench_h2load "$p" "$secs" "${url[$p]}" "${hs[@]}"
            core[$p]+=" $(per_request_us "$t0" "$(cpu_sum "${pid[$p]}")" "$h2_requests")"
            rps[$p]+=" $h2_rps"; mean[$p]+=" $h2_mean"; max[$p]+=" $h2_max"; this_run[$p]=$h2_rps
            rss[$p]+=" $(rss_kib "${pid[$p]}")"
            line+=" $p $h2_rps/s mean ${h2_mean}ms |"
        done
        own_ratios this_run "${peers[@]}"
        echo "${line% |}"
    done
    declare -A m_rps m_mean m_max m_rss m_core
    for p in "${peers[@]}"; do
        # shellcheck disable=SC2086
        { m_rps[$p]=$(median ${rps[$p]}); m_mean[$p]=$(median ${mean[$p]}); m_max[$p]=$(median ${max[$p]}); m_rss[$p]=$(median ${rss[$p]}); m_core[$p]=$(median ${core[$p]}); }
    done
    local best
    best=$(awk -v a="${m_rps[nginx]}" -v b="${m_rps[haproxy]}" 'BEGIN{print (a > b) ? a : b}')
    echo
    echo "| peer | req/s median | mean ms median | max ms median | core µs a request | RSS KiB after load | req/s vs faster of nginx/haproxy | the same, runs' own | core time vs haproxy | RSS vs nginx |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for p in "${peers[@]}"; do
        # shellcheck disable=SC2086
        echo "| $p | ${m_rps[$p]} | ${m_mean[$p]} | ${m_max[$p]} | ${m_core[$p]} | ${m_rss[$p]} | $(ratio "${m_rps[$p]}" "$best") | $(median ${own[$p]}) | $(ratio "${m_core[$p]}" "${m_core[haproxy]}") | $(ratio "${m_rss[$p]}" "${m_rss[nginx]}") |"
    done
    echo
    echo "h2load prints no latency percentiles; mean and max of 'time for request' instead. Proxies speak HTTP/1.1 with keep-alive to the upstream."
    peers_work
    echo "Core time a request: the process's user + system time over the run (/proc; for direct, the upstream's), steadier than req/s when neighbours steal the core."
    bench_stop_all
}

# wsload_run PORT URL [HEADER...] -- ARGS...: one wsload; its JSON in ws_json.
wsload_run() {
    local wport=$1 wurl=$2
    shift 2
    local hdrs=()
    while [ "$#" -gt 0 ] && [ "$1" != -- ]; do hdrs+=(--header "$1"); shift; done
    shift
    ws_json=$(bench_load "$BENCH_TOOLS/wsload" --connect "127.0.0.1:$wport" --url "$wurl" "${hdrs[@]}" "$@" 2>>"$work/wsload.log") \
        || { cat "$work/wsload.log" >&2; die "wsload failed"; }
}

case_tls() {
    echo "## TLS 1.3: 1 KiB GET, h2load -t1 -c64 -m10 (HTTP/2 by ALPN) and wrk -t1 -c64 (HTTP/1.1), ${secs}s, $runs run(s)"
    BENCH_TLS_CERT=$work/tls.crt BENCH_TLS_KEY=$work/tls.key BENCH_TLS_PEM=$work/tls.pem
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=apps.bench" -addext "subjectAltName=DNS:*.apps.bench" \
        -keyout "$BENCH_TLS_KEY" -out "$BENCH_TLS_CERT" 2>/dev/null || die "openssl could not make the certificate"
    cat "$BENCH_TLS_CERT" "$BENCH_TLS_KEY" >"$BENCH_TLS_PEM"
    chmod 644 "$BENCH_TLS_KEY" "$BENCH_TLS_PEM" # nginx's worker reads them
    export BENCH_TLS_CERT BENCH_TLS_KEY BENCH_TLS_PEM
    bench_start_upstream "$up_port"
    BENCH_TLS_PORT=$ngx_tls bench_start_nginx_proxy "$ngx_port" "$up_port"
    BENCH_TLS_PORT=$hap_tls bench_start_haproxy "$hap_port" "$up_port"
    PP_TLS_PORT=$pp_tls pp_with_routes tls "127.0.0.1:$up_port"

    local peers=(nginx haproxy pp-auth)
    declare -A port pid host
    port[nginx]=$ngx_tls; pid[nginx]=$ngx_pid; host[nginx]=localhost
    port[haproxy]=$hap_tls; pid[haproxy]=$hap_pid; host[haproxy]=localhost
    port[pp-auth]=$pp_tls; pid[pp-auth]=$px_pid; host[pp-auth]=s.apps.bench
    # The URL names localhost: an address is no server name, so the client
    # sends none and each server answers with its one certificate.
    local p i
    declare -A h2 h1 p99 rss
    for p in "${peers[@]}"; do
        bench_h2load "$p" 1 "https://localhost:${port[$p]}/1k.txt" ":authority: ${host[$p]}" \
            ${cookie:+"cookie: $cookie"}
        grep -q '^Application protocol: h2$' <<<"$h2_out" || die "$p: h2load did not speak h2 over TLS"
    done
    for i in $(seq "$runs"); do
        local line="run $i:"
        for p in $(order "$i" "${peers[@]}"); do
            bench_h2load "$p" "$secs" "https://localhost:${port[$p]}/1k.txt" ":authority: ${host[$p]}" \
                ${cookie:+"cookie: $cookie"}
            h2[$p]+=" $h2_rps"
            bench_wrk "$p" "$secs" "https://localhost:${port[$p]}/1k.txt" "${host[$p]}" "$cookie"
            h1[$p]+=" $wrk_rps"; p99[$p]+=" $wrk_p99"
            rss[$p]+=" $(rss_kib "${pid[$p]}")"
            line+=" $p h2 $h2_rps/s, h1 $wrk_rps/s p99 ${wrk_p99}ms |"
        done
        echo "${line% |}"
    done
    declare -A m_h2 m_h1 m_p99 m_rss
    for p in "${peers[@]}"; do
        # shellcheck disable=SC2086
        { m_h2[$p]=$(median ${h2[$p]}); m_h1[$p]=$(median ${h1[$p]}); m_p99[$p]=$(median ${p99[$p]}); m_rss[$p]=$(median ${rss[$p]}); }
    done
    local best2 best1
    best2=$(awk -v a="${m_h2[nginx]}" -v b="${m_h2[haproxy]}" 'BEGIN{print (a > b) ? a : b}')
    best1=$(awk -v a="${m_h1[nginx]}" -v b="${m_h1[haproxy]}" 'BEGIN{print (a > b) ? a : b}')
    echo
    echo "| peer | h2 req/s median | vs faster of nginx/haproxy | HTTP/1.1 req/s median | p99 ms median | vs faster of nginx/haproxy | RSS KiB after load |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    for p in "${peers[@]}"; do
        echo "| $p | ${m_h2[$p]} | $(ratio "${m_h2[$p]}" "$best2") | ${m_h1[$p]} | ${m_p99[$p]} | $(ratio "${m_h1[$p]}" "$best1") | ${m_rss[$p]} |"
    done
    echo
    echo "nginx and haproxy do no authentication; platform-proxy's route checks the session cookie on every request. Upstream: HTTP/1.1 with keep-alive."
    peers_work
    bench_stop_all
}

case_ws() {
    local idle=${WS_IDLE:-5000} active=${WS_ACTIVE:-1000} hold=${WS_HOLD:-5} interval=${WS_INTERVAL_MS:-100}
    local v
    for v in "$idle" "$active" "$hold" "$interval"; do
        [[ "$v" =~ ^[0-9]+$ ]] || die "WS_IDLE, WS_ACTIVE, WS_HOLD, WS_INTERVAL_MS: whole numbers"
    done
    ((idle >= 1 && active >= 1)) || die "WS_IDLE and WS_ACTIVE: at least 1"
    local most=$((idle > active ? idle : active))
    ((3 * most + 256 <= $(ulimit -n))) \
        || die "$most connections need ulimit -n $((3 * most + 256)) (nginx: 3 per tunnel); it is $(ulimit -n)"
    echo "## WebSocket: $idle idle connections (held ${hold}s); echo RTT at $active active connections, one 32-byte message every ${interval} ms each, 1s warm-up + ${secs}s, $runs run(s)"
    bench_spawn "$work/wsecho.log" "$BENCH_TOOLS/wsecho" --listen "127.0.0.1:$ws_port"
    local echo_pid=$spawned
    bench_wait_tcp "$ws_port" "$echo_pid"
    bench_start_upstream "$up_port"
    # Two sockets per tunnel, but nginx warns "worker_connections are not
    # enough" and resets handshakes well before 2n: give it 3n.
    NGINX_CONNS=$((3 * most + 256))
    bench_start_nginx_proxy "$ngx_port" "$up_port" "" "$ws_port"
    pp_with_routes ws "127.0.0.1:$ws_port"

    local peers=(direct nginx pp-auth)
    declare -A port url hdr pid
    port[direct]=$ws_port; url[direct]=ws://127.0.0.1:$ws_port/ws; pid[direct]=$echo_pid
    port[nginx]=$ngx_port; url[nginx]=ws://127.0.0.1:$ngx_port/ws; pid[nginx]=$ngx_pid
    port[pp-auth]=$px_port; url[pp-auth]=ws://s.apps.bench:$px_port/ws; pid[pp-auth]=$px_pid
    hdr[pp-auth]="Cookie: $cookie"$'\n'"Origin: http://s.apps.bench:$px_port"
    wsload_for() { # peer ARGS... (headers of the peer added)
        local p=$1
        shift
        local hs=()
        [ -n "${hdr[$p]:-}" ] && mapfile -t hs <<<"${hdr[$p]}"
        wsload_run "${port[$p]}" "${url[$p]}" "${hs[@]}" -- "$@"
    }

    # The handshake must pass the proxy's session, Origin and upgrade checks.
    local p
    for p in "${peers[@]}"; do
        wsload_for "$p" --connections 1 --active 1 --duration-secs 1
        [ "$(json_num messages <<<"$ws_json")" -gt 0 ] || die "$p: no echo: $ws_json"
    done

    # Idle: resident memory while every connection is open, minus before.
    declare -A per_conn idle_ok
    for p in nginx pp-auth; do
        local before during=0 pid_w i
        before=$(rss_kib "${pid[$p]}")
        : >"$work/wsload.log"
        local hs=()
        [ -n "${hdr[$p]:-}" ] && mapfile -t hs <<<"${hdr[$p]}"
        local hargs=()
        for h in "${hs[@]}"; do hargs+=(--header "$h"); done
        bench_load "$BENCH_TOOLS/wsload" --connect "127.0.0.1:${port[$p]}" --url "${url[$p]}" "${hargs[@]}" \
            --connections "$idle" --ramp-concurrency 64 --hold-secs "$hold" >"$work/idle.json" 2>"$work/wsload.log" &
        pid_w=$!
        BENCH_PIDS+=("$pid_w")
        for i in $(seq 1200); do # ramp: 120 s at most
            grep -q holding "$work/wsload.log" && break
            kill -0 "$pid_w" 2>/dev/null || break
            sleep 0.1
        done
        sleep 1
        during=$(rss_kib "${pid[$p]}")
        wait "$pid_w" || { cat "$work/wsload.log" >&2; die "$p: wsload failed"; }
        bench_forget "$pid_w"
        local conn failed
        conn=$(json_num connected <"$work/idle.json"); failed=$(json_num failed <"$work/idle.json")
        [ "$failed" = 0 ] || echo "bench: $p idle: $(cat "$work/idle.json")" >&2
        idle_ok[$p]="$conn/$idle"
        per_conn[$p]=$(awk -v a="$before" -v b="$during" -v n="$conn" 'BEGIN{ if (n > 0) printf "%.1f", (b-a)/n; else print "-" }')
        echo "$p idle: $conn connected, RSS $before -> $during KiB"
    done

    # Active: echo round trips, direct and through each proxy, alternating.
    declare -A p50 p99 maxv
    local i
    for i in $(seq "$runs"); do
        local line="run $i:"
        for p in $(order "$i" "${peers[@]}"); do
            wsload_for "$p" --connections "$active" --active "$active" --ramp-concurrency 64 \
                --warmup-secs 1 --duration-secs "$secs" --interval-ms "$interval"
            local a f t
            a=$(json_num active <<<"$ws_json"); f=$(json_num failed <<<"$ws_json"); t=$(json_num timeouts <<<"$ws_json")
            if [ "$a" != "$active" ] || [ "$f" != 0 ] || [ "$t" != 0 ]; then
                die "$p: not every connection worked; refusing to report: $ws_json"
            fi
            p50[$p]+=" $(json_num rtt_p50_us <<<"$ws_json")"
            p99[$p]+=" $(json_num rtt_p99_us <<<"$ws_json")"
            maxv[$p]+=" $(json_num rtt_max_us <<<"$ws_json")"
            line+=" $p p50 $(json_num rtt_p50_us <<<"$ws_json")us p99 $(json_num rtt_p99_us <<<"$ws_json")us ($(json_num messages <<<"$ws_json") msgs) |"
        done
        echo "${line% |}"
    done
    declare -A m50 m99 mmax
    for p in "${peers[@]}"; do
        # shellcheck disable=SC2086
        { m50[$p]=$(median ${p50[$p]}); m99[$p]=$(median ${p99[$p]}); mmax[$p]=$(median ${maxv[$p]}); }
    done
    echo
    echo "| peer | idle connected | RSS KiB per idle connection | RTT p50 µs | RTT p99 µs | RTT max µs | p99 added vs direct µs |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    for p in "${peers[@]}"; do
        local added=-
        [ "$p" != direct ] && added=$((m99[$p] - m99[direct]))
        echo "| $p | ${idle_ok[$p]:--} | ${per_conn[$p]:--} | ${m50[$p]} | ${m99[$p]} | ${mmax[$p]} | $added |"
    done
    echo
    echo "RSS per connection: (RSS while all are open - RSS before) / connected; each tunnel holds a client and an upstream socket."
    bench_stop_all
}

case_sse() {
    local streams=${SSE_STREAMS:-200} interval=${SSE_INTERVAL_MS:-100} v
    for v in "$streams" "$interval"; do
        [[ "$v" =~ ^[0-9]+$ ]] && ((v >= 1)) || die "SSE_STREAMS, SSE_INTERVAL_MS: whole numbers from 1"
    done
    local aligned=() ticks="spread over the interval"
    [ -n "${SSE_ALIGNED:-}" ] && { aligned=(--aligned); ticks="in step (SSE_ALIGNED)"; }
    echo "## SSE: $streams streams, one event every ${interval} ms each, ticks $ticks, 1s warm-up + ${secs}s, $runs run(s)"
    bench_spawn "$work/sseserve.log" "$BENCH_TOOLS/sseserve" --listen "127.0.0.1:$sse_port" --interval-ms "$interval" "${aligned[@]}"
    local sse_pid=$spawned
    bench_wait_tcp "$sse_port" "$sse_pid"
    # nginx's upstream is the event server itself; it honours the
    # server's X-Accel-Buffering: no, as it would for a real SSE app.
    bench_start_nginx_proxy "$ngx_port" "$sse_port"
    pp_with_routes sse "127.0.0.1:$sse_port"
    local peers=(direct nginx pp-auth)
    declare -A port host hdr
    port[direct]=$sse_port; host[direct]=localhost
    port[nginx]=$ngx_port; host[nginx]=localhost
    port[pp-auth]=$px_port; host[pp-auth]=s.apps.bench; hdr[pp-auth]="Cookie: $cookie"
    declare -A p50 p99 maxv
    local i p
    for i in $(seq "$runs"); do
        local line="run $i:"
        for p in $(order "$i" "${peers[@]}"); do
            local hargs=()
            [ -n "${hdr[$p]:-}" ] && hargs=(--header "${hdr[$p]}")
            local out
            out=$(bench_load "$BENCH_TOOLS/sseload" --connect "127.0.0.1:${port[$p]}" --host "${host[$p]}" \
                "${hargs[@]}" --streams "$streams" --warmup-secs 1 --duration-secs "$secs" 2>>"$work/sseload.log") \
                || { cat "$work/sseload.log" >&2; die "$p: sseload failed"; }
            local f e
            f=$(json_num failed <<<"$out"); e=$(json_num events <<<"$out")
            # Every stream, and about every event it should have had.
            if [ "$f" != 0 ] || ((e < streams * secs * 1000 / interval * 9 / 10)); then
                die "$p: streams failed or events missing; refusing to report: $out"
            fi
            p50[$p]+=" $(json_num latency_p50_us <<<"$out")"
            p99[$p]+=" $(json_num latency_p99_us <<<"$out")"
            maxv[$p]+=" $(json_num latency_max_us <<<"$out")"
            line+=" $p p50 $(json_num latency_p50_us <<<"$out")us p99 $(json_num latency_p99_us <<<"$out")us ($e events) |"
        done
        echo "${line% |}"
    done
    declare -A m50 m99 mmax
    for p in "${peers[@]}"; do
        # shellcheck disable=SC2086
        { m50[$p]=$(median ${p50[$p]}); m99[$p]=$(median ${p99[$p]}); mmax[$p]=$(median ${maxv[$p]}); }
    done
    echo
    echo "| peer | latency p50 µs | latency p99 µs | max µs | p50 added vs direct µs | p99 added vs direct µs |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for p in "${peers[@]}"; do
        local a50=- a99=-
        [ "$p" != direct ] && { a50=$((m50[$p] - m50[direct])); a99=$((m99[$p] - m99[direct])); }
        echo "| $p | ${m50[$p]} | ${m99[$p]} | ${mmax[$p]} | $a50 | $a99 |"
    done
    echo
    echo "Latency: from sseserve writing an event to sseload reading it (one clock, one machine)."
    bench_stop_all
}

case_propagation() {
    local n=${PROP_ROUTES:-50}
    echo "## Change propagation: API create -> first 2xx through the proxy, $n routes per run, $runs run(s)"
    bench_start_upstream "$up_port"
    bench_start_pp "$px_port" propagation
    declare -a api50 api99 live50 live99 livemax
    local i out first=0
    for i in $(seq "$runs"); do
        out=$(bench_load "$BENCH_TOOLS/propagate" --connect "127.0.0.1:$px_port" --token "$BENCH_TOKEN" \
            --upstream "127.0.0.1:$up_port" --path /1k.txt --routes "$n" --prefix "r$i-") \
            || die "propagate failed"
        [ "$(json_num failed <<<"$out")" = 0 ] || die "some routes never served; refusing to report: $out"
        echo "run $i: $out"
        api50+=("$(json_num api_p50_us <<<"$out")"); api99+=("$(json_num api_p99_us <<<"$out")")
        live50+=("$(json_num live_p50_us <<<"$out")"); live99+=("$(json_num live_p99_us <<<"$out")")
        livemax+=("$(json_num live_max_us <<<"$out")")
        first=$((first + $(json_num served_at_first_probe <<<"$out")))
    done
    echo
    echo "| measure | p50 µs | p99 µs | max µs |"
    echo "| --- | ---: | ---: | ---: |"
    echo "| API create answered | $(median "${api50[@]}") | $(median "${api99[@]}") | - |"
    echo "| create sent -> first 2xx | $(median "${live50[@]}") | $(median "${live99[@]}") | $(median "${livemax[@]}") |"
    echo
    echo "Served at the first probe after the API answered: $first of $((n * runs)) routes."
    echo "Medians over runs of each run's percentiles; every probe is a new connection."
    bench_stop_all
}

case_table() {
    local n=${TABLE_ROUTES:-100000}
    echo "## Route table: $n host routes in the store; exec -> first 200 through one of them, $runs start(s)"
    bench_start_upstream "$up_port"
    bench_start_pp "$px_port" table
    [ -n "$(pp_route r0 "127.0.0.1:$up_port" public)" ] || die "could not create the seed route"
    kill "$px_pid"; wait "$px_pid" 2>/dev/null || true; bench_forget "$px_pid"
    # The seed route copied n-1 times straight into the SQLite file: the
    # API would take minutes for 100k, and start-up is what is measured.
    local stored
    stored=$(python3 - "$work/pp-table.db" "$n" <<'PY'
import sqlite3, sys
db, n = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db)
cols = [r[1] for r in c.execute("PRAGMA table_info(platform_proxy_routes)")]
subst = {
    "id": "printf('%08x-0000-4000-8000-%012x', k, k)",
    "owner_id": "'r' || k",
    "route_host": "'r' || k",
}
sel = ", ".join(subst.get(col, col) for col in cols)
c.execute(
    "WITH RECURSIVE seq(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM seq WHERE k < ?) "
    f"INSERT INTO platform_proxy_routes ({', '.join(cols)}) "
    f"SELECT {sel} FROM platform_proxy_routes, seq WHERE route_host = 'r0'",
    (n - 1,),
)
c.commit()
print(c.execute("SELECT count(*) FROM platform_proxy_routes WHERE deleted_at IS NULL").fetchone()[0])
PY
)
    [ "$stored" = "$n" ] || die "expected $n stored routes, found $stored"
    local probe="r$((n / 2)).apps.bench" i t0 ms code prop=""
    local -a starts rss
    for i in $(seq "$runs"); do
        t0=$(date +%s%N)
        bench_spawn "$work/pp-table.log" "$BENCH_BIN" serve --config "$work/pp-table.toml"
        px_pid=$spawned
        code=000
        for _ in $(seq 3000); do
            code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $probe" "http://127.0.0.1:$px_port/1k.txt" || true)
            [ "$code" = 200 ] && break
            kill -0 "$px_pid" 2>/dev/null || { cat "$work/pp-table.log" >&2; die "platform-proxy died"; }
            sleep 0.005
        done
        [ "$code" = 200 ] || die "route $probe never served"
        ms=$(( ($(date +%s%N) - t0) / 1000000 ))
        starts+=("$ms"); rss+=("$(rss_kib "$px_pid")")
        echo "start $i: ${ms} ms to the first 200, RSS $(rss_kib "$px_pid") KiB"
        if [ "$i" = "$runs" ]; then
            # With the table full: what one more route costs to apply.
            prop=$(bench_load "$BENCH_TOOLS/propagate" --connect "127.0.0.1:$px_port" \
                --token "$BENCH_TOKEN" --upstream "127.0.0.1:$up_port" --path /1k.txt \
                --routes "${TABLE_PROP_ROUTES:-20}" --prefix "t$i-") || die "propagate failed"
            [ "$(json_num failed <<<"$prop")" = 0 ] || die "some routes never served: $prop"
            echo "propagation at $n routes: $prop"
        fi
        kill "$px_pid"; wait "$px_pid" 2>/dev/null || true; bench_forget "$px_pid"
    done
    local m r
    m=$(median "${starts[@]}"); r=$(median "${rss[@]}")
    echo
    echo "| routes | start to first 200 ms (median) | RSS KiB serving | KiB per route | new route live p50 / p99 µs |"
    echo "| ---: | ---: | ---: | ---: | ---: |"
    echo "| $n | $m | $r | $(awk -v r="$r" -v n="$n" 'BEGIN{printf "%.2f", r/n}') | $(json_num live_p50_us <<<"$prop") / $(json_num live_p99_us <<<"$prop") |"
    bench_stop_all
}

case_stream() {
    local gib=${STREAM_MIB:-1024}
    echo "## Streaming: a ${gib} MiB upload (PUT) and download, curl, $runs run(s)"
    # Sparse: nginx reads zeros from the page cache, so the disk is no peer.
    # Read once first: the first read of a sparse file fills the page
    # cache, at a fraction of the speed of the reads after it, and would
    # slow whichever upload came first.
    truncate -s "${gib}M" "$work/big.bin"
    cat "$work/big.bin" >/dev/null
    bench_start_upstream "$up_port"
    bench_start_sink "$sink_port"
    BENCH_SINK_PORT=$sink_port bench_start_nginx_proxy "$ngx_port" "$up_port"
    pp_with_routes stream "127.0.0.1:$up_port"
    # Uploads go to the sink: on the proxy, a public route and an
    # authenticated one (signed in) of its own.
    [ -n "$(pp_route bu "127.0.0.1:$sink_port" public)" ] || die "could not create the public sink route"
    local su_id
    su_id=$(pp_route su "127.0.0.1:$sink_port")
    [ -n "$su_id" ] || die "could not create the authenticated sink route"
    local sink_cookie
    sink_cookie=$(pp_sign_in "$su_id" su.apps.bench)
    [ -n "$sink_cookie" ] || die "could not sign in to the authenticated sink route"
    # The same build copying every body, public routes of its own: which
    # of the two is faster depends on the machine (docs/configuration.md,
    # server.splice).
    local pp_port=$px_port pp_pid=$px_pid
    PP_SERVER_EXTRA='splice = "off"' bench_start_pp "$copy_port" stream-copied
    local copied_pid=$px_pid
    [ -n "$(pp_route b "127.0.0.1:$up_port" public)" ] || die "could not create the copying proxy's route"
    [ -n "$(pp_route bu "127.0.0.1:$sink_port" public)" ] || die "could not create the copying proxy's sink route"
    px_port=$pp_port; px_pid=$pp_pid
    local peers=(direct nginx pp-public pp-auth pp-copied)
    declare -A url host ck pid sink sinkhost sinkck
    url[direct]=http://127.0.0.1:$up_port/big.bin; host[direct]=127.0.0.1:$up_port; pid[direct]=$up_pid
    url[nginx]=http://127.0.0.1:$ngx_port/big.bin; host[nginx]=127.0.0.1:$ngx_port; pid[nginx]=$ngx_pid
    url[pp-public]=http://127.0.0.1:$px_port/big.bin; host[pp-public]=b.apps.bench; pid[pp-public]=$px_pid
    url[pp-auth]=http://127.0.0.1:$px_port/big.bin; host[pp-auth]=s.apps.bench; pid[pp-auth]=$px_pid
    ck[pp-auth]=$cookie
    url[pp-copied]=http://127.0.0.1:$copy_port/big.bin; host[pp-copied]=b.apps.bench; pid[pp-copied]=$copied_pid
    sink[pp-copied]=http://127.0.0.1:$copy_port/sink; sinkhost[pp-copied]=bu.apps.bench
    sink[direct]=http://127.0.0.1:$sink_port/sink; sinkhost[direct]=127.0.0.1:$sink_port
    sink[nginx]=http://127.0.0.1:$ngx_port/sink; sinkhost[nginx]=127.0.0.1:$ngx_port
    sink[pp-public]=http://127.0.0.1:$px_port/sink; sinkhost[pp-public]=bu.apps.bench
    sink[pp-auth]=http://127.0.0.1:$px_port/sink; sinkhost[pp-auth]=su.apps.bench
    sinkck[pp-auth]=$sink_cookie
    local p i out
    declare -A mbs up rss
    local rss_before
    rss_before=$(rss_kib "$px_pid")
    for i in $(seq "$runs"); do
        local line="run $i:"
        for p in $(order "$i" "${peers[@]}"); do
            out=$(bench_load curl -s --max-time 120 -o /dev/null -w '%{http_code} %{speed_upload}' \
                -H "Host: ${sinkhost[$p]}" ${sinkck[$p]:+-H "Cookie: ${sinkck[$p]}"} \
                -H 'Content-Type: application/octet-stream' -T "$work/big.bin" "${sink[$p]}")
            [ "${out%% *}" = 200 ] || die "$p: upload answered ${out%% *}"
            local u
            u=$(awk -v b="${out#* }" 'BEGIN{printf "%.1f", b/1048576}')
            up[$p]+=" $u"
            out=$(bench_load curl -s --max-time 120 -o /dev/null -w '%{http_code} %{speed_download}' \
                -H "Host: ${host[$p]}" ${ck[$p]:+-H "Cookie: ${ck[$p]}"} "${url[$p]}")
            [ "${out%% *}" = 200 ] || die "$p: download answered ${out%% *}"
            local v
            v=$(awk -v b="${out#* }" 'BEGIN{printf "%.1f", b/1048576}')
            mbs[$p]+=" $v"
            rss[$p]+=" $(rss_kib "${pid[$p]}")"
            line+=" $p down ${v} up ${u} MiB/s |"
        done
        echo "${line% |}"
    done
    declare -A m mu
    for p in "${peers[@]}"; do
        # shellcheck disable=SC2086
        { m[$p]=$(median ${mbs[$p]}); mu[$p]=$(median ${up[$p]}); }
    done
    echo
    echo "| peer | download MiB/s | vs direct | upload MiB/s | vs direct | RSS KiB after |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for p in "${peers[@]}"; do
        # shellcheck disable=SC2086
        echo "| $p | ${m[$p]} | $(ratio "${m[$p]}" "${m[direct]}") | ${mu[$p]} | $(ratio "${mu[$p]}" "${mu[direct]}") | $(median ${rss[$p]}) |"
    done
    echo
    echo "platform-proxy RSS before the downloads: $rss_before KiB (flat memory: the body streams)."
    echo "pp-public and pp-auth splice large bodies (server.splice = \"both\", the default); pp-copied is the same build copying them (\"off\")."
    bench_stop_all
}

# RSS of PID (and its children) in KiB, sampled halfway through a wrk run
# of CONNS connections; sets conns_rss.
rss_under_load() {
    local pid=$1 conns=$2 url=$3 host=$4 cookie=${5:-} wrk_pid
    # wrk itself in the background (not a function's subshell), so that
    # the cleanup's signal reaches it.
    taskset -c 0 wrk -t1 -c"$conns" -d"${secs}s" -H "Host: $host" ${cookie:+-H "Cookie: $cookie"} "$url" >"$work/conns-wrk.log" 2>&1 &
    wrk_pid=$!
    BENCH_PIDS+=("$wrk_pid")
    sleep "$(awk -v s="$secs" 'BEGIN{print s / 2}')"
    conns_rss=$(rss_kib "$pid")
    wait "$wrk_pid" || { bench_forget "$wrk_pid"; die "wrk failed: $(cat "$work/conns-wrk.log")"; }
    bench_forget "$wrk_pid"
    ! grep -q "Non-2xx" "$work/conns-wrk.log" || die "non-2xx answers: $(cat "$work/conns-wrk.log")"
    # A refused or dropped connection means fewer were held than asked for.
    if grep -q "Socket errors" "$work/conns-wrk.log"; then
        echo "bench: $conns connections: $(grep 'Socket errors' "$work/conns-wrk.log")" >&2
    fi
}

case_conns() {
    local many=${CONNS_MANY:-512}
    [[ "$many" =~ ^[0-9]+$ && "$many" -gt 64 && "$many" -le 4000 ]] || die "CONNS_MANY: 65..4000"
    # nginx takes two slots per busy connection (client and upstream), and
    # touches every slot it is given: room for these connections only.
    local NGINX_CONNS=$((2 * many + 256))
    echo "## Memory per keep-alive connection: RSS at wrk -c64 and -c$many (1 KiB GET, ${secs}s each), $runs run(s)"
    bench_start_upstream "$up_port"
    local peers=(nginx haproxy pp-auth)
    declare -A few lot per
    local p i
    for i in $(seq "$runs"); do
        local line="run $i:"
        for p in $(order "$i" "${peers[@]}"); do
            # Started afresh for every run: an allocator keeps what it
            # once held, so a second run would start at the first's peak.
            local url host c="" pid
            case $p in
              nginx) bench_start_nginx_proxy "$ngx_port" "$up_port"; pid=$ngx_pid
                     url=http://127.0.0.1:$ngx_port/1k.txt; host=127.0.0.1:$ngx_port ;;
              haproxy) bench_start_haproxy "$hap_port" "$up_port"; pid=$hap_pid
                       url=http://127.0.0.1:$hap_port/1k.txt; host=127.0.0.1:$hap_port ;;
              pp-auth) pp_with_routes "conns$i" "127.0.0.1:$up_port"; pid=$px_pid; c=$cookie
                       url=http://127.0.0.1:$px_port/1k.txt; host=s.apps.bench ;;
            esac
            bench_check "$p" "$url" "$host" "$c"
            rss_under_load "$pid" 64 "$url" "$host" "$c"
            local a=$conns_rss
            rss_under_load "$pid" "$many" "$url" "$host" "$c"
            bench_stop "$pid"
            few[$p]+=" $a"; lot[$p]+=" $conns_rss"
            per[$p]+=" $(awk -v a="$a" -v b="$conns_rss" -v n="$((many - 64))" 'BEGIN{printf "%.1f", (b - a) / n}')"
            line+=" $p $a -> $conns_rss KiB |"
        done
        echo "${line% |}"
    done
    echo
    echo "| peer | RSS at 64 conns KiB | RSS at $many conns KiB | KiB per extra connection | vs nginx |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    local m_ngx m
    # shellcheck disable=SC2086 # word-split the space-separated samples
    m_ngx=$(median ${per[nginx]})
    for p in "${peers[@]}"; do
        # shellcheck disable=SC2086
        m=$(median ${per[$p]})
        # shellcheck disable=SC2086
        echo "| $p | $(median ${few[$p]}) | $(median ${lot[$p]}) | $m | $(ratio "$m" "$m_ngx") |"
    done
    echo
    echo "nginx: master + worker. Each connection's cost is both its sockets' state in user space (client and upstream side); kernel socket buffers are not in RSS."
    bench_stop_all
}

case "$case" in
    http) case_http ;;
    conns) case_conns ;;
    stream) case_stream ;;
    h2) case_h2 ;;
    tls) case_tls ;;
    ws) case_ws ;;
    sse) case_sse ;;
    propagation) case_propagation ;;
    table) case_table ;;
    all)
        case_http; echo
        case_h2; echo
        case_tls; echo
        case_ws; echo
        case_sse; echo
        case_stream; echo
        case_conns; echo
        case_propagation; echo
        case_table
        ;;
esac
