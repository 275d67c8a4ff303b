#!/usr/bin/env bash
# Cuts one node of a three-node cluster off the network, then lets it back,
# by hand. Each Cistern node runs in a network namespace of its own, joined
# to the host by a veth pair; PostgreSQL (already running on the host) and
# one s3s-fs blob store are reached through HAProxy relays on the host side
# of each pair, and HAProxy balances S3 over the three nodes. Taking the
# host side of node 2's pair down cuts it off from the database, the blob
# store and the load balancer at once, without closing its connections.
#
#   bash deploy/local-cluster/partition.sh       # as root
#   sudo env CISTERN=target/debug/cistern CUT_SECS=180 bash deploy/local-cluster/partition.sh
#
# It checks, and prints with timings:
#   - the cut node reports itself unready (/health/ready 503, asked inside
#     its namespace) within 5 s;
#   - a PUT sent to the cut node itself gets 503 ServiceUnavailable, and
#     leaves no object;
#   - once HAProxy has marked it down, every PUT through the load balancer
#     succeeds on the other two;
#   - after the link is back, the node is ready again without a restart, and
#     reads every object written while it was cut off, byte for byte.
#
# Needs root (ip netns); ip, haproxy, socat, curl and psql from Debian; and
# s3s-fs (S3S_FS, default ~/.cache/cistern-tools/bin/s3s-fs of the user who
# ran sudo, as .ci/run installs it). PG names the PostgreSQL server and user
# (default postgres://postgres@127.0.0.1:5432, trust or .pgpass
# authentication); CISTERN names the binary (default target/release/cistern,
# which `cargo build --release --bin cistern` makes); CUT_SECS is how long
# node 2 stays cut off (default 30). Exits non-zero if a check fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "needs root for ip netns" >&2; exit 1; }
for tool in ip haproxy socat curl psql; do
    command -v $tool >/dev/null || { echo "needs $tool (from Debian's packages)" >&2; exit 1; }
