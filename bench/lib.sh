# shellcheck shell=bash
# Shared pieces of bench/quick.sh and bench/run.sh; source it, then call
# bench_init. Every server binds 127.0.0.1, every wait loop is bounded, and
# the EXIT trap stops every process started through here (by its pid).
#
# Pinning (2 cores): load generators run on core 0 (bench_load), servers
# (upstream, peers, platform-proxy) on core 1 (bench_server).

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_PIDS=()
declare -A BENCH_LOGS=()
BENCH_TOKEN=bench-token-0123456789abcdef
# PP_BIN runs another build of platform-proxy (an A/B across cases); the
# default is the release build, rebuilt when older than its sources.
BENCH_BIN=${PP_BIN:-$BENCH_ROOT/target/release/platform-proxy}
BENCH_TOOLS=$BENCH_ROOT/target/release
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY_BIN=$(command -v haproxy || echo /usr/sbin/haproxy)
CHP_BIN=$BENCH_ROOT/bench/node/node_modules/.bin/configurable-http-proxy
# nginx preallocates (and touches) per-connection state for all of
# worker_connections, so an oversized value inflates its RSS; the WebSocket
# case raises it to fit its connection count.
NGINX_CONNS=4096
# BENCH_EQUAL_WORK=1: nginx and HAProxy also do what platform-proxy does to
# every proxied request, authenticated or not (docs/routing.md, "What the
# upstream receives"): the five X-Forwarded-* fields set, and one random
# correlation id sent to the upstream and returned to the client. The
# peers stay plain otherwise: no authentication, no identity fields, so
# pp-public is their like-for-like column. Issue 3's targets are against
# the plain peers; this says how much of a gap is that work.
# The $ names are nginx's variables, not the shell's.
# shellcheck disable=SC2016
NGINX_EQUAL_WORK='proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Host $http_host; proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Port $server_port; proxy_set_header X-Forwarded-Prefix /;
      proxy_set_header X-Correlation-Id $request_id; add_header X-Correlation-Id $request_id always;'
HAPROXY_EQUAL_WORK='  option forwardfor
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request set-header X-Forwarded-Proto %[ssl_fc,iif(https,http)]
  http-request set-header X-Forwarded-Port %[dst_port]
  http-request set-header X-Forwarded-Prefix /
  http-request set-var(txn.cid) uuid
  http-request set-header X-Correlation-Id %[var(txn.cid)]
  http-after-response set-header X-Correlation-Id %[var(txn.cid)]'

