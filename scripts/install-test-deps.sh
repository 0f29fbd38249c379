#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine where we are
# root: Chromium + ChromeDriver (browser tests), nginx (auth_request example),
# openssl (the JWT tests make their RSA keys with its CLI),
# wrk (load smoke test), cargo-nextest, and the npm packages of tests/browser.
#
# Idempotent: every step checks first and does nothing when already satisfied,
# so CI can call it on every run.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

say() { printf 'install-test-deps: %s\n' "$*"; }

have() {
    # nginx lives in /usr/sbin, which a non-login PATH may lack.
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]
}

# --- Debian packages ---------------------------------------------------------
missing=()
for cmd in chromium chromedriver nginx wrk openssl; do
    if ! have "$cmd"; then
        missing+=("$cmd")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    say "missing commands: ${missing[*]}; installing Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    # Keep package scripts from starting nginx on :80; tests run their own.
    temp_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        temp_policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$temp_policy"
        chmod 755 "$temp_policy"
        trap 'rm -f "$temp_policy"' EXIT
    fi
    say "apt-get update"
    apt-get update
    say "apt-get install chromium chromium-driver nginx wrk openssl"
    apt-get install -y --no-install-recommends chromium chromium-driver nginx wrk openssl
    if [ -n "$temp_policy" ]; then
        rm -f "$temp_policy"
        trap - EXIT
    fi
else
    say "chromium, chromedriver, nginx, wrk, openssl already installed"
fi

# --- cargo-nextest -----------------------------------------------------------
if cargo nextest --version >/dev/null 2>&1; then
    say "cargo-nextest already installed ($(cargo nextest --version 2>/dev/null | head -n1))"
else
    say "cargo install cargo-nextest --locked"
    cargo install cargo-nextest --locked
fi

# --- npm packages for tests/browser -------------------------------------------
browser_dir="$repo_root/tests/browser"
lock="$browser_dir/package-lock.json"
stamp="$browser_dir/node_modules/.package-lock.sha256"
want="$(sha256sum "$lock" | cut -d' ' -f1)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "tests/browser/node_modules up to date with package-lock.json"
else
    say "npm ci in tests/browser"
    (cd "$browser_dir" && npm ci --no-audit --no-fund)
    # Written after npm ci, which empties node_modules first.
    printf '%s\n' "$want" >"$stamp"
fi

say "done"
