#!/usr/bin/env bash
# Installs what bench/run.sh needs on a fresh Debian machine where we are
# root: the peers (nginx, haproxy, configurable-http-proxy) and the load
# tools (wrk, h2load from nghttp2-client). The WebSocket load tool is ours
# (bench/tools, built by cargo).
#
# Idempotent: every step checks first and does nothing when already satisfied.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

say() { printf 'install-bench-deps: %s\n' "$*"; }

have() {
    # nginx and haproxy live in /usr/sbin, which a non-login PATH may lack.
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]
}

# --- Debian packages ---------------------------------------------------------
# command -> package that provides it
declare -A package_of=(
    [nginx]=nginx
    [haproxy]=haproxy
    [wrk]=wrk
    [h2load]=nghttp2-client
    [openssl]=openssl
    [node]=nodejs
    [npm]=npm
)
missing=()
for cmd in nginx haproxy wrk h2load openssl node npm; do
    if ! have "$cmd"; then
        missing+=("${package_of[$cmd]}")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    say "missing packages: ${missing[*]}; installing Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    # Keep package scripts from starting nginx on :80 or haproxy with its
    # default config; the bench runs its own, pinned, on loopback.
    temp_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        temp_policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$temp_policy"
        chmod 755 "$temp_policy"
        trap 'rm -f "$temp_policy"' EXIT
    fi
    say "apt-get update"
    apt-get update
    say "apt-get install ${missing[*]}"
    apt-get install -y --no-install-recommends "${missing[@]}"
    if [ -n "$temp_policy" ]; then
        rm -f "$temp_policy"
        trap - EXIT
    fi
else
    say "nginx, haproxy, wrk, h2load, node, npm already installed"
fi

# --- configurable-http-proxy (npm) -------------------------------------------
node_dir="$repo_root/bench/node"
lock="$node_dir/package-lock.json"
stamp="$node_dir/node_modules/.package-lock.sha256"
want="$(sha256sum "$lock" | cut -d' ' -f1)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && [ -x "$node_dir/node_modules/.bin/configurable-http-proxy" ]; then
    say "bench/node/node_modules up to date with package-lock.json"
else
    say "npm ci in bench/node"
    (cd "$node_dir" && npm ci --no-audit --no-fund)
    # Written after npm ci, which empties node_modules first.
    printf '%s\n' "$want" >"$stamp"
fi

say "done"