bench_init() {
    cd "$BENCH_ROOT" || exit 1
    work=$(mktemp -d)
    # mktemp makes the directory 0700; nginx's worker (not root) must read
    # it, or every answer is a 403 page and the numbers measure nothing.
    chmod 755 "$work"
    head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 >"$work/1k.txt"
    chmod 644 "$work/1k.txt"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

die() { echo "bench: $*" >&2; exit 1; }

# Stops every process started with bench_spawn: TERM, up to 5 s, then KILL.
bench_stop_all() {
    local pid i
    for pid in "${BENCH_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for i in $(seq 50); do
        local alive=0
        for pid in "${BENCH_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for pid in "${BENCH_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "${BENCH_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    BENCH_PIDS=()
}

# bench_stop PID: stops one process started with bench_spawn (TERM, up to
# 5 s, then KILL) and forgets it.
bench_stop() {
    local i
    kill "$1" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$1" 2>/dev/null; then kill -KILL "$1" 2>/dev/null || true; fi
    wait "$1" 2>/dev/null || true
    bench_forget "$1"
}

# bench_forget PID: drops a pid already waited for, so the cleanup never
# signals a number the kernel may have handed to someone else.
bench_forget() {
    local keep=() pid
    for pid in "${BENCH_PIDS[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done
    BENCH_PIDS=("${keep[@]}")
}

bench_cleanup() {
    bench_stop_all
    # BENCH_KEEP=1 keeps the configs and logs for a look afterwards.
    if [ -n "${BENCH_KEEP:-}" ]; then
        [ -n "${work:-}" ] && echo "bench: kept $work" >&2
    else
        [ -n "${work:-}" ] && rm -rf "$work"
    fi
    return 0
}

# bench_spawn LOG CMD... : starts CMD pinned to core 1 in the background,
# logging to LOG; the pid lands in $spawned and in BENCH_PIDS.
bench_spawn() {
    local log=$1
    shift
    taskset -c 1 "$@" >"$log" 2>&1 &
    spawned=$!
    BENCH_PIDS+=("$spawned")
    BENCH_LOGS[$spawned]=$log
}

# bench_load CMD... : runs a load generator pinned to core 0.
bench_load() { taskset -c 0 "$@"; }

# Refuses a port someone already listens on: the numbers would be theirs.
bench_port_free() {
    local port
    for port in "$@"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            die "127.0.0.1:$port is taken; set BENCH_PORT_BASE to move the bench's ports"
        fi
    done
}

# bench_wait_tcp PORT [PID]: until something accepts on 127.0.0.1:PORT (at
# most 10 s; fails early if PID died).
bench_wait_tcp() {
    local port=$1 pid=${2:-} i
    for i in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "${BENCH_LOGS[$pid]:-/dev/null}" >&2
            die "process $pid died before listening on $port"
        fi
        sleep 0.1
    done
    die "nothing listens on 127.0.0.1:$port after 10 s"
}

# newer_than FILE DIR...: prints one source file newer than FILE (none when
# FILE is up to date). Test-only files do not change a release binary.
newer_than() {
    local file=$1
    shift
    find "$@" -newer "$file" \( -name '*.rs' -o -name Cargo.toml -o -name '*.sql' \) \
        -not -path '*/tests/*' -not -path '*/benches/*' -not -name tests.rs -print -quit
}

# bench_build proxy|tools: builds platform-proxy (and with `tools` the bench
# tools too) in release mode when missing or older than their sources.
bench_build() {
    if [ -n "${PP_BIN:-}" ]; then
        [ -x "$PP_BIN" ] || die "PP_BIN=$PP_BIN: not an executable"
    elif [ ! -x "$BENCH_BIN" ] || [ -n "$(newer_than "$BENCH_BIN" crates)" ]; then
        echo "bench: building platform-proxy (release)" >&2
        cargo build --release -p platform-proxy
        # Up to date now, even when cargo found nothing to do.
        touch "$BENCH_BIN"
    fi
    if [ "${1:-}" = tools ]; then
        local t
        for t in wsload wsecho sseload sseserve propagate sink; do
            if [ ! -x "$BENCH_TOOLS/$t" ] || [ -n "$(newer_than "$BENCH_TOOLS/$t" bench/tools)" ]; then
                echo "bench: building bench tools (release)" >&2
                cargo build --release -p pp-bench-tools
                touch "$BENCH_TOOLS"/{wsload,wsecho,sseload,sseserve,propagate,sink}
                break
            fi
        done
    fi
}

# --- servers -----------------------------------------------------------------

# bench_start_upstream PORT [H2PORT]: nginx serving $work/1k.txt (HTTP/1.1,
# and h2c prior knowledge on H2PORT). Sets up_pid.
bench_start_upstream() {
    local port=$1 h2=${2:-} h2srv=""
    [ -n "$h2" ] && h2srv="server { listen 127.0.0.1:$h2 http2; root $work; }"
    cat >"$work/upstream.conf" <<NGX
worker_processes 1;
daemon off;
pid $work/upstream.pid;
error_log $work/upstream-error.log;
worker_rlimit_nofile 20000;
events { worker_connections $NGINX_CONNS; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$port; root $work; }
  $h2srv
}
NGX
    bench_spawn "$work/upstream.log" "$NGINX_BIN" -c "$work/upstream.conf"
    up_pid=$spawned
    bench_wait_tcp "$port" "$up_pid"
}

# bench_start_sink PORT: the upload case's far end (bench/tools sink.rs),
# which answers only once it has read the whole body. Sets sink_pid.
bench_start_sink() {
    bench_spawn "$work/sink.log" "$BENCH_TOOLS/sink" --listen "127.0.0.1:$1"
    sink_pid=$spawned
    bench_wait_tcp "$1" "$sink_pid"
}

# bench_start_nginx_proxy PORT UPPORT [H2PORT] [WSPORT]: nginx as a reverse
# proxy with upstream keep-alive; /ws goes to WSPORT with the upgrade
# headers; with BENCH_SINK_PORT, /sink goes to that sink, the body streamed
# as it comes (nginx would otherwise store a whole upload before sending
# it). Sets ngx_pid.
bench_start_nginx_proxy() {
    local port=$1 up=$2 h2=${3:-} ws=${4:-}
    local loc='proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";'
    [ -n "${BENCH_EQUAL_WORK:-}" ] && loc+=" $NGINX_EQUAL_WORK"
    local wsup="" wsloc="" h2srv="" sinkloc=""
    [ -n "${BENCH_SINK_PORT:-}" ] && sinkloc="location = /sink { proxy_pass http://127.0.0.1:$BENCH_SINK_PORT;
      proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_request_buffering off; }"
    if [ -n "$ws" ]; then
        wsup="upstream ws { server 127.0.0.1:$ws; }"
        wsloc="location /ws { proxy_pass http://ws; proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade; proxy_set_header Connection \"upgrade\";
      proxy_read_timeout 1h; }"
    fi
    [ -n "$h2" ] && h2srv="server { listen 127.0.0.1:$h2 http2; location / { $loc } }"
    # BENCH_TLS_PORT (with BENCH_TLS_CERT and BENCH_TLS_KEY): a TLS
    # listener too, HTTP/2 by ALPN.
    [ -n "${BENCH_TLS_PORT:-}" ] && h2srv+=" server { listen 127.0.0.1:$BENCH_TLS_PORT ssl http2;
      ssl_certificate $BENCH_TLS_CERT; ssl_certificate_key $BENCH_TLS_KEY; location / { $loc } }"
    cat >"$work/nginx-proxy.conf" <<NGX
