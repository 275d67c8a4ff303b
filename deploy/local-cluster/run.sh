#!/usr/bin/env bash
# A cluster on one machine, by hand: PostgreSQL (already running), a blob
# store (a three-node Garage cluster, or one s3s-fs process), three Cistern
# nodes sharing both, and HAProxy from Debian in front. Runs the S3 benchmark and the pool benchmark through
# the load balancer, then the same on one node (PostgreSQL + s3s-fs, and
# SQLite + local disk) in the same run, and prints every figure with the
# server CPU summed over the nodes.
#
#   bash deploy/local-cluster/run.sh
#
# PG names the PostgreSQL server (default postgres://postgres@127.0.0.1:5432);
# BLOBS picks the blob store: `garage` (three Garage nodes, replication
# factor 3; GARAGE names the binary, default ~/.cache/cistern-tools/bin/garage,
# from `cargo install --locked garage --root ~/.cache/cistern-tools`) or
# `s3s-fs` (one process; S3S_FS names the binary, default
# ~/.cache/cistern-tools/bin/s3s-fs, as .ci/run installs it); the default is
# garage when that binary is there. SCALE multiplies the S3 benchmark's operation counts
# (default 1); MEMBERS is the pool benchmark's member count (default 500).
# KEEP=1 leaves the cluster running until Ctrl-C (S3 on 127.0.0.1:9400, the
# console and JSON API on 127.0.0.1:9401) instead of benchmarking.
set -euo pipefail
cd "$(dirname "$0")/../.."
pg="${PG:-postgres://postgres@127.0.0.1:5432}"
s3s_fs="${S3S_FS:-$HOME/.cache/cistern-tools/bin/s3s-fs}"
garage="${GARAGE:-$HOME/.cache/cistern-tools/bin/garage}"
if [ -z "${BLOBS:-}" ]; then
    if [ -x "$garage" ]; then BLOBS=garage; else BLOBS=s3s-fs; fi
fi
scale="${SCALE:-1}"
members="${MEMBERS:-500}"
key=benchadmin secret=bench-secret-123
if [ "$BLOBS" = garage ]; then
    # Garage's key ids are GK and 24 hex digits, its secrets 64 hex digits.
    blob_key=GK0123456789abcdef01234567
    blob_secret=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
else
    blob_key=blobkey blob_secret=blob-secret-123
fi

command -v haproxy >/dev/null || { echo "needs haproxy (apt-get install haproxy)" >&2; exit 1; }
case "$BLOBS" in
    garage) [ -x "$garage" ] || { echo "needs garage: cargo install --locked garage --root ~/.cache/cistern-tools" >&2; exit 1; } ;;
    s3s-fs) [ -x "$s3s_fs" ] || { echo "needs s3s-fs: cargo install s3s-fs --version 0.14.1 --features binary --root ~/.cache/cistern-tools" >&2; exit 1; } ;;
    *) echo "BLOBS is garage or s3s-fs" >&2; exit 1 ;;
esac
cargo build --release --bin cistern --example bench --example pool_bench
cistern=target/release/cistern
work=$(mktemp -d -p "${BENCH_DIR:-$PWD/target}" local-cluster.XXXXXX)
databases=()
cleanup() {
    jobs -p | xargs -r kill 2>/dev/null || true
    wait 2>/dev/null || true
    for db in "${databases[@]}"; do psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true; done
    rm -rf "$work"
}
trap cleanup EXIT
wait_port() { for _ in $(seq 1 200); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
wait_ready() { for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$1/health/ready" >/dev/null && return 0; sleep 0.1; done; echo "port $1 never ready" >&2; return 1; }

fresh_database() {
    local db
    db="cistern_cluster_$(date +%s%N)"
    psql "$pg/postgres" -qc "CREATE DATABASE $db"
    databases+=("$db")
    echo "$pg/$db?sslmode=disable"
}

# start_blobs DIR PORT: the blob store with the bucket `blobs`, its S3 API
# on PORT (and, for Garage, on PORT+10 and PORT+20: one port per Garage
# node, each Cistern node talks to its own).
start_blobs() {
    if [ "$BLOBS" = s3s-fs ]; then
        mkdir -p "$1/blobs"
        "$s3s_fs" --host 127.0.0.1 --port "$2" --access-key $blob_key --secret-key $blob_secret "$1" >/dev/null 2>&1 &
        wait_port "$2"
        return
    fi
    local rpc_secret n config ids=()
    rpc_secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    for n in 0 1 2; do
        mkdir -p "$1/garage$n/meta" "$1/garage$n/data"
        config="$1/garage$n/garage.toml"
        cat >"$config" <<TOML
metadata_dir = "$1/garage$n/meta"
data_dir = "$1/garage$n/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:$(($2 + 10 * n + 1))"
rpc_public_addr = "127.0.0.1:$(($2 + 10 * n + 1))"
rpc_secret = "$rpc_secret"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$(($2 + 10 * n))"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$(($2 + 10 * n + 3))"
TOML
        chmod 600 "$config"
        "$garage" -c "$config" server >"$1/garage$n.log" 2>&1 &
        wait_port $(($2 + 10 * n + 1))
    done
    for n in 0 1 2; do ids+=("$("$garage" -c "$1/garage$n/garage.toml" node id -q 2>/dev/null)"); done
    for n in 1 2; do "$garage" -c "$1/garage0/garage.toml" node connect "${ids[$n]}" >/dev/null; done
    "$garage" -c "$1/garage0/garage.toml" layout assign -z dc1 -c 10G "${ids[@]%%@*}" >/dev/null
    "$garage" -c "$1/garage0/garage.toml" layout apply --version 1 >/dev/null
    for _ in $(seq 1 200); do
        curl -fs "http://127.0.0.1:$(($2 + 3))/health" >/dev/null && break
        sleep 0.1
    done
    "$garage" -c "$1/garage0/garage.toml" key import --yes -n cistern $blob_key $blob_secret >/dev/null
    "$garage" -c "$1/garage0/garage.toml" bucket create blobs >/dev/null
    "$garage" -c "$1/garage0/garage.toml" bucket allow --read --write --owner blobs --key $blob_key >/dev/null
}

# blob_port BASE N: the S3 port Cistern node N (1-3) talks to.
blob_port() { if [ "$BLOBS" = garage ]; then echo $(($1 + 10 * (($2 - 1) % 3))); else echo "$1"; fi; }

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
echo "$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r); $(psql "$pg/postgres" -Atc 'SHOW server_version'), $(if [ "$BLOBS" = garage ]; then "$garage" --version | awk '{print "garage", $2}'; else "$s3s_fs" --version | awk '{print "s3s-fs", $2}'; fi) and $(haproxy -v | head -1 | awk '{print $1, $3}') on the same machine"

echo
echo "## three nodes behind HAProxy (PostgreSQL, $BLOBS)"
url=$(fresh_database)
start_blobs "$work/blobs-cluster" 9410
pids=()
for n in 1 2 3; do
    start_node "node$n" $((9500 + 2 * n)) $((9501 + 2 * n)) "$url" "$(blob_port 9410 "$n")"
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
echo "## one node (PostgreSQL, $BLOBS)"
url=$(fresh_database)
start_blobs "$work/blobs-one" 9450
start_node one 9520 9521 "$url" 9450
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
