#!/usr/bin/env bash
# The whole system on the embedded default (called by `make run` once .venv exists):
# redis-server on loopback (AOF on, no eviction), an SMTP sink (aiosmtpd, :8025, mail kept as a
# Maildir in var/mail), the intake service (:8000), its read-only feed server (:8002) and the
# assessment service (:8001) under gunicorn, one Celery worker and Celery beat. Ctrl-C stops them all.
# At start it mints the workers' API token (scope feed:read) with the identity CLI and exports it
# as CIM_FEED_TOKEN; the first start seeds synthetic demo data through the API and makes demo
# staff accounts (development only), printed in the summary.
# Its keys (CIM_SECRET_KEY, CIM_VAULT_KEY, CIM_IDENTITY_KEY) are random, made on the first start
# in $CIM_DATA_DIR/secrets.env (mode 0600) and reused later; keys set in the environment win.
# Ports can be moved for a second copy: CIM_RUN_REDIS_PORT, CIM_RUN_INTAKE_PORT,
# CIM_RUN_ASSESSMENT_PORT, CIM_RUN_INTAKE_FEED_PORT, CIM_RUN_SMTP_PORT. Every process runs under
# supervisord (docs/operations.md, "Supervision"): restarted when it dies; Ctrl-C stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
BIN="$ROOT/.venv/bin"
REDIS_PORT="${CIM_RUN_REDIS_PORT:-6379}"
INTAKE_PORT="${CIM_RUN_INTAKE_PORT:-8000}"
ASSESSMENT_PORT="${CIM_RUN_ASSESSMENT_PORT:-8001}"
FEED_PORT="${CIM_RUN_INTAKE_FEED_PORT:-8002}"
SMTP_PORT="${CIM_RUN_SMTP_PORT:-8025}"

export CIM_DATA_DIR="${CIM_DATA_DIR:-$ROOT/var}"
export CIM_REDIS_URL="${CIM_REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}"
export CIM_INTAKE_URL="http://127.0.0.1:$INTAKE_PORT"
export CIM_ASSESSMENT_URL="http://127.0.0.1:$ASSESSMENT_PORT"
export CIM_INTAKE_FEED_URL="http://127.0.0.1:$FEED_PORT"
export CIM_SMTP_HOST=127.0.0.1 CIM_SMTP_PORT="$SMTP_PORT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
RUN="$CIM_DATA_DIR/run"
MAILDIR="$CIM_DATA_DIR/mail"
mkdir -p "$CIM_DATA_DIR/redis" "$RUN"

# This installation's own keys: made once, kept private under the data directory, reused.
SECRETS="$CIM_DATA_DIR/secrets.env"
if [[ ! -f "$SECRETS" && -f "$CIM_DATA_DIR/intake.db" ]]; then
    echo "note: $CIM_DATA_DIR holds data from before CIM made its own keys; if it cannot be read," \
        "start afresh with 'make clean'"
fi
"$BIN/python" -m shared.local_secrets "$SECRETS"
while IFS='=' read -r name value; do
    [[ "$name" =~ ^CIM_[A-Z_]+$ ]] || continue
    [[ -n "${!name:-}" ]] || export "$name=$value"
done <"$SECRETS"

# Every process writes to stdout/stderr; supervisord routes it to one file per process here.
# A full disk loses lines but stops nothing (tests/integration/test_faults.py); to keep the logs
# when the data disk fills, point CIM_RUN_LOG_DIR at another filesystem.
LOGS="${CIM_RUN_LOG_DIR:-$CIM_DATA_DIR/log}"
mkdir -p "$LOGS"

if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis-server missing: installing it with apt-get (needs root)"
    sudo_cmd=""; [[ "$(id -u)" != 0 ]] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq redis-server
    # the package starts a system server on :6379; ours is started below with our settings
    $sudo_cmd service redis-server stop >/dev/null 2>&1 || true
fi
REDIS_CLI="$(command -v redis-cli)"
# Pango for WeasyPrint (the workers render diplomas); installed with apt-get when missing.
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"
ensure_pdf_libs --runtime

port_answers() {
    "$BIN/python" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' \
        "$1" 2>/dev/null
}