worker_processes 1;
daemon off;
pid $work/nginx-proxy.pid;
error_log $work/nginx-proxy-error.log;
worker_rlimit_nofile 20000;
events { worker_connections $NGINX_CONNS; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$up; keepalive 64; }
  $wsup
  server { listen 127.0.0.1:$port; client_max_body_size 0; location / { $loc } $wsloc $sinkloc }
  $h2srv
}
NGX
    bench_spawn "$work/nginx-proxy.log" "$NGINX_BIN" -c "$work/nginx-proxy.conf"
    ngx_pid=$spawned
    bench_wait_tcp "$port" "$ngx_pid"
}

# bench_start_haproxy PORT UPPORT [H2PORT]: mode http, http-reuse always,
# one thread. Sets hap_pid.
bench_start_haproxy() {
    local port=$1 up=$2 h2=${3:-}
    cat >"$work/haproxy.cfg" <<HAP
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:$port
  ${h2:+bind 127.0.0.1:$h2 proto h2}
  ${BENCH_TLS_PORT:+bind 127.0.0.1:$BENCH_TLS_PORT ssl crt $BENCH_TLS_PEM alpn h2,http/1.1}
${BENCH_EQUAL_WORK:+$HAPROXY_EQUAL_WORK}
  default_backend be
backend be
  server up 127.0.0.1:$up
HAP
    bench_spawn "$work/haproxy.log" "$HAPROXY_BIN" -db -f "$work/haproxy.cfg"
    hap_pid=$spawned
    bench_wait_tcp "$port" "$hap_pid"
}

# bench_start_chp PORT APIPORT UPPORT: configurable-http-proxy with the
# upstream as its default target. Sets chp_pid.
bench_start_chp() {
    local port=$1 api=$2 up=$3
    [ -x "$CHP_BIN" ] || die "configurable-http-proxy missing; run scripts/install-bench-deps.sh"
    CONFIGPROXY_AUTH_TOKEN=bench bench_spawn "$work/chp.log" node "$CHP_BIN" \
        --ip 127.0.0.1 --port "$port" --api-ip 127.0.0.1 --api-port "$api" \
        --default-target "http://127.0.0.1:$up" --log-level warn
    chp_pid=$spawned
    bench_wait_tcp "$port" "$chp_pid"
}

