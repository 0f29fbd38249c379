#!/usr/bin/env bash
# Builds platform-proxy with profile-guided optimization: an instrumented
# build runs the proxy's hot paths under load (the benchmark's upstream,
# wrk and h2load on loopback: HTTP/1.1 with a browser's fields through an
# authenticated route, a public route, HTTP/2), its profile is merged, and
# the release build is made again with it. The compiler then lays out the
# code that runs per request together and its likely branches straight:
# less user time a request and fewer of the binary's pages resident
# (docs/performance.md, nineteenth session).
#
# Usage: scripts/build-pgo.sh   (after scripts/install-bench-deps.sh)
# Output: target/pgo/release/platform-proxy. About twice a release
# build's time. Needs rustup's llvm-tools component (added when missing).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf 'build-pgo: %s\n' "$*"; }

sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')
profdata="$sysroot/lib/rustlib/$host/bin/llvm-profdata"
if [ ! -x "$profdata" ]; then
    say "adding rustup's llvm-tools component"
    rustup component add llvm-tools-preview
fi
[ -x "$profdata" ] || { say "llvm-profdata not found at $profdata"; exit 1; }
for tool in nginx wrk h2load; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] \
        || { say "$tool is needed: run scripts/install-bench-deps.sh"; exit 1; }
done

data=$root/target/pgo-data
rm -rf "$data"
mkdir -p "$data"
say "instrumented build (target/pgo-gen)"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$data" \
    cargo build --release --locked --target-dir target/pgo-gen -p platform-proxy
gen=$root/target/pgo-gen/release/platform-proxy

# The training runs: bench/ab.sh starts the upstream and the proxy (the
# same binary on both sides), makes the routes, signs in and drives the
# load; each proxy writes its profile when it exits.
say "training: HTTP/1.1 authenticated with a browser's fields, public, HTTP/2"
BENCH_BROWSER=1 bench/ab.sh "$gen" "$gen" 1 5 auth >/dev/null
bench/ab.sh "$gen" "$gen" 1 4 public >/dev/null
bench/ab.sh "$gen" "$gen" 1 4 auth h2 >/dev/null
ls "$data"/*.profraw >/dev/null 2>&1 || { say "the training wrote no profile"; exit 1; }
"$profdata" merge -o "$root/target/pgo.profdata" "$data"

say "optimized build (target/pgo)"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$root/target/pgo.profdata" \
    cargo build --release --locked --target-dir target/pgo -p platform-proxy
say "done: target/pgo/release/platform-proxy"
