#!/usr/bin/env bash
# Quick side-by-side: 1 KiB GET direct to an nginx upstream vs through
# platform-proxy (host route), wrk -t1 -c64, alternating runs, medians.
# Load generator pinned to core 0, upstream and proxy to core 1.
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
curl -s -o /dev/null -w 'route create: %{http_code}\n' -H 'Host: api.bench' -H "Authorization: Bearer $token" \
  -H 'content-type: application/json' "http://127.0.0.1:$px_port/api/v1/routes" \
  -d "{\"owner_type\":\"app_instance\",\"owner_id\":\"b\",\"endpoint_name\":\"web\",\"route_mode\":\"subdomain\",\"route_host\":\"b\",\"upstream\":{\"targets\":[\"127.0.0.1:$up_port\"]}}"
sleep 0.2
rss_idle=$(awk '/VmRSS/{print $2}' /proc/$px_pid/status)

run() { # name url host -> "rps p99ms"
  local out
  out=$(taskset -c 0 wrk -t1 -c64 -d"${secs}s" --latency -H "Host: $3" "$2" 2>&1)
  local rps p99
  rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  p99=$(awk '$1=="99%"{v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")
  echo "$rps $p99"
}
declare -a d_rps d_p99 p_rps p_p99
for i in $(seq "$runs"); do
  read -r r p < <(run direct "http://127.0.0.1:$up_port/1k.txt" "127.0.0.1:$up_port"); d_rps+=("$r"); d_p99+=("$p")
  read -r r p < <(run proxy "http://127.0.0.1:$px_port/1k.txt" "b.apps.bench"); p_rps+=("$r"); p_p99+=("$p")
  echo "run $i: direct ${d_rps[-1]} req/s p99 ${d_p99[-1]} ms | proxy ${p_rps[-1]} req/s p99 ${p_p99[-1]} ms"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
rss_after=$(awk '/VmRSS/{print $2}' /proc/$px_pid/status)
md=$(median "${d_rps[@]}"); mp=$(median "${p_rps[@]}")
echo
echo "median direct: $md req/s, p99 $(median "${d_p99[@]}") ms"
echo "median proxy:  $mp req/s, p99 $(median "${p_p99[@]}") ms"
awk -v a="$mp" -v b="$md" 'BEGIN{printf "proxy/direct: %.2f\n", a/b}'
echo "proxy RSS idle: ${rss_idle} KiB, after load: ${rss_after} KiB"