# bench_start_pp PORT TAG: platform-proxy with a fresh SQLite store. Sets
# px_port and px_pid. With PP_TLS_PORT (and BENCH_TLS_CERT, BENCH_TLS_KEY)
# it also serves TLS there, that certificate its default. PP_SERVER_EXTRA
# is added to its [server] table (one key per line).
bench_start_pp() {
    px_port=$1
    local tag=$2 tls_listen="" tls_cert=""
    if [ -n "${PP_TLS_PORT:-}" ]; then
        tls_listen="tls_listen = [\"127.0.0.1:$PP_TLS_PORT\"]"
        tls_cert="[[tls.certificates]]
cert = \"$BENCH_TLS_CERT\"
key = \"$BENCH_TLS_KEY\""
    fi
    cat >"$work/pp-$tag.toml" <<TOML
api_host = "api.bench"
apps_domain = "apps.bench"
[server]
listen = ["127.0.0.1:$px_port"]
$tls_listen
shutdown_grace_secs = 2
${PP_SERVER_EXTRA:-}
[store]
url = "sqlite://$work/pp-$tag.db"
[api]
bootstrap_token = "$BENCH_TOKEN"
[log]
level = "warn"
$tls_cert
TOML
    bench_spawn "$work/pp-$tag.log" "$BENCH_BIN" serve --config "$work/pp-$tag.toml"
    px_pid=$spawned
    local i
    for i in $(seq 100); do
        curl -s -o /dev/null -H 'Host: api.bench' "http://127.0.0.1:$px_port/healthz" && return 0
        kill -0 "$px_pid" 2>/dev/null || { cat "$work/pp-$tag.log" >&2; die "platform-proxy died"; }
        sleep 0.1
    done
    die "platform-proxy not healthy after 10 s"
}

pp_api() { curl -s --max-time 10 -H 'Host: api.bench' -H 'content-type: application/json' "$@"; }

# pp_route HOST UPSTREAM [public]: creates a subdomain route; prints its id.
# An authenticated one belongs to org "bench", project "p".
pp_route() {
    local host=$1 up=$2 public=${3:-}
    local extra='"org_id":"bench","project_id":"p"'
    [ -n "$public" ] && extra='"policy":{"public":true}'
    pp_api -H "Authorization: Bearer $BENCH_TOKEN" "http://127.0.0.1:$px_port/api/v1/routes" \
        -d "{\"owner_type\":\"app_instance\",\"owner_id\":\"$host\",\"endpoint_name\":\"web\",$extra,\"route_mode\":\"subdomain\",\"route_host\":\"$host\",\"upstream\":{\"targets\":[\"$up\"]}}" \
        | sed -n 's/.*"id":"\([0-9a-f-]*\)".*/\1/p'
}

# pp_route_pair UPSTREAM: on the running proxy, the public route b and the
# authenticated route s to UPSTREAM, and a session on s. Sets cookie.
pp_route_pair() {
    [ -n "$(pp_route b "$1" public)" ] || die "could not create the public route"
    local id
    id=$(pp_route s "$1")
    [ -n "$id" ] || die "could not create the authenticated route"
    cookie=$(pp_sign_in "$id" s.apps.bench)
    [ -n "$cookie" ] || die "could not sign in to the authenticated route"
}

# bench_target public|auth: the Host (host) and header arguments (hdr) of a
# request to that route of pp_route_pair.
bench_target() {
    case $1 in
      public) host=b.apps.bench; hdr=() ;;
      auth) host=s.apps.bench; hdr=(-H "Cookie: $cookie") ;;
      *) die "public or auth, not '$1'" ;;
    esac
}

# pp_sign_in ROUTE_ID HOST: a service account of the project mints a
# browser session; its launch code is redeemed like a browser would. Prints
# the session cookie (`name=value`).
pp_sign_in() {
    local route_id=$1 host=$2 svc open_url launch_path
    svc=$(pp_api -H "Authorization: Bearer $BENCH_TOKEN" "http://127.0.0.1:$px_port/api/v1/service-tokens" \
        -d '{"name":"bench","org_id":"bench","project_id":"p","role":"member"}' \
        | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
    [ -n "$svc" ] || die "could not mint a service token"
    sleep 0.2
    open_url=$(pp_api -X POST -H "Authorization: Bearer $svc" \
        "http://127.0.0.1:$px_port/api/v1/routes/$route_id/browser-session" \
        | sed -n 's/.*"open_url":"\([^"]*\)".*/\1/p')
    launch_path="/${open_url#*://*/}"
    curl -s --max-time 10 -o /dev/null -D - -H "Host: $host" "http://127.0.0.1:$px_port$launch_path" \
        | sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\);.*/\1/p' | head -n1
}

