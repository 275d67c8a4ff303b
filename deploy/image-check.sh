#!/usr/bin/env bash
# Builds the container image from the Dockerfile and runs it the way the
# Kubernetes manifests do (read-only root filesystem, a tmpfs on /tmp, every
# capability dropped, no new privileges, a volume on /data), then checks what
# an operator relies on:
#
#   - the image's settings: user 10001, ports 9000 and 9001, the /data volume,
#     the HEALTHCHECK command, the entrypoint and command;
#   - the runtime image has no shell, and `cistern --version` runs;
#   - `cistern healthcheck` (what HEALTHCHECK runs) passes once it serves,
#     and /health/ready answers through the published web port;
#   - an object PUT through the published S3 port reads back byte for byte
#     (curl signs the requests with --aws-sigv4);
#   - the container stops on SIGTERM with exit code 0;
#   - a new container on the same volume serves that object again, so the
#     data lives in the volume and not in the container.
#
#   bash deploy/image-check.sh                  # docker, else podman
#   CISTERN_ENGINE=podman bash deploy/image-check.sh
#
# CISTERN_IMAGE names an image built already (the release workflow's); the
# build is then skipped. Needs a container engine that can reach the base
# images (or holds them already) and curl 7.76 or newer. The image built is
# left behind as cistern:check; the containers and the volume are removed.
# The last line is a summary.
set -euo pipefail
cd "$(dirname "$0")/.."

engine="${CISTERN_ENGINE:-}"
if [ -z "$engine" ]; then
    if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
        engine=docker
    elif command -v podman >/dev/null; then
        engine=podman
    else
        echo "deploy/image-check.sh: no container engine (docker with a running daemon, or podman)" >&2
        exit 2
    fi
fi
image=cistern:check
run_id="cistern-check-$$"
volume="$run_id-data"
user=checkadmin
password="check-password-$RANDOM$RANDOM"
failed=0

fail() {
    echo "FAILED: $*"
    failed=$((failed + 1))
}

cleanup() {
    "$engine" rm -f "$run_id-1" "$run_id-2" >/dev/null 2>&1 || true
    "$engine" volume rm -f "$volume" >/dev/null 2>&1 || true
}
trap cleanup EXIT

if [ -n "${CISTERN_IMAGE:-}" ]; then
    image="$CISTERN_IMAGE"
    echo "== checking $image (already built) with $engine =="
else
    echo "== build $image with $engine =="
    build_args=(build -t "$image" --build-arg "CISTERN_GIT_COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)")
    # Podman writes OCI images by default, and that format has no HEALTHCHECK.
    [ "$engine" = podman ] && build_args+=(--format docker)
    build_start=$(date +%s)
    "$engine" "${build_args[@]}" . >&2
    echo "built in $(($(date +%s) - build_start)) s"
fi

echo "== image settings =="
settings="$("$engine" image inspect "$image" --format \
    'user={{.Config.User}} ports={{range $p, $_ := .Config.ExposedPorts}}{{$p}},{{end}} volumes={{range $v, $_ := .Config.Volumes}}{{$v}},{{end}} healthcheck={{if .Config.Healthcheck}}{{join .Config.Healthcheck.Test " "}}{{end}} entrypoint={{join .Config.Entrypoint " "}} cmd={{join .Config.Cmd " "}}')" || settings="(image inspect failed)"
echo "$settings"
settings+=" "
for expected in "user=10001:10001 " "9000/tcp," "9001/tcp," "volumes=/data, " \
    "healthcheck=CMD cistern healthcheck entrypoint" "entrypoint=cistern cmd" "cmd=serve "; do
    [[ "$settings" == *"$expected"* ]] || fail "image settings lack '$expected'"
done
echo "size: $("$engine" image inspect "$image" --format '{{.Size}}') bytes"

echo "== no shell in the runtime image =="
# 126 or 127: the engine found no such program in the image (any other
# failure says nothing about the shell).
shell_exit=0
"$engine" run --rm --entrypoint /bin/sh "$image" -c true >/dev/null 2>&1 || shell_exit=$?
case $shell_exit in
    126 | 127) echo "ok: /bin/sh is not there" ;;
    0) fail "/bin/sh ran inside the image" ;;
    *) fail "running /bin/sh failed with $shell_exit, not as a missing program" ;;
