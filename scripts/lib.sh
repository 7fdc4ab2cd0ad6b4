# Shared by scripts/run and scripts/test (sourced, not executed).
# Finds ComfyUI (via scripts/find_comfyui.py, the one place that knows the
# lookup order) and builds/reuses the project virtual environments: .venv
# (main lane, newest libraries) and .venv-min (minimum-versions lane).

PM_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PM_VENV="${PM_REPO}/.venv"
PM_PY="${PM_VENV}/bin/python"
# The minimum-versions lane of scripts/test: requirements.txt at its lower bounds.
PM_VENV_MIN="${PM_REPO}/.venv-min"
# torch build to install (override e.g. PROMPTMATTE_TORCH="torch torchvision").
PM_TORCH="${PROMPTMATTE_TORCH:-torch==2.14.1 torchvision==0.29.1}"

pm_log() { printf '[promptmatte] %s\n' "$*" >&2; }
pm_die() { printf '[promptmatte] error: %s\n' "$*" >&2; exit 1; }

# A Python (>= 3.10) to create the venv with, or to run find_comfyui.py.
pm_base_python() {
    local cand
    for cand in "${PYTHON:-}" python3 python; do
        [ -n "$cand" ] || continue
        if command -v "$cand" >/dev/null 2>&1 &&
            "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
            command -v "$cand"
            return 0
        fi
    done
    pm_die "Python 3.10 or newer is needed (set PYTHON=/path/to/python3)."
}

# Prints the ComfyUI directory, or stops with find_comfyui.py's explanation.
pm_find_comfyui() {
    local py
    py="$(pm_base_python)" || exit 1
    "$py" "${PM_REPO}/scripts/find_comfyui.py" || exit 1
}

# True when the ComfyUI found already loads this repo from its custom_nodes/.
pm_installed_in_comfyui() {
    "$(pm_base_python)" "${PM_REPO}/scripts/find_comfyui.py" --installed
}

# ComfyUI's requirements without torch/torchvision/torchaudio (we pin torch
# ourselves and do not need torchaudio).
pm_comfy_requirements() {
    grep -Eiv '^[[:space:]]*(torch|torchvision|torchaudio)[[:space:]]*([<>=!~;[]|$)' "$1/requirements.txt"
}