# --- measuring ---------------------------------------------------------------

# bench_check NAME URL HOST [COOKIE]: one GET must answer 200.
bench_check() {
    local code
    code=$(curl -s --max-time 10 -o "$work/check.txt" -w '%{http_code}' -H "Host: $3" ${4:+-H "Cookie: $4"} "$2" || true)
    [ "$code" = 200 ] || { cat "$work/check.txt" >&2 2>/dev/null; die "$1: GET $2 (Host: $3) answered $code"; }
}

# to_ms VALUE: wrk/h2load durations (123.4us, 1.2ms, 1.1s) in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN{
        if (v ~ /us$/) { sub(/us$/,"",v); v=v/1000 }
        else if (v ~ /ms$/) { sub(/ms$/,"",v) }
        else if (v ~ /s$/) { sub(/s$/,"",v); v=v*1000 }
        printf "%.3f", v }'
}

# BENCH_BROWSER=1: every wrk request also carries the fields Chromium
# sends with a script's fetch over HTTP/1.1 (twelve besides Host and the
# cookie; `Connection: keep-alive` among them since the fifteenth
# session), where wrk sends Host alone. Every proxy then parses them and passes them on:
# the per-field costs a real client's requests have and a bare one hides.
BENCH_FIELDS=()
if [ -n "${BENCH_BROWSER:-}" ]; then
    BENCH_FIELDS=(
        -H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36'
        -H 'Connection: keep-alive'
        -H 'Accept: */*' -H 'Accept-Encoding: gzip, deflate, br, zstd' -H 'Accept-Language: en-US,en;q=0.9'
        -H 'Referer: http://apps.bench/lab' -H 'Sec-Fetch-Dest: empty' -H 'Sec-Fetch-Mode: cors'
        -H 'Sec-Fetch-Site: same-origin' -H 'sec-ch-ua: "Chromium";v="156", "Not-A.Brand";v="24"'
        -H 'sec-ch-ua-mobile: ?0' -H 'sec-ch-ua-platform: "Linux"' -H 'Priority: u=1, i'
    )
fi

# BENCH_CONNS: wrk's connections in the HTTP/1.1 cases (bench_wrk, and
# counts.sh and kernel.sh); 64 is issue 3's setting. The proxies' ratios
# move with it (docs/performance.md, sixteenth session), so a sweep
# (8, 64, 256) says whether a gap holds at every load.
BENCH_CONNS=${BENCH_CONNS:-64}
[[ "$BENCH_CONNS" =~ ^[0-9]+$ && "$BENCH_CONNS" -ge 1 && "$BENCH_CONNS" -le 4096 ]] ||
    die "BENCH_CONNS: 1..4096, not '$BENCH_CONNS'"

# bench_wrk NAME SECS URL HOST [COOKIE]: sets wrk_rps and wrk_p99 (ms).
# Refuses to report a run with non-2xx answers: an error page is no result.
bench_wrk() {
    local name=$1 secs=$2 url=$3 host=$4 cookie=${5:-} out
    out=$(bench_load wrk -t1 -c"$BENCH_CONNS" -d"${secs}s" --latency -H "Host: $host" ${cookie:+-H "Cookie: $cookie"} \
        "${BENCH_FIELDS[@]}" "$url" 2>&1) || true
    if grep -q "Non-2xx" <<<"$out"; then
        echo "$out" >&2
        die "$name: wrk saw non-2xx answers; refusing to report them"
    fi
    wrk_rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
    wrk_requests=$(awk '/requests in/{print $1}' <<<"$out")
    wrk_p99=$(awk '$1=="99%"{print $2}' <<<"$out")
    [ -n "$wrk_rps" ] && [ -n "$wrk_p99" ] || { echo "$out" >&2; die "$name: no numbers from wrk"; }
    wrk_p99=$(to_ms "$wrk_p99")
    if grep -q "Socket errors" <<<"$out"; then
        echo "bench: $name: $(grep 'Socket errors' <<<"$out")" >&2
    fi
}

