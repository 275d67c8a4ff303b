#!/usr/bin/env bash
# A cluster on one machine, by hand: PostgreSQL (already running), one s3s-fs
# process as the blob store, three Cistern nodes sharing both, and HAProxy
# from Debian in front. Runs the S3 benchmark and the pool benchmark through
# the load balancer, then the same on one node (PostgreSQL + s3s-fs, and
# SQLite + local disk) in the same run, and prints every figure with the
# server CPU summed over the nodes.
#
#   bash deploy/local-cluster/run.sh
#
# PG names the PostgreSQL server (default postgres://postgres@127.0.0.1:5432);
# S3S_FS the s3s-fs binary (default ~/.cache/cistern-tools/bin/s3s-fs, as
# .ci/run installs it); SCALE multiplies the S3 benchmark's operation counts
# (default 1); MEMBERS is the pool benchmark's member count (default 500).
# KEEP=1 leaves the cluster running until Ctrl-C (S3 on 127.0.0.1:9400, the
# console and JSON API on 127.0.0.1:9401) instead of benchmarking.
set -euo pipefail
cd "$(dirname "$0")/../.."
pg="${PG:-postgres://postgres@127.0.0.1:5432}"
s3s_fs="${S3S_FS:-$HOME/.cache/cistern-tools/bin/s3s-fs}"
scale="${SCALE:-1}"
members="${MEMBERS:-500}"
key=benchadmin secret=bench-secret-123
blob_key=blobkey blob_secret=blob-secret-123

command -v haproxy >/dev/null || { echo "needs haproxy (apt-get install haproxy)" >&2; exit 1; }
[ -x "$s3s_fs" ] || { echo "needs s3s-fs: cargo install s3s-fs --version 0.14.1 --features binary --root ~/.cache/cistern-tools" >&2; exit 1; }
cargo build --release --bin cistern --example bench --example pool_bench
cistern=target/release/cistern
work=$(mktemp -d -p "${BENCH_DIR:-$PWD/target}" local-cluster.XXXXXX)
databases=()
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    wait 2>/dev/null || true
    for db in "${databases[@]}"; do psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true; done
    rm -rf "$work"
}
trap cleanup EXIT
wait_port() { for _ in $(seq 1 200); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
wait_ready() { for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$1/health/ready" >/dev/null && return 0; sleep 0.1; done; echo "port $1 never ready" >&2; return 1; }

fresh_database() {
    local db="cistern_cluster_$(date +%s%N)"
    psql "$pg/postgres" -qc "CREATE DATABASE $db"
    databases+=("$db")
    echo "$pg/$db?sslmode=disable"
}

# start_blobs DIR PORT: an s3s-fs process with the bucket `blobs`.
start_blobs() {
    mkdir -p "$1/blobs"
    "$s3s_fs" --host 127.0.0.1 --port "$2" --access-key $blob_key --secret-key $blob_secret "$1" >/dev/null 2>&1 &
    wait_port "$2"
}

# start_node NAME S3_PORT WEB_PORT DATABASE_URL BLOB_PORT: one Cistern node
# on the shared stores; its pid in $node_pid.
start_node() {
    CISTERN_ROOT_USER=$key CISTERN_ROOT_PASSWORD=$secret \
    CISTERN_DATABASE_URL="$4" CISTERN_BLOB_URL=s3://blobs/cistern \
    AWS_ENDPOINT="http://127.0.0.1:$5" AWS_ACCESS_KEY_ID=$blob_key AWS_SECRET_ACCESS_KEY=$blob_secret \
    AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true \
        "$cistern" serve --data-dir "$work/$1" --s3-listen "127.0.0.1:$2" --web-listen "127.0.0.1:$3" \
        --log-level warn >"$work/$1.log" 2>&1 &
    node_pid=$!
}

# benchmarks LABEL S3_PORT WEB_PORT PIDS: the S3 cases and the pool run.
benchmarks() {
    echo
    echo "### $1: S3"
    for case in "4 KiB" "1 MiB"; do
        target/release/examples/bench --endpoint "http://127.0.0.1:$2" --access-key $key --secret-key $secret \
            --server-pid "$4" --label "$1" --scale "$scale" --only "$case" | grep '^| [^s-]'
    done
    echo
    echo "### $1: pool, $members members"
    target/release/examples/pool_bench --web "http://127.0.0.1:$3" --user $key --password $secret \
        --server-pid "$4" --members "$members" --listeners "$members" --idle-streams 0
}

echo "## machine"
echo "$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r); $(psql "$pg/postgres" -Atc 'SHOW server_version'), s3s-fs $("$s3s_fs" --version | awk '{print $2}') and $(haproxy -v | head -1 | awk '{print $1, $3}') on the same machine"

echo
echo "## three nodes behind HAProxy (PostgreSQL, s3s-fs)"
url=$(fresh_database)
start_blobs "$work/blobs-cluster" 9410
pids=()
for n in 1 2 3; do
    start_node "node$n" $((9500 + 2 * n)) $((9501 + 2 * n)) "$url" 9410
    pids+=("$node_pid")
done
for n in 1 2 3; do wait_ready $((9501 + 2 * n)); done
cat >"$work/haproxy.cfg" <<CFG
global
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    option http-server-close
    # Event streams are small writes that must not wait for more data.
    option http-no-delay
frontend s3
    bind 127.0.0.1:9400
    default_backend s3_nodes
frontend web
    bind 127.0.0.1:9401
    default_backend web_nodes
backend s3_nodes
    balance roundrobin
    option httpchk GET /health/ready
$(for n in 1 2 3; do echo "    server node$n 127.0.0.1:$((9500 + 2 * n)) check port $((9501 + 2 * n))"; done)
backend web_nodes
    balance roundrobin
    option httpchk GET /health/ready
$(for n in 1 2 3; do echo "    server node$n 127.0.0.1:$((9501 + 2 * n)) check"; done)
CFG
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
wait_port 9400 || { cat "$work/haproxy.log" >&2; exit 1; }
if [ "${KEEP:-}" = 1 ]; then
    echo "S3 on http://127.0.0.1:9400, console on http://127.0.0.1:9401 ($key / $secret); Ctrl-C ends it"
    wait
fi
benchmarks "3 nodes" 9400 9401 "$(IFS=,; echo "${pids[*]}")"
kill "${pids[@]}"

echo
echo "## one node (PostgreSQL, s3s-fs)"
url=$(fresh_database)
start_blobs "$work/blobs-one" 9411
start_node one 9520 9521 "$url" 9411
wait_ready 9521
benchmarks "1 node, PostgreSQL" 9520 9521 "$node_pid"
kill "$node_pid"

echo
echo "## one node (SQLite, local disk)"
CISTERN_ROOT_USER=$key CISTERN_ROOT_PASSWORD=$secret "$cistern" serve --data-dir "$work/sqlite" \
    --s3-listen 127.0.0.1:9530 --web-listen 127.0.0.1:9531 --log-level warn >"$work/sqlite.log" 2>&1 &
pid=$!
wait_ready 9531
benchmarks "1 node, SQLite" 9530 9531 "$pid"