done
home="$HOME"
[ -n "${SUDO_USER:-}" ] && home="$(getent passwd "$SUDO_USER" | cut -d: -f6)"
s3s_fs="${S3S_FS:-$home/.cache/cistern-tools/bin/s3s-fs}"
[ -x "$s3s_fs" ] || { echo "needs s3s-fs: cargo install s3s-fs --version 0.14.1 --features binary --root ~/.cache/cistern-tools" >&2; exit 1; }
cistern="${CISTERN:-target/release/cistern}"
[ -x "$cistern" ] || { echo "no $cistern: cargo build --release --bin cistern first, or set CISTERN" >&2; exit 1; }
pg="${PG:-postgres://postgres@127.0.0.1:5432}"
[[ "$pg" =~ ^postgres(ql)?://(([^@/:]+)@)?([^@/:]+)(:([0-9]+))?/?$ ]] ||
    { echo "PG must look like postgres://user@host:port" >&2; exit 1; }
pg_user="${BASH_REMATCH[3]:-postgres}" pg_addr="${BASH_REMATCH[4]}:${BASH_REMATCH[6]:-5432}"
pg="${pg%/}"
key=partitionadmin secret=partition-secret-123
blob_key=blobkey blob_secret=blob-secret-123
cut_secs="${CUT_SECS:-30}"
# The relays listen on ports of their own, so that a database listening on
# every address does not hold them.
lb=127.0.0.1:9600 blob_port=9610 relay_pg_port=15432 relay_blob_port=19610
work=$(mktemp -d)
db="cistern_partition_$(date +%s)"
failed=0

cleanup() {
    # A namespace outlives its deletion while processes remain in it, so its
    # processes are ended by namespace, not only as this shell's jobs.
    for n in 1 2 3; do ip netns pids "cistern-n$n" 2>/dev/null | xargs -r kill 2>/dev/null || true; done
    jobs -p | xargs -r kill 2>/dev/null || true
    wait 2>/dev/null || true
    for n in 1 2 3; do
        ip netns del "cistern-n$n" 2>/dev/null || true
        ip link del "cv-h$n" 2>/dev/null || true
    done
    psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAILED: $*"; failed=$((failed + 1)); }
host_ip() { echo "10.231.$1.1"; }
node_ip() { echo "10.231.$1.2"; }
# in_node N COMMAND...: runs COMMAND inside node N's namespace.
in_node() { local n=$1; shift; ip netns exec "cistern-n$n" "$@"; }
# ready N: whether node N answers /health/ready with 200 (asked inside its
# namespace, so the answer comes even while it is cut off).
ready_status() { in_node "$1" curl -s -m 4 -o /dev/null -w '%{http_code}' "http://$(node_ip "$1"):9001/health/ready" || true; }
ready() { [ "$(ready_status "$1")" = 200 ]; }
# seconds_until DEADLINE COMMAND...: polls COMMAND every 0.1 s; prints the
# seconds it took, or fails after DEADLINE seconds.
seconds_until() {
    local limit_ms=$(($1 * 1000)) start
    shift
    start=$(date +%s%3N)
    until "$@"; do
        (($(date +%s%3N) - start > limit_ms)) && return 1
        sleep 0.1
    done
    local took=$(($(date +%s%3N) - start))
    printf '%d.%d' $((took / 1000)) $((took % 1000 / 100))
}
unready() { [ "$(ready_status "$1")" = 503 ]; }
# s3 ENDPOINT METHOD PATH [curl arguments...]: a signed S3 request.
s3() {
    local endpoint=$1 method=$2 path=$3
    shift 3
    curl -sS --fail-with-body -m 20 -X "$method" --aws-sigv4 "aws:amz:us-east-1:s3" \
        --user "$key:$secret" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@" "http://$endpoint$path"
}

psql "$pg/postgres" -qc "CREATE DATABASE $db"
mkdir -p "$work/blobs/blobs"
"$s3s_fs" --host 127.0.0.1 --port $blob_port --access-key $blob_key --secret-key $blob_secret "$work/blobs" \
    >"$work/s3s-fs.log" 2>&1 &

for n in 1 2 3; do
    ip netns add "cistern-n$n"
    ip link add "cv-h$n" type veth peer name "cv-n$n"
    ip link set "cv-n$n" netns "cistern-n$n"
    ip addr add "$(host_ip $n)/24" dev "cv-h$n"
    ip link set "cv-h$n" up
    in_node $n ip addr add "$(node_ip $n)/24" dev "cv-n$n"
    in_node $n ip link set "cv-n$n" up
    in_node $n ip link set lo up
done

# HAProxy: the S3 front, and per node a relay to PostgreSQL and one to the
# blob store on the host side of that node's pair.
{
    cat <<CFG
global
    maxconn 2000
    stats socket $work/haproxy.sock
defaults
    timeout connect 1s
    timeout client 1m
    timeout server 1m
    retries 2
    option redispatch
frontend s3
    mode http
    bind $lb
    default_backend nodes
backend nodes
    mode http
    balance roundrobin
    option httpchk GET /health/ready
    default-server inter 500ms fall 2 rise 2
CFG
    for n in 1 2 3; do echo "    server node$n $(node_ip $n):9000 check port 9001"; done
    for n in 1 2 3; do
        cat <<CFG
listen database$n
    mode tcp
    timeout client 1h
    timeout server 1h
    bind $(host_ip $n):$relay_pg_port
    server pg $pg_addr
listen blobs$n
    mode tcp
    timeout client 1h
    timeout server 1h
    bind $(host_ip $n):$relay_blob_port
    server s3s-fs 127.0.0.1:$blob_port
CFG
    done
} >"$work/haproxy.cfg"
haproxy -c -q -f "$work/haproxy.cfg" || { echo "HAProxy refused its settings" >&2; exit 1; }
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &

for n in 1 2 3; do
    in_node $n env CISTERN_ROOT_USER=$key CISTERN_ROOT_PASSWORD=$secret \
        CISTERN_DATABASE_URL="postgres://$pg_user@$(host_ip $n):$relay_pg_port/$db?sslmode=disable" \
        CISTERN_BLOB_URL=s3://blobs/cistern AWS_ENDPOINT="http://$(host_ip $n):$relay_blob_port" \
        AWS_ACCESS_KEY_ID=$blob_key AWS_SECRET_ACCESS_KEY=$blob_secret AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true \
        "$cistern" serve --data-dir "$work/node$n" --s3-listen "$(node_ip $n):9000" \
        --web-listen "$(node_ip $n):9001" --log-level warn >"$work/node$n.log" 2>&1 &
done
for n in 1 2 3; do
    seconds_until 60 ready $n >/dev/null || {
        echo "node $n never became ready" >&2
        tail -20 "$work/node$n.log" "$work/haproxy.log" >&2
        exit 1
    }
done
echo "three nodes ready, each in its own network namespace"
# haproxy_state N: node N's state as HAProxy's checks see it (UP, DOWN, ...).
haproxy_state() {
    echo "show stat" | socat - "UNIX-CONNECT:$work/haproxy.sock" 2>/dev/null |
        awk -F, -v s="node$1" '$1 == "nodes" && $2 == s {print $18}'
}
haproxy_is() { [ "$(haproxy_state "$1")" = "$2" ]; }
for n in 1 2 3; do seconds_until 20 haproxy_is $n UP >/dev/null || fail "HAProxy never saw node $n up"; done

head -c 200000 /dev/urandom >"$work/payload"
s3 $lb PUT /cut >/dev/null || { echo "could not create the bucket through the load balancer" >&2; exit 1; }

echo "== node 2 cut off (its link down) for $cut_secs s =="
cut_at=$(date +%s)
ip link set cv-h2 down
if took=$(seconds_until 5 unready 2); then
    echo "ok: node 2 unready after $took s"
else
    fail "node 2 still ready 5 s after the cut"
fi
if took=$(seconds_until 10 haproxy_is 2 DOWN); then echo "ok: HAProxy marked node 2 down, $took s after that"; else fail "HAProxy never marked node 2 down"; fi
# A client that still talks to node 2 itself gets a clean refusal.
answer=$(in_node 2 curl -s -m 30 -o "$work/refusal" -w '%{http_code} %{time_total}' -X PUT \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$key:$secret" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    --data-binary "@$work/payload" "http://$(node_ip 2):9000/cut/refused" || true)
if [[ "$answer" == 503\ * ]] && grep -q ServiceUnavailable "$work/refusal"; then
    echo "ok: a PUT sent to node 2 itself got 503 ServiceUnavailable in $(printf '%.1f' "${answer#* }") s"
else
    fail "a PUT sent to node 2 itself answered '$answer': $(head -c 300 "$work/refusal" 2>/dev/null)"
fi
ok=0
for i in $(seq 1 30); do
    if s3 $lb PUT "/cut/during-$i" --data-binary "@$work/payload" >/dev/null; then ok=$((ok + 1)); fi
done
if [ $ok = 30 ]; then echo "ok: 30 of 30 PUTs through the load balancer while node 2 was cut off"; else fail "$ok of 30 PUTs succeeded while node 2 was cut off"; fi

# Long cuts matter: TCP retransmits of the connections left open back off
# while the link is down.
cut_for=$((cut_secs - ($(date +%s) - cut_at)))
[ $cut_for -gt 0 ] && sleep $cut_for

echo "== node 2 back, $cut_secs s after the cut =="
ip link set cv-h2 up
if took=$(seconds_until 60 ready 2); then echo "ok: node 2 ready again after $took s, without a restart"; else fail "node 2 not ready 60 s after its link came back"; fi
whole=0
for i in $(seq 1 30); do
    if s3 "$(node_ip 2):9000" GET "/cut/during-$i" -o "$work/fetched" && cmp -s "$work/payload" "$work/fetched"; then
        whole=$((whole + 1))
    fi
done
if [ $whole = 30 ]; then echo "ok: node 2 reads all 30 objects written while it was away, byte for byte"; else fail "node 2 read $whole of 30 objects whole"; fi
refused_get=$(curl -s -m 20 -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" --user "$key:$secret" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "http://$lb/cut/refused" || true)
if [ "$refused_get" = 404 ]; then echo "ok: the refused PUT left no object (404)"; else fail "GET of the refused PUT's key answered $refused_get, not 404"; fi
s3 "$(node_ip 2):9000" PUT /cut/after --data-binary "@$work/payload" >/dev/null && echo "ok: node 2 accepts writes again" || fail "PUT through node 2 after the cut"

if [ $failed = 0 ]; then echo "partition.sh: every check passed"; else echo "partition.sh: $failed checks failed"; exit 1; fi
