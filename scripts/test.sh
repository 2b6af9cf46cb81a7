#!/usr/bin/env bash
# Install everything the tests need (Debian and pip packages) and run them.
# Usage: scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: a real broker, a real browser, and the checkers for the
# firmware files.  Installed only when missing.
need() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || missing+=("$2"); }
missing=()
need mosquitto mosquitto
need mosquitto_sub mosquitto-clients
need chromium chromium
need shellcheck shellcheck
need openssl openssl
need systemd-analyze systemd
# only while axe-core (below) is not installed yet: npm fetches it
[ -f tests/node_modules/axe-core/axe.min.js ] || need npm npm
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

VENV=${BIBBOX_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test]"

# axe-core, the accessibility checker the browser tests inject into every
# kiosk and staff screen (tests/web/axe.py): from npm, into tests/node_modules
# (git-ignored), only when missing.
if [ ! -f tests/node_modules/axe-core/axe.min.js ]; then
    if command -v npm >/dev/null 2>&1; then
        npm install --no-save --no-audit --no-fund --silent --prefix tests axe-core@4
    else
        echo "npm is missing: the axe-core checks will be skipped (apt-get install npm)"
    fi
fi
exec "$VENV/bin/python" -m pytest "$@"
