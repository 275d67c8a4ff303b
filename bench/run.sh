#!/usr/bin/env bash
# Benchmarks Cistern with the aws-sdk-s3 client (examples/bench.rs), and in
# the same run the machine's limits and, when S3S_FS names an s3s-fs binary,
# s3s-fs as a peer. Run by hand; results go to docs/BENCHMARKS.md.
#
#   S3S_FS=/path/to/s3s-fs bash bench/run.sh [scale]
#
# `scale` multiplies the operation counts (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-1}"
cargo build --release --bin cistern --example bench
bench=target/release/examples/bench
work=$(mktemp -d -p "${BENCH_DIR:-$PWD/target}" bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
key=benchadmin secret=bench-secret-123

wait_port() { for _ in $(seq 1 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

echo "## machine"
echo "$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)"
echo
echo "## limits"
dd if=/dev/zero of="$work/dd" bs=1M count=1024 conv=fsync 2>&1 | tail -1 | sed 's/^/disk write, 1 GiB, conv=fsync: /'
dd if="$work/dd" of=/dev/null bs=1M 2>&1 | tail -1 | sed 's/^/cached read, 1 GiB: /'
rm -f "$work/dd"
"$bench" --loopback
echo

echo "## cistern"
CISTERN_ROOT_USER=$key CISTERN_ROOT_PASSWORD=$secret target/release/cistern serve \
    --data-dir "$work/cistern" --s3-listen 127.0.0.1:9300 --web-listen 127.0.0.1:9301 --log-level warn &
pid=$!
wait_port 9300
"$bench" --endpoint http://127.0.0.1:9300 --access-key $key --secret-key $secret --server-pid $pid --label cistern --scale "$scale"
kill $pid; wait $pid || true
echo
echo "## cistern, one 4 GiB object (memory stays flat)"
rm -rf "$work/cistern"
CISTERN_ROOT_USER=$key CISTERN_ROOT_PASSWORD=$secret target/release/cistern serve \
    --data-dir "$work/cistern" --s3-listen 127.0.0.1:9300 --web-listen 127.0.0.1:9301 --log-level warn &
pid=$!
wait_port 9300
"$bench" --endpoint http://127.0.0.1:9300 --access-key $key --secret-key $secret --server-pid $pid --label cistern --big-gib 4
kill $pid; wait $pid || true
echo

if [ -n "${S3S_FS:-}" ]; then
    echo "## s3s-fs"
    mkdir -p "$work/s3sfs"
    "$S3S_FS" --host 127.0.0.1 --port 9310 --access-key $key --secret-key $secret "$work/s3sfs" >/dev/null 2>&1 &
    pid=$!
    wait_port 9310
    "$bench" --endpoint http://127.0.0.1:9310 --access-key $key --secret-key $secret --server-pid $pid --label s3s-fs --scale "$scale"
    kill $pid; wait $pid || true
fi