# Every process runs under supervisord (config/supervisord.conf.template, filled in below): it
# restarts whatever dies, with a growing back-off, and Ctrl-C (or SIGTERM) stops everything it
# started -- only that: a Redis or SMTP sink that was already running is used, never stopped.
CONF="$RUN/supervisord.conf"
# program NAME PRIORITY COMMAND: one supervised process. It is restarted whenever it exits; one
# that dies within 3 s of its start is retried after 1, 2, 3 ... s (supervisord's back-off), 20
# times, then left FATAL (supervisorctl start NAME tries again). Stopping sends SIGTERM, then
# SIGKILL to the process and its children after stopwaitsecs. Output goes to $LOGS/NAME.log,
# rotated at 20 MB.
program() {
    cat <<PROGRAM
[program:$1]
command=$3
directory=$ROOT
priority=$2
autostart=true
autorestart=true
startsecs=3
startretries=20
stopsignal=TERM
stopwaitsecs=20
killasgroup=true
redirect_stderr=true
stdout_logfile=$LOGS/$1.log
stdout_logfile_maxbytes=20MB
stdout_logfile_backups=3
${4:-}
PROGRAM
}
# Files the processes write all the time live off the data disk, in memory (/dev/shm), in a
# directory of this run's own, removed at stop (CIM_RUN_MEMORY_DIR names another place, kept;
# its metrics emptied at start): a full data disk must not stop them (tests/integration/test_faults.py).
# - Metrics of the gunicorn processes (shared/web/metrics.py): prometheus_client's multiprocess
#   mode, one directory per program. Its files are memory-mapped: on a full disk, touching a new
#   page of one kills the process with SIGBUS (measured: the intake's gunicorn worker).
# - Beat's schedule file: beat rewrites it every few minutes and exits when it cannot; restarted
#   on a full disk it would fail at once, 20 times, and be left FATAL. It holds only when each
#   entry last ran: lost at stop, beat runs the frequent ticks at once and the daily ones at their
#   next time.
if [[ -n "${CIM_RUN_MEMORY_DIR:-}" ]]; then
    MEM="$CIM_RUN_MEMORY_DIR"
    mkdir -p "$MEM"
    rm -rf "$MEM/prometheus"
    MEM_MADE=""
else
    shm=/dev/shm; [[ -d "$shm" && -w "$shm" ]] || shm="${TMPDIR:-/tmp}"
    MEM="$(mktemp -d "$shm/cim-run.XXXXXX")"
    MEM_MADE="$MEM"
    trap 'rm -rf "$MEM_MADE"' EXIT  # until stop_all (below) takes over
fi
PROM="$MEM/prometheus"
metrics_env() { mkdir -p "$PROM/$1"; echo "environment=PROMETHEUS_MULTIPROC_DIR=\"$PROM/$1\""; }
{
    sed -e "s|@RUN@|$RUN|g" -e "s|@LOGS@|$LOGS|g" config/supervisord.conf.template
    # Redis is only a wake-up channel, but run it as production does: AOF (a restart keeps queued
    # messages; measured: without AOF all queued tasks were lost) and noeviction (never drop a queue).
    if "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
        echo "redis already answers on 127.0.0.1:$REDIS_PORT; using it (and leaving it running)" >&2
    else
        program redis 10 "$(command -v redis-server) --bind 127.0.0.1 --port $REDIS_PORT --dir \"$CIM_DATA_DIR/redis\" --appendonly yes --maxmemory-policy noeviction --save \"\" --daemonize no"
    fi
    # Outgoing mail (sign-in links) goes to a local SMTP sink that keeps every message as a file.
    if port_answers "$SMTP_PORT"; then
        echo "something already answers on 127.0.0.1:$SMTP_PORT; sending mail there" >&2
    else
        program smtp 10 "\"$BIN/python\" -m aiosmtpd -n -l 127.0.0.1:$SMTP_PORT -c aiosmtpd.handlers.Mailbox \"$MAILDIR\""
    fi
    # One gunicorn worker per service: one writing process per SQLite database (measured: several
    # writer processes starve one of them). Threads give concurrency within that process.
    # The intake's feed server: the same database, read only (GET /api/v1/events), in a process
    # of its own, so the workers' feed reads do not queue behind POSTs in the one writing process.
    GUNICORN="\"$BIN/gunicorn\" --config config/gunicorn.conf.py --workers 1 --threads 4 --no-control-socket"
    program intake 20 "$GUNICORN --bind 127.0.0.1:$INTAKE_PORT \"intake_service:create_app()\"" "$(metrics_env intake)"
    program intake-feed 20 "$GUNICORN --bind 127.0.0.1:$FEED_PORT \"intake_service:create_feed_app()\"" "$(metrics_env intake-feed)"
    program assessment 20 "$GUNICORN --bind 127.0.0.1:$ASSESSMENT_PORT \"assessment_service:create_app()\"" "$(metrics_env assessment)"
    program worker 30 "\"$BIN/celery\" -A workers.celery_app worker --concurrency 1 --loglevel INFO" "$(metrics_env assessment)"
    program beat 30 "\"$BIN/celery\" -A workers.celery_app beat --loglevel INFO --schedule \"$MEM/celerybeat-schedule\""
} >"$CONF"

