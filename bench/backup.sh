#!/usr/bin/env bash
# `cistern backup` against `rclone copy` and `restic backup` of the same
# trees to the same Cistern server, in one run, plus a rerun of cistern
# over 20,000 unchanged files. Each tool writes to its own fresh bucket.
#
#   bash bench/backup.sh            # needs rclone; restic if installed
#
# BENCH_DIR holds the trees and the server's data (default ./target);
# BIG_MIB sizes the big file (default 2048).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release
cistern="$PWD/target/release/cistern"
work=$(mktemp -d -p "${BENCH_DIR:-$PWD/target}" bench-backup.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
big_mib="${BIG_MIB:-2048}"
key=benchadmin secret=bench-secret-123
endpoint=http://127.0.0.1:9400
export AWS_ENDPOINT_URL=$endpoint AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret
export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other \
    RCLONE_CONFIG_BENCH_ENDPOINT=$endpoint RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$key \
    RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$secret
export RESTIC_PASSWORD=bench-password
# rclone's S3 client refuses a custom CA bundle with its own transport.
unset AWS_CA_BUNDLE
wait_port() { for _ in $(seq 1 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
now() { date +%s.%N; }
# rate BYTES START END: MiB/s
rate() { awk -v b="$1" -v s="$2" -v e="$3" 'BEGIN { printf "%.1f", b / 1048576 / (e - s) }'; }

echo "making the trees..."
python3 - "$work" <<'PY'
import os, sys
work = sys.argv[1]
for d in range(20):
    os.makedirs(f"{work}/small/d{d}")
    for f in range(100):
        with open(f"{work}/small/d{d}/f{f}", "wb") as out:
            out.write(os.urandom(102400))
for d in range(100):
    os.makedirs(f"{work}/many/d{d}")
    for f in range(200):
        with open(f"{work}/many/d{d}/f{f}", "w") as out:
            out.write(f"file {d}/{f}\n")
PY
mkdir -p "$work/big"
head -c "$((big_mib * 1048576))" /dev/urandom >"$work/big/big.bin"

CISTERN_ROOT_USER=$key CISTERN_ROOT_PASSWORD=$secret "$cistern" serve --data-dir "$work/data" \
    --s3-listen 127.0.0.1:9400 --web-listen 127.0.0.1:9401 --log-level warn &
wait_port 9400

echo "$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r); $(rclone version | head -1); $(command -v restic >/dev/null && restic version | cut -d' ' -f1-2 || echo 'no restic')"
echo
echo "| tree | tool | seconds | MiB/s | vs cistern |"
echo "| --- | --- | ---: | ---: | ---: |"
bucket=0
for tree in small big; do
    bytes=$(du -sb "$work/$tree" | cut -f1)
    label=$([ "$tree" = small ] && echo "2,000 x 100 KiB" || echo "1 x $big_mib MiB")
    bucket=$((bucket + 1))
    rclone mkdir "bench:bench-c$bucket"
    s=$(now)
    "$cistern" backup "$work/$tree" --to "s3://bench-c$bucket/repo" --cache-dir "$work/cache-$tree" --quiet >/dev/null
    e=$(now)
    base=$(rate "$bytes" "$s" "$e")
    printf '| %s | cistern backup | %.2f | %s | 1.00 |\n' "$label" "$(echo "$e - $s" | bc)" "$base"
    for transfers in 4 8; do
        bucket=$((bucket + 1))
        rclone mkdir "bench:bench-r$bucket"
        s=$(now)
        rclone copy "$work/$tree" "bench:bench-r$bucket/copy" --transfers "$transfers"
        e=$(now)
        r=$(rate "$bytes" "$s" "$e")
        printf '| %s | rclone copy --transfers %s | %.2f | %s | %.2f |\n' "$label" "$transfers" \
            "$(echo "$e - $s" | bc)" "$r" "$(echo "$r / $base" | bc -l)"
    done
    if command -v restic >/dev/null; then
        bucket=$((bucket + 1))
        rclone mkdir "bench:bench-s$bucket"
        restic -r "s3:$endpoint/bench-s$bucket/repo" init >/dev/null
        s=$(now)
        restic -r "s3:$endpoint/bench-s$bucket/repo" backup "$work/$tree" --quiet >/dev/null
        e=$(now)
        r=$(rate "$bytes" "$s" "$e")
        printf '| %s | restic backup | %.2f | %s | %.2f |\n' "$label" "$(echo "$e - $s" | bc)" \
            "$r" "$(echo "$r / $base" | bc -l)"
    fi
done

echo
rclone mkdir bench:bench-rerun
"$cistern" backup "$work/many" --to s3://bench-rerun/repo --cache-dir "$work/cache-many" --quiet >/dev/null
s=$(now)
"$cistern" backup "$work/many" --to s3://bench-rerun/repo --cache-dir "$work/cache-many" --json >"$work/rerun.json"
e=$(now)
printf 'rerun over 20,000 unchanged files: %.2f s, %s bytes of contents read, %s files sent\n' \
    "$(echo "$e - $s" | bc)" "$(jq .read_bytes "$work/rerun.json")" "$(jq .new_files "$work/rerun.json")"
