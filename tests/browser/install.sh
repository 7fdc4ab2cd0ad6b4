#!/usr/bin/env bash
# Installs what the browser tests need, idempotently:
#   - Debian's chromium (/usr/bin/chromium) when it is missing;
#   - playwright-core from npm (package-lock.json at the repo root) when node_modules is missing.
# Never downloads a browser build of its own (no `playwright install`).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

if [ ! -x /usr/bin/chromium ]; then
    echo "[browser/install] installing Debian chromium"
    export DEBIAN_FRONTEND=noninteractive
    sudo_cmd=""
    if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "[browser/install] installing nodejs and npm"
    export DEBIAN_FRONTEND=noninteractive
    sudo_cmd=""
    if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq nodejs npm >/dev/null
fi

if [ ! -f "$repo/node_modules/playwright-core/package.json" ]; then
    echo "[browser/install] npm ci (playwright-core)"
    (cd "$repo" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "[browser/install] ok: $(/usr/bin/chromium --version 2>/dev/null | head -1), playwright-core $(node -p "require('$repo/node_modules/playwright-core/package.json').version")"