# The workers' token for the feeds (shown once; a new one each start, the old ones revoked).
FLASK_CLI=("$BIN/flask" --app intake_service)
CIM_FEED_TOKEN="$("${FLASK_CLI[@]}" tokens create --name worker --scope feed:read --replace --quiet)"
export CIM_FEED_TOKEN

# Each department's diploma credential signing key (docs/diplomas.md, "The credential"): made on
# the first start, kept beside the data but outside the databases, never replaced here.
export CIM_CREDENTIAL_KEYS_DIR="${CIM_CREDENTIAL_KEYS_DIR:-$CIM_DATA_DIR/credential-keys}"
for dept in $("$BIN/python" -c "from shared.config import Settings; from shared.catalogue import Catalogue
print(' '.join(sorted(Catalogue.load(Settings.from_env().departments_file).departments)))"); do
    if [[ ! -f "$CIM_CREDENTIAL_KEYS_DIR/$dept.json" ]]; then
        "$BIN/flask" --app assessment_service credential-keys create "$dept" >/dev/null
    fi
done

SUPERVISOR_PID=""
stop_all() {
    trap - EXIT INT TERM
    if [[ -n "$SUPERVISOR_PID" ]] && kill -0 "$SUPERVISOR_PID" 2>/dev/null; then
        echo "stopping..."
        kill -TERM "$SUPERVISOR_PID" 2>/dev/null || true
        wait "$SUPERVISOR_PID" 2>/dev/null || true
        echo "stopped."
    fi
    [[ -n "${MEM_MADE:-}" ]] && rm -rf "$MEM_MADE"
    return 0
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$BIN/supervisord" --nodaemon --configuration "$CONF" &
SUPERVISOR_PID=$!

for _ in $(seq 1 150); do
    curl -fsS "$CIM_INTAKE_URL/health" >/dev/null 2>&1 && break
    kill -0 "$SUPERVISOR_PID" 2>/dev/null || { echo "supervisord stopped; see $LOGS/supervisord.log" >&2; exit 1; }
    sleep 0.2
done
DEMO_ACCOUNTS="$CIM_DATA_DIR/demo-accounts.txt"
if [[ ! -f "$CIM_DATA_DIR/.demo-seeded" && -z "${CIM_RUN_NO_DEMO:-}" ]]; then
    # The demo data goes in through the API with an integration's token, as a real one would.
    CIM_DEMO_TOKEN="$("${FLASK_CLI[@]}" tokens create --name demo-seed --scope intake:register \
        --scope intake:write --replace --quiet)"
    seed_args=("$CIM_INTAKE_URL")
    [[ "${CIM_ENV:-development}" == development ]] && seed_args+=("--accounts=$DEMO_ACCOUNTS")
    CIM_DEMO_TOKEN="$CIM_DEMO_TOKEN" "$BIN/python" scripts/demo_data.py "${seed_args[@]}" \
        && touch "$CIM_DATA_DIR/.demo-seeded"
    "${FLASK_CLI[@]}" tokens revoke --name demo-seed >/dev/null
fi

cat <<MSG

  CIM is running under supervisord (Ctrl-C stops everything it started; a process that dies is
  restarted):
    intake      $CIM_INTAKE_URL/
    assessment  $CIM_ASSESSMENT_URL/review-queue
    projections $CIM_ASSESSMENT_URL/api/v1/projections  (needs a token with scope ops:read:
                .venv/bin/flask --app assessment_service tokens create --name ops --scope ops:read)
    health      $CIM_INTAKE_URL/health, /ready on every web process (also :$ASSESSMENT_PORT, :$FEED_PORT)
    redis       $CIM_REDIS_URL  (data in $CIM_DATA_DIR)
    mail        SMTP sink on 127.0.0.1:$SMTP_PORT; sign-in mails land in $MAILDIR/new
                (ls $MAILDIR/new; open the newest and follow its /auth/link/... address)
    sign in     $CIM_INTAKE_URL/auth/sign-in   (students: e-mail link; staff: password + TOTP)
    feed        $CIM_INTAKE_FEED_URL/api/v1/events  (the intake feed the workers read; scope feed:read)
    logs        $LOGS/{intake,intake-feed,assessment,worker,beat,smtp,redis,supervisord}.log
    processes   .venv/bin/supervisorctl -c $CONF status

MSG
if [[ "${CIM_ENV:-development}" == development && -f "$DEMO_ACCOUNTS" ]]; then
    sed 's/^/  /' "$DEMO_ACCOUNTS"
    echo
fi
wait "$SUPERVISOR_PID" || true
SUPERVISOR_PID=""
