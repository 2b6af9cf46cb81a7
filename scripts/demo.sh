#!/usr/bin/env bash
# Run a complete simulated locker on this machine: no hardware, no broker.
# Usage: scripts/demo.sh [--port 8080] [--state-dir ./state] [--mqtt mqtt://HOST:PORT]
#                        [--ils sip2|fbs]   (against an embedded test library system)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${BIBBOX_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[ils-demo]"
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-1}"    # as firmware/bibbox.service runs it
exec "$VENV/bin/bibbox" demo "$@"