# Our requirements pinned to their lower bounds, for the minimum-versions
# lane: "name>=X..." becomes "name==X". A requirement without a lower bound
# is an error (every range we declare must be one we test).
pm_min_requirements() {
    "$(pm_base_python)" - "$1" <<'PY'
import re, sys
out = []
for n, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    m = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*(?:\[[^\]]*\])?)\s*(?:[^#]*?,\s*)?>=\s*([^\s,;]+)", line)
    if not m:
        sys.exit(f"{sys.argv[1]}:{n}: '{line}' has no lower bound (name>=version): the minimum-versions lane cannot pin it")
    out.append(f"{m.group(1)}=={m.group(2)}")
print("\n".join(out))
PY
}

# Test requirements of a lane: requirements-test.txt, less the lines marked
# "lane: main" (references only the main lane's tests need) in the min lane.
pm_test_requirements() {
    if [ "$1" = min ]; then
        grep -Ev '#.*lane: main[[:space:]]*$' "${PM_REPO}/requirements-test.txt"
    else
        cat "${PM_REPO}/requirements-test.txt"
    fi
}

# pm_ensure_lane_venv LANE COMFYUI_DIR: create the lane's venv if missing and
# install, in one resolver run (so nothing can pull in another torch):
#   main (.venv):     torch, ComfyUI's requirements, requirements.txt, requirements-test.txt
#   min  (.venv-min): the same torch and ComfyUI's requirements, requirements.txt pinned to
#                     its lower bounds, requirements-test.txt less the "lane: main" lines
# unless the stamp file says this exact set is already installed. A lock file
# (flock) keeps two runs from installing into one venv at the same time.
pm_ensure_lane_venv() {
    local lane="$1" comfy="$2" venv base_py want have="" ours tests reqs py lock
    case "$lane" in
        main) venv="$PM_VENV" ;;
        min) venv="$PM_VENV_MIN" ;;
        *) pm_die "unknown lane '$lane' (main or min)" ;;
    esac
    py="${venv}/bin/python"
    [ -f "${comfy}/requirements.txt" ] || pm_die "${comfy}/requirements.txt is missing"
    base_py="$(pm_base_python)" || exit 1
    if [ "$lane" = min ]; then
        ours="$(pm_min_requirements "${PM_REPO}/requirements.txt")" || pm_die "requirements.txt: see above"
    else
        ours="$(cat "${PM_REPO}/requirements.txt")"
    fi
    tests="$(pm_test_requirements "$lane")"
    want="$(
        {
            echo "lane: ${lane}"
            echo "torch: ${PM_TORCH}"
            echo "python: $("$base_py" -c 'import sys; print(sys.version.split()[0])')"
            echo "--- comfyui"; pm_comfy_requirements "$comfy"
            echo "--- requirements"; echo "$ours"
            echo "--- test requirements"; echo "$tests"
        } | sha256sum | cut -d' ' -f1
    )"
    lock="${venv}.lock"
    if command -v flock >/dev/null 2>&1; then
        exec {PM_LOCK_FD}>"$lock"
        flock "$PM_LOCK_FD"
    fi
    [ -f "${venv}/.promptmatte-stamp" ] && have="$(cat "${venv}/.promptmatte-stamp")"
    if [ -x "$py" ] && [ "$have" = "$want" ] && "$py" -c 'import torch' >/dev/null 2>&1; then
        pm_log "reusing ${venv} (${lane} lane, requirements unchanged)"
        pm_unlock
        return 0
    fi
    if [ ! -x "$py" ]; then
        pm_log "creating ${venv} with ${base_py}"
        "$base_py" -m venv "$venv" || pm_die "could not create ${venv}"
    fi
    # A venv that has torch already needs only what changed; a new one needs room for torch.
    "$py" -c 'import torch' >/dev/null 2>&1 || pm_need_disk "$venv"
    rm -f "${venv}/.promptmatte-stamp"
    reqs="${venv}/promptmatte-requirements"
    mkdir -p "$reqs"
    pm_comfy_requirements "$comfy" >"${reqs}/comfyui.txt"
    echo "$ours" >"${reqs}/ours.txt"
    echo "$tests" >"${reqs}/tests.txt"
    pm_log "installing into ${venv} (${lane} lane): ${PM_TORCH}, ComfyUI's requirements, $(
        [ "$lane" = min ] && echo "requirements.txt at its lower bounds ($(tr '\n' ' ' <"${reqs}/ours.txt"))" ||
            echo "requirements.txt"), test requirements"
    # shellcheck disable=SC2086
    "$py" -m pip install --disable-pip-version-check --no-input \
        ${PM_TORCH} \
        -r "${reqs}/comfyui.txt" \
        -r "${reqs}/ours.txt" \
        -r "${reqs}/tests.txt" ||
        pm_die "pip install into ${venv} failed (see above)"
    "$py" -m pip check --disable-pip-version-check ||
        pm_die "the packages in ${venv} do not fit together (pip check, above)"
    echo "$want" >"${venv}/.promptmatte-stamp"
    pm_log "${venv} ready"
    pm_unlock
}

# pm_need_disk DIR: stop before pip when DIR's disk cannot hold a lane's venv.
# torch 2.14.1 with its CUDA libraries alone unpacks to about 5.5 GB per venv;
# pip running out of space half-way leaves a broken venv and a long traceback.
PM_VENV_NEED_GB="${PROMPTMATTE_VENV_NEED_GB:-7}"
pm_need_disk() {
    local free_kb
    free_kb="$(df -Pk "$1" 2>/dev/null | awk 'NR == 2 { print $4 }')"
    [ -n "$free_kb" ] || return 0
    if [ "$free_kb" -lt $((PM_VENV_NEED_GB * 1024 * 1024)) ]; then
        pm_die "$(printf 'only %s GB free on the disk of %s; a venv with torch needs about %s GB.' \
            "$((free_kb / 1024 / 1024))" "$1" "$PM_VENV_NEED_GB") Free some space (old venvs, pip's cache: pip cache purge) and run again (PROMPTMATTE_VENV_NEED_GB changes the figure, e.g. for a CPU-only torch)."
    fi
}

pm_unlock() {
    if [ -n "${PM_LOCK_FD:-}" ]; then
        exec {PM_LOCK_FD}>&-
        PM_LOCK_FD=""
    fi
}

# pm_ensure_venv COMFYUI_DIR: the main lane's .venv (scripts/run, scripts/test).
pm_ensure_venv() {
    pm_ensure_lane_venv main "$1"
}