esac
"$engine" run --rm "$image" --version || fail "cistern --version"

# start N: runs container N on the shared volume as the manifests run a pod.
start() {
    local out
    if ! out="$("$engine" run -d --name "$run_id-$1" \
        --read-only --tmpfs /tmp \
        --cap-drop ALL --security-opt no-new-privileges \
        -v "$volume:/data" \
        -e CISTERN_ROOT_USER="$user" -e CISTERN_ROOT_PASSWORD="$password" \
        -p 127.0.0.1::9000 -p 127.0.0.1::9001 \
        "$image" 2>&1)"; then
        echo "$out"
        fail "container $1 did not start"
        return 1
    fi
}

# wait_healthy N: runs the HEALTHCHECK's command until it passes (a minute at
# most), as the engine would on its own schedule.
wait_healthy() {
    local deadline=$(($(date +%s) + 60))
    until "$engine" exec "$run_id-$1" cistern healthcheck 2>/dev/null; do
        if [ "$(date +%s)" -ge "$deadline" ] ||
            [ "$("$engine" inspect "$run_id-$1" --format '{{.State.Running}}')" != true ]; then
            fail "container $1 never became healthy"
            "$engine" logs "$run_id-$1" 2>&1 | tail -20
            return 1
        fi
        sleep 1
    done
    echo "ok: container $1 is healthy"
}

s3_port() {
    "$engine" port "$run_id-$1" 9000/tcp | head -1 | sed 's/.*://'
}

# s3 N METHOD PATH [curl arguments...]: a signed request to container N.
s3() {
    local n=$1 method=$2 path=$3
    shift 3
    # S3 wants x-amz-content-sha256 on every signed request; curl adds it
    # only from 8.x on.
    curl -sS --fail-with-body -X "$method" --aws-sigv4 "aws:amz:us-east-1:s3" \
        --user "$user:$password" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
        "$@" "http://127.0.0.1:$(s3_port "$n")$path"
}

payload="$(mktemp)"
fetched="$(mktemp)"
trap 'cleanup; rm -f "$payload" "$fetched"' EXIT
head -c 3000000 /dev/urandom > "$payload"

echo "== serve from a read-only container with a volume on /data =="
if start 1 && wait_healthy 1; then
    s3 1 PUT /image-check >/dev/null || fail "create bucket"
    s3 1 PUT /image-check/payload.bin --data-binary "@$payload" >/dev/null || fail "PUT object"
    s3 1 GET /image-check/payload.bin -o "$fetched" || fail "GET object"
    if cmp -s "$payload" "$fetched"; then echo "ok: 3 MB object read back whole"; else fail "object read back differs"; fi
    web_port="$("$engine" port "$run_id-1" 9001/tcp | head -1 | sed 's/.*://')"
    curl -sS --fail "http://127.0.0.1:$web_port/health/ready" >/dev/null && echo "ok: /health/ready through the web port" ||
        fail "/health/ready through the published web port"
fi
if "$engine" stop -t 30 "$run_id-1" >/dev/null 2>&1; then
    exit_code="$("$engine" inspect "$run_id-1" --format '{{.State.ExitCode}}')"
    [ "$exit_code" = 0 ] && echo "ok: stopped cleanly (exit 0)" || fail "exit code $exit_code on stop"
else
    fail "container 1 could not be stopped"
fi

echo "== a new container on the same volume =="
if start 2 && wait_healthy 2; then
    rm -f "$fetched"
    s3 2 GET /image-check/payload.bin -o "$fetched" || fail "GET object from the second container"
    if cmp -s "$payload" "$fetched"; then echo "ok: the object survived the container"; else fail "object lost with the container"; fi
fi

if [ "$failed" -eq 0 ]; then
    echo "deploy/image-check.sh: $image passed every check ($engine)"
else
    echo "deploy/image-check.sh: $failed checks failed ($engine)"
    exit 1
fi
