# Shared by scripts/run and scripts/test (sourced, not executed).
# Finds ComfyUI (via scripts/find_comfyui.py, the one place that knows the
# lookup order) and builds/reuses the project virtual environment .venv.

PM_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PM_VENV="${PM_REPO}/.venv"
PM_PY="${PM_VENV}/bin/python"
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

# pm_ensure_venv COMFYUI_DIR: create .venv if missing and install ComfyUI's
# requirements, ours and the test ones, unless the stamp file says this exact
# set is already installed.
pm_ensure_venv() {
    local comfy="$1" stamp="${PM_VENV}/.promptmatte-stamp" want have="" base_py
    [ -f "${comfy}/requirements.txt" ] || pm_die "${comfy}/requirements.txt is missing"
    base_py="$(pm_base_python)" || exit 1
    want="$(
        {
            echo "torch: ${PM_TORCH}"
            echo "python: $("$base_py" -c 'import sys; print(sys.version.split()[0])')"
            echo "--- comfyui"; pm_comfy_requirements "$comfy"
            echo "--- requirements.txt"; cat "${PM_REPO}/requirements.txt"
            echo "--- requirements-test.txt"; cat "${PM_REPO}/requirements-test.txt"
        } | sha256sum | cut -d' ' -f1
    )"
    [ -f "$stamp" ] && have="$(cat "$stamp")"
    if [ -x "$PM_PY" ] && [ "$have" = "$want" ] && "$PM_PY" -c 'import torch' >/dev/null 2>&1; then
        pm_log "reusing ${PM_VENV} (requirements unchanged)"
        return 0
    fi
    if [ ! -x "$PM_PY" ]; then
        pm_log "creating ${PM_VENV} with ${base_py}"
        "$base_py" -m venv "$PM_VENV" || pm_die "could not create ${PM_VENV}"
    fi
    rm -f "$stamp"
    local reqs="${PM_VENV}/comfyui-requirements.txt"
    pm_comfy_requirements "$comfy" >"$reqs"
    pm_log "installing ${PM_TORCH}, ComfyUI's requirements, requirements.txt and requirements-test.txt into ${PM_VENV}"
    # One resolver run, so nothing else can pull in a different torch.
    # shellcheck disable=SC2086
    "$PM_PY" -m pip install --disable-pip-version-check --no-input \
        ${PM_TORCH} \
        -r "$reqs" \
        -r "${PM_REPO}/requirements.txt" \
        -r "${PM_REPO}/requirements-test.txt" ||
        pm_die "pip install failed (see above)"
    echo "$want" >"$stamp"
    pm_log "${PM_VENV} ready"
}