# bench_h2load NAME SECS URL [HEADER...]: h2c prior knowledge, 64 clients
# (H2LOAD_CLIENTS sets another count), 10 streams each. Sets h2_rps, h2_requests (succeeded), h2_mean and h2_max
# (ms; h2load prints no percentiles). Refuses runs with failed or non-2xx requests.
bench_h2load() {
    local name=$1 secs=$2 url=$3 out
    shift 3
    local hdrs=() h
    for h in "$@"; do hdrs+=(-H "$h"); done
    out=$(bench_load h2load -t1 -c"${H2LOAD_CLIENTS:-64}" -m10 -D "$secs" "${hdrs[@]}" "$url" 2>&1) || true
    h2_out=$out
    local bad
    bad=$(awk '/^status codes:/{print $5+$7+$9} /^requests:/{print $10+$12+$14}' <<<"$out" | awk '{s+=$1} END{print s+0}')
    if ! grep -q '^Application protocol: h2c\?$' <<<"$out"; then
        echo "$out" >&2
        die "$name: h2load did not speak HTTP/2"
    fi
    if ! grep -q '^status codes:' <<<"$out" || [ "$bad" != 0 ]; then
        echo "$out" >&2
        die "$name: h2load saw failed or non-2xx requests; refusing to report them"
    fi
    h2_rps=$(awk '/^finished in/{print $4}' <<<"$out")
    h2_requests=$(awk '/^requests:/{print $8}' <<<"$out")
    h2_mean=$(to_ms "$(awk '/^time for request:/{print $6}' <<<"$out")")
    h2_max=$(to_ms "$(awk '/^time for request:/{print $5}' <<<"$out")")
}

# Core time a process has used, user and system, in clock ticks:
# `cpu_ticks PID` prints "USER SYSTEM".
cpu_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }

# cpu_sum PID: user + system clock ticks of PID and its children (nginx's
# master and worker).
cpu_sum() {
    local p
    for p in "$1" $(pgrep -P "$1" || true); do
        awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true
    done | awk '{s += $1} END{print s + 0}'
}

# per_request_us TICKS_BEFORE TICKS_AFTER REQUESTS: core time a request, µs.
per_request_us() {
    awk -v t=$(($2 - $1)) -v k=$((1000000 / $(getconf CLK_TCK))) -v n="$3" \
        'BEGIN{printf "%.2f", (n > 0) ? t * k / n : 0}'
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

# own_ratios NAME_OF_RATES_ARRAY PEERS...: after a run, appends to own[p]
# each peer's rate in that run over the faster of nginx and HAProxy in the
# same run. Their median is steadier than a ratio of medians when the
# machine's speed drifts between runs (each run's peers are measured
# moments apart).
own_ratios() {
    local -n run_rate=$1
    shift
    local best p
    best=$(awk -v a="${run_rate[nginx]}" -v b="${run_rate[haproxy]}" 'BEGIN{print (a > b) ? a : b}')
    for p in "$@"; do
        own[$p]+=" $(awk -v a="${run_rate[$p]}" -v b="$best" 'BEGIN{printf "%.3f", (b > 0) ? a / b : 0}')"
    done
}

# rss_kib PID: resident memory of PID and its children (nginx's master and
# worker), in KiB.
rss_kib() {
    local total=0 p v
    for p in "$1" $(pgrep -P "$1" || true); do
        v=$(awk '/^VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# rss_split PID: one process's resident memory as anonymous and file
# pages ("anon A KiB, file F KiB"): the binary's text touched is file
# pages, what it allocates anonymous ones.
rss_split() {
    awk '/^RssAnon/{a=$2} /^RssFile/{f=$2} END{printf "anon %s KiB, file %s KiB", a, f}' "/proc/$1/status" 2>/dev/null || true
}

# json_num KEY < line: a number (or null) from a flat JSON line.
json_num() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p"; }
