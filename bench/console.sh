#!/usr/bin/env bash
# Console part 2 benchmarks (examples/console_bench.rs) against a release
# build: a pool page with many members and groups, then gallery thumbnails
# of many camera-sized JPEGs with the S3 port's 4 KiB GET latency beside
# them. Run by hand; results go to docs/BENCHMARKS.md.
#
#   bash bench/console.sh [photos] [members] [groups]
set -euo pipefail
cd "$(dirname "$0")/.."
photos="${1:-1000}"
members="${2:-10000}"
groups="${3:-1000}"
cargo build --release --bin cistern --example console_bench
work=$(mktemp -d -p "${BENCH_DIR:-$PWD/target}" consolebench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
key=benchadmin secret=bench-secret-123
wait_port() { for _ in $(seq 1 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

echo "## machine"
echo "$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)"
echo
run() {
    CISTERN_ROOT_USER=$key CISTERN_ROOT_PASSWORD=$secret target/release/cistern serve \
        --data-dir "$work/$1" --s3-listen 127.0.0.1:9300 --web-listen 127.0.0.1:9301 --log-level warn &
    pid=$!
    wait_port 9301
    target/release/examples/console_bench --s3 http://127.0.0.1:9300 --web http://127.0.0.1:9301 \
        --user $key --password $secret --server-pid $pid --data-dir "$work/$1" "${@:2}"
    kill $pid; wait $pid || true
}
echo "## pool page"
run pool --photos 0 --members "$members" --groups "$groups"
echo
echo "## thumbnails (server defaults: one thumbnail worker)"
run gallery --members 0 --photos "$photos"
