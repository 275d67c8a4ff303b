#!/usr/bin/env bash
# One node on PostgreSQL, the write cases of the S3 benchmark: compares
# cistern builds in one run (for example the build before a change and the
# build after it). Each build gets a fresh database; TLS to the database is
# off so that only Cistern differs.
#
#   bash bench/postgres.sh [BINARY...]     # default: target/release/cistern
#
# PG names the server (default postgres://postgres@127.0.0.1:5432), SCALE
# multiplies the operation counts (default 1), CASES lists the cases to run,
# comma-separated (default "PUT 4 KiB,PUT 1 MiB"; a GET case reads what
# the PUT case of its size wrote, so "4 KiB" runs both).
set -euo pipefail
cd "$(dirname "$0")/.."
pg="${PG:-postgres://postgres@127.0.0.1:5432}"
scale="${SCALE:-1}"
IFS=, read -ra cases <<< "${CASES:-PUT 4 KiB,PUT 1 MiB}"
binaries=("$@")
[ ${#binaries[@]} -gt 0 ] || binaries=(target/release/cistern)
cargo build --release --example bench
bench=target/release/examples/bench
work=$(mktemp -d -p "${BENCH_DIR:-$PWD/target}" bench-pg.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
key=benchadmin secret=bench-secret-123
wait_port() { for _ in $(seq 1 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

echo "$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r); $(psql "$pg/postgres" -Atc 'SHOW server_version') on the same machine"
for binary in "${binaries[@]}"; do
    db="cistern_bench_$(date +%s%N)"
    psql "$pg/postgres" -qc "CREATE DATABASE $db"
    rm -rf "$work/data"
    CISTERN_ROOT_USER=$key CISTERN_ROOT_PASSWORD=$secret CISTERN_DATABASE_URL="$pg/$db?sslmode=disable" \
        "$binary" serve --data-dir "$work/data" --s3-listen 127.0.0.1:9300 --web-listen 127.0.0.1:9301 --log-level warn &
    pid=$!
    wait_port 9300
    echo
    echo "## $binary"
    for case in "${cases[@]}"; do
        "$bench" --endpoint http://127.0.0.1:9300 --access-key $key --secret-key $secret \
            --server-pid $pid --label "$(basename "$binary")" --scale "$scale" --only "$case" | grep '^| [^s-]'
    done
    kill $pid; wait $pid || true
    psql "$pg/postgres" -qc "DROP DATABASE $db WITH (FORCE)"
done
