#!/usr/bin/env bash
# The whole suite on a bare machine (called by `make test` after `make install-dev`): start a throwaway
# PostgreSQL 15, redis-server and an SMTP sink (aiosmtpd) on loopback, run ruff and pytest, stop
# everything it started.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow" tests/contracts`.
# Exit code: pytest's (exit 5, "no tests collected", counts as a failure); 1 if only ruff failed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
BIN="$ROOT/.venv/bin"
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"

if [[ ! -x "$BIN/pytest" ]]; then
    echo "test.sh: $BIN/pytest is missing; run \`make install-dev\` first (the test tools: requirements-dev.lock)" >&2
    exit 2
fi
# free_port and the tests' helpers use this interpreter.
export PATH="$BIN:$PATH"

cleanup() {
    local code=$?
    trap - EXIT INT TERM
    stop_smtp
    stop_redis
    stop_postgres
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_postgres || { echo "test.sh: could not start PostgreSQL" >&2; exit 3; }
start_redis || { echo "test.sh: could not start redis-server" >&2; exit 3; }
start_smtp || { echo "test.sh: could not start the SMTP sink" >&2; exit 3; }
ensure_browser_tools || { echo "test.sh: could not install chromium and the browser test tools" >&2; exit 3; }
ensure_pdf_libs || { echo "test.sh: could not install Pango and poppler-utils (the diploma PDF)" >&2; exit 3; }

ruff_code=0
"$BIN/ruff" check . || ruff_code=$?

"$BIN/pytest" -p no:cacheprovider "$@"
code=$?
if [[ $code == 5 ]]; then
    echo "test.sh: pytest collected no tests; treating that as a failure" >&2
    code=1
fi
if [[ $code == 0 && $ruff_code != 0 ]]; then
    echo "test.sh: ruff found problems (tests passed)" >&2
    code=1
fi
exit "$code"
