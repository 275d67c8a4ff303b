#!/usr/bin/env bash
# Pool benchmark (examples/pool_bench.rs) against a release build, with the
# storage engine's own 1 MiB PUT throughput (examples/bench.rs) measured in
# the same run for comparison. Run by hand; results go to docs/BENCHMARKS.md.
#
#   bash bench/pool.sh [members] [idle-streams]
set -euo pipefail
cd "$(dirname "$0")/.."
members="${1:-2000}"
idle="${2:-10000}"
cargo build --release --bin cistern --example bench --example pool_bench
work=$(mktemp -d -p "${BENCH_DIR:-$PWD/target}" poolbench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
key=benchadmin secret=bench-secret-123
wait_port() { for _ in $(seq 1 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# Every event stream is a socket on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo "## machine"
echo "$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), open files $(ulimit -n)"
echo
echo "## storage engine: S3 PUT 1 MiB"
CISTERN_ROOT_USER=$key CISTERN_ROOT_PASSWORD=$secret target/release/cistern serve \
    --data-dir "$work/s3" --s3-listen 127.0.0.1:9300 --web-listen 127.0.0.1:9301 --log-level warn &
pid=$!
wait_port 9300
target/release/examples/bench --endpoint http://127.0.0.1:9300 --access-key $key --secret-key $secret \
    --server-pid $pid --label cistern --only "PUT 1 MiB"
kill $pid; wait $pid || true
echo
echo "## pool"
CISTERN_ROOT_USER=$key CISTERN_ROOT_PASSWORD=$secret target/release/cistern serve \
    --data-dir "$work/pool" --s3-listen 127.0.0.1:9300 --web-listen 127.0.0.1:9301 --log-level warn &
pid=$!
wait_port 9301
target/release/examples/pool_bench --web http://127.0.0.1:9301 --user $key --password $secret \
    --server-pid $pid --members "$members" --listeners "$members"
kill $pid; wait $pid || true
echo
echo "## $idle idle event streams on a fresh server"
CISTERN_ROOT_USER=$key CISTERN_ROOT_PASSWORD=$secret target/release/cistern serve \
    --data-dir "$work/idle" --s3-listen 127.0.0.1:9300 --web-listen 127.0.0.1:9301 --log-level warn &
pid=$!
wait_port 9301
target/release/examples/pool_bench --web http://127.0.0.1:9301 --user $key --password $secret \
    --server-pid $pid --idle-streams "$idle" --idle-only 1
kill $pid; wait $pid || true
