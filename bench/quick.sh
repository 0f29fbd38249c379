#!/usr/bin/env bash
# Quick side-by-side: 1 KiB GET direct to an nginx upstream vs through
# platform-proxy on a public host route (transport only) and on an
# authenticated one (session cookie opened, revocation checked, route
# authorized, identity headers set on every request), wrk -t1 -c64,
# alternating runs, medians. Load generator pinned to core 0, upstream and
# proxy to core 1.
# Usage: bench/quick.sh [runs] [seconds]   (needs nginx, wrk; release build)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${1:-3}
secs=${2:-10}
bin=target/release/platform-proxy
[ -x "$bin" ] || cargo build --release -p platform-proxy
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"' EXIT

up_port=18081; px_port=18080
head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 > "$work/1k.txt"
# mktemp makes the directory 0700; nginx's worker (not root) must read it,
# or every answer is a 403 page and the numbers measure nothing.
chmod 755 "$work"; chmod 644 "$work/1k.txt"
cat > "$work/nginx.conf" <<NGX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server { listen 127.0.0.1:$up_port; root $work; keepalive_requests 1000000; }
}
NGX
taskset -c 1 "$nginx_bin" -c "$work/nginx.conf"

token=bench-token-0123456789abcdef
cat > "$work/pp.toml" <<TOML
api_host = "api.bench"
apps_domain = "apps.bench"
[server]
listen = ["127.0.0.1:$px_port"]
[store]
url = "sqlite://$work/pp.db"
[api]
bootstrap_token = "$token"
[log]
level = "warn"
TOML
taskset -c 1 "$bin" serve --config "$work/pp.toml" 2>"$work/pp.log" &
px_pid=$!
for _ in $(seq 50); do curl -s -o /dev/null -H 'Host: api.bench' "http://127.0.0.1:$px_port/healthz" && break; sleep 0.1; done
api() { curl -s -H 'Host: api.bench' -H 'content-type: application/json' "$@"; }
api -o /dev/null -w 'public route create: %{http_code}\n' -H "Authorization: Bearer $token" \
  "http://127.0.0.1:$px_port/api/v1/routes" \
  -d "{\"owner_type\":\"app_instance\",\"owner_id\":\"b\",\"endpoint_name\":\"web\",\"route_mode\":\"subdomain\",\"route_host\":\"b\",\"policy\":{\"public\":true},\"upstream\":{\"targets\":[\"127.0.0.1:$up_port\"]}}"
route_id=$(api -H "Authorization: Bearer $token" "http://127.0.0.1:$px_port/api/v1/routes" \
  -d "{\"owner_type\":\"app_instance\",\"owner_id\":\"s\",\"endpoint_name\":\"web\",\"org_id\":\"bench\",\"project_id\":\"p\",\"route_mode\":\"subdomain\",\"route_host\":\"s\",\"upstream\":{\"targets\":[\"127.0.0.1:$up_port\"]}}" \
  | sed -n 's/.*"id":"\([0-9a-f-]*\)".*/\1/p')
# A service account of the project mints a browser session; its launch
# code is redeemed like a browser would, and wrk carries the cookie.
svc=$(api -H "Authorization: Bearer $token" "http://127.0.0.1:$px_port/api/v1/service-tokens" \
  -d '{"name":"bench","org_id":"bench","project_id":"p","role":"member"}' | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
sleep 0.2
open_url=$(api -X POST -H "Authorization: Bearer $svc" "http://127.0.0.1:$px_port/api/v1/routes/$route_id/browser-session" \
  | sed -n 's/.*"open_url":"\([^"]*\)".*/\1/p')
launch_path="/${open_url#http://*/}"
cookie=$(curl -s -o /dev/null -D - -H "Host: s.apps.bench" "http://127.0.0.1:$px_port$launch_path" \
  | sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\);.*/\1/p' | head -n1)
[ -n "$cookie" ] || { echo "could not sign in to the authenticated route" >&2; exit 1; }
check=$(curl -s -o "$work/check.txt" -w "%{http_code}" -H "Host: s.apps.bench" -H "Cookie: $cookie" "http://127.0.0.1:$px_port/1k.txt")
echo "authenticated route with cookie: $check"
[ "$check" = 200 ] || { cat "$work/check.txt" >&2; exit 1; }
rss_idle=$(awk '/VmRSS/{print $2}' /proc/$px_pid/status)

run() { # name url host [cookie] -> "rps p99ms"
  local out
  out=$(taskset -c 0 wrk -t1 -c64 -d"${secs}s" --latency -H "Host: $3" ${4:+-H "Cookie: $4"} "$2" 2>&1)
  local rps p99
  if grep -q "Non-2xx" <<<"$out"; then
    echo "$1: wrk saw non-2xx answers; refusing to report them:" >&2
    echo "$out" >&2
    exit 1
  fi
  rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  p99=$(awk '$1=="99%"{v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")
  echo "$rps $p99"
}
declare -a d_rps d_p99 p_rps p_p99 a_rps a_p99
for i in $(seq "$runs"); do
  read -r r p < <(run direct "http://127.0.0.1:$up_port/1k.txt" "127.0.0.1:$up_port"); d_rps+=("$r"); d_p99+=("$p")
  read -r r p < <(run proxy "http://127.0.0.1:$px_port/1k.txt" "b.apps.bench"); p_rps+=("$r"); p_p99+=("$p")
  read -r r p < <(run auth "http://127.0.0.1:$px_port/1k.txt" "s.apps.bench" "$cookie"); a_rps+=("$r"); a_p99+=("$p")
  echo "run $i: direct ${d_rps[-1]} req/s p99 ${d_p99[-1]} ms | public ${p_rps[-1]} req/s p99 ${p_p99[-1]} ms | authenticated ${a_rps[-1]} req/s p99 ${a_p99[-1]} ms"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
rss_after=$(awk '/VmRSS/{print $2}' /proc/$px_pid/status)
md=$(median "${d_rps[@]}"); mp=$(median "${p_rps[@]}"); ma=$(median "${a_rps[@]}")
echo
echo "median direct:        $md req/s, p99 $(median "${d_p99[@]}") ms"
echo "median public route:  $mp req/s, p99 $(median "${p_p99[@]}") ms"
echo "median authenticated: $ma req/s, p99 $(median "${a_p99[@]}") ms"
awk -v a="$mp" -v b="$md" 'BEGIN{printf "public/direct: %.2f\n", a/b}'
awk -v a="$ma" -v b="$mp" 'BEGIN{printf "authenticated/public: %.2f\n", a/b}'
echo "proxy RSS idle: ${rss_idle} KiB, after load: ${rss_after} KiB"
