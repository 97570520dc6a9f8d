# shellcheck shell=bash
# Throwaway PostgreSQL 15 and redis-server instances for tests and local runs. Source this file;
# it defines functions only. Each start_* exports what the tests need to find (and to stop and
# restart) the server; each stop_* is safe to call twice or when the start failed half-way.
#
#   source scripts/services.sh
#   start_postgres   # exports CIM_TEST_PG_URL, CIM_TEST_PG_BIN, CIM_TEST_PG_DATA, CIM_TEST_PG_PORT, CIM_TEST_PG_USER
#   start_redis      # exports CIM_TEST_REDIS_URL, CIM_TEST_REDIS_PORT, CIM_TEST_REDIS_DIR
#   start_smtp       # exports CIM_TEST_SMTP_PORT, CIM_TEST_SMTP_DIR (a Maildir: new/ holds each message)
#   ensure_browser_tools  # chromium, node and tests/browser/node_modules (browser and axe tests)
#   ensure_pdf_libs  # Pango for WeasyPrint (the diploma PDF); poppler-utils, zbar-tools for its tests
#   stop_smtp; stop_redis; stop_postgres

_svc_log() { echo "[services] $*" >&2; }

# A TCP port nobody listens on now (the kernel picks it; a race with another process is unlikely).
free_port() {
    local py
    py="$(command -v python3 || command -v python)"
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The directory that holds pg_ctl and initdb (PATH first, then Debian's versioned directory).
pg_bin_dir() {
    local ctl
    ctl="$(command -v pg_ctl || true)"
    if [[ -n "$ctl" ]]; then
        dirname "$(readlink -f "$ctl")"
    elif [[ -x /usr/lib/postgresql/15/bin/pg_ctl ]]; then
        echo /usr/lib/postgresql/15/bin
    else
        _svc_log "pg_ctl not found (PATH or /usr/lib/postgresql/15/bin)"
        return 1
    fi
}

# Run a PostgreSQL binary as the cluster's owner: initdb and pg_ctl refuse to run as root.
_pg_as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        (cd / && runuser -u "$CIM_TEST_PG_USER" -- "$@")
    else
        "$@"
    fi
}

ensure_redis_installed() {
    if command -v redis-server >/dev/null 2>&1; then
        return 0
    fi
    _svc_log "redis-server missing: installing it with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq redis-server >/dev/null
    # The package starts a system-wide server on :6379; the tests use their own, so stop it.
    if command -v systemctl >/dev/null 2>&1; then systemctl stop redis-server >/dev/null 2>&1 || true; fi
    if command -v service >/dev/null 2>&1; then service redis-server stop >/dev/null 2>&1 || true; fi
}

# Headless Chromium (Debian's package), node, and the browser tests' pinned node packages
# (puppeteer-core drives the system chromium; it downloads no browser of its own).
ensure_browser_tools() {
    local missing=()
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    if (( ${#missing[@]} )); then
        _svc_log "installing ${missing[*]} with apt-get (browser and accessibility tests)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq "${missing[@]}" fonts-dejavu-core >/dev/null || return 1
    fi
    local dir="${ROOT:-$(pwd)}/tests/browser"
    if [[ ! -f "$dir/node_modules/.package-lock.json" || "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]]; then
        _svc_log "installing the browser tests' node packages (npm ci)"
        (cd "$dir" && npm ci --no-audit --no-fund --silent) || return 1
    fi
}

# The shared libraries WeasyPrint loads at import (Pango and its FreeType backend, which bring
# HarfBuzz and Fontconfig) and, for the tests that look at a rendered diploma, poppler-utils
# (pdftoppm, pdftotext) and zbar-tools (zbarimg); `--runtime` leaves those out. Installed with
# apt-get only when missing.
ensure_pdf_libs() {
    local missing=() libs
    # One read of the cache (grep -q on a pipe would end ldconfig early: a failure under pipefail).
    libs="$(ldconfig -p 2>/dev/null || true)"
    grep -q 'libpango-1\.0\.so\.0' <<<"$libs" || missing+=(libpango-1.0-0)
    grep -q 'libpangoft2-1\.0\.so\.0' <<<"$libs" || missing+=(libpangoft2-1.0-0)
    grep -q 'libharfbuzz-subset\.so\.0' <<<"$libs" || missing+=(libharfbuzz-subset0)
    if [[ "${1:-}" != --runtime ]]; then
        # the tests: pdftoppm/pdftotext look at a diploma, zbarimg reads its QR code
        command -v pdftoppm >/dev/null 2>&1 || missing+=(poppler-utils)
        command -v zbarimg >/dev/null 2>&1 || missing+=(zbar-tools)
    fi
    (( ${#missing[@]} )) || return 0
    _svc_log "installing ${missing[*]} with apt-get (the diploma PDF)"
    local sudo_cmd=""
    [[ "$(id -u)" != 0 ]] && sudo_cmd="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Init a cluster in a temp dir and start it on 127.0.0.1 at a free port, fsync and
# synchronous_commit on (durability is what the reliability tests check).
start_postgres() {
    local bin dir port
    bin="$(pg_bin_dir)" || return 1
    export CIM_TEST_PG_USER="${CIM_TEST_PG_USER:-postgres}"
    if [[ "$(id -u)" == 0 ]]; then
        id "$CIM_TEST_PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home "$CIM_TEST_PG_USER"
    else
        CIM_TEST_PG_USER="$(id -un)"
    fi
    dir="$(mktemp -d "${TMPDIR:-/tmp}/cim-pg.XXXXXX")"
    chmod 755 "$dir"
    [[ "$(id -u)" == 0 ]] && chown "$CIM_TEST_PG_USER" "$dir"
    port="$(free_port)"
    export CIM_TEST_PG_BIN="$bin" CIM_TEST_PG_DATA="$dir/data" CIM_TEST_PG_PORT="$port"
    export _CIM_PG_DIR="$dir"
    # --no-sync only skips syncing initdb's own files; the server below runs with fsync on.
    _pg_as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale \
        --no-sync >"$dir/initdb.log" 2>&1 \
        || { _svc_log "initdb failed:"; cat "$dir/initdb.log" >&2; return 1; }
    # Settings live in the data directory so a bare `pg_ctl start -D "$CIM_TEST_PG_DATA"` (a test
    # restarting the server after `pg_ctl stop -m immediate`) comes back the same.
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
fsync = on
synchronous_commit = on
full_page_writes = on
logging_collector = off
EOF
    _pg_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null \
        || { _svc_log "PostgreSQL did not start:"; tail -n 30 "$dir/postgres.log" >&2; return 1; }
    export CIM_TEST_PG_URL="postgresql://postgres@127.0.0.1:$port/postgres"
    _svc_log "PostgreSQL on 127.0.0.1:$port (data $dir/data)"
}

stop_postgres() {
    [[ -n "${_CIM_PG_DIR:-}" && -d "$_CIM_PG_DIR" ]] || return 0
    if [[ -f "$CIM_TEST_PG_DATA/postmaster.pid" ]]; then
        _pg_as_owner "$CIM_TEST_PG_BIN/pg_ctl" -D "$CIM_TEST_PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1 \
            || _pg_as_owner "$CIM_TEST_PG_BIN/pg_ctl" -D "$CIM_TEST_PG_DATA" -m immediate stop >/dev/null 2>&1 \
            || true
    fi
    rm -rf "$_CIM_PG_DIR"
    unset _CIM_PG_DIR
}

# redis-server on 127.0.0.1 at a free port, AOF on and no eviction (as in production).
start_redis() {
    local dir port
    ensure_redis_installed || return 1
    dir="$(mktemp -d "${TMPDIR:-/tmp}/cim-redis.XXXXXX")"
    port="$(free_port)"
    export CIM_TEST_REDIS_PORT="$port" CIM_TEST_REDIS_DIR="$dir" _CIM_REDIS_DIR="$dir"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --appendonly yes --appendfsync everysec \
        --maxmemory-policy noeviction --save '' --daemonize yes --pidfile "$dir/redis.pid" \
        --logfile "$dir/redis.log" \
        || { _svc_log "redis-server did not start"; return 1; }
    local i
    for i in $(seq 1 100); do
        if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
            export CIM_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
            _svc_log "redis-server on 127.0.0.1:$port (dir $dir)"
            return 0
        fi
        sleep 0.1
    done
    _svc_log "redis-server did not answer PING:"
    tail -n 20 "$dir/redis.log" >&2
    return 1
}

stop_redis() {
    [[ -n "${_CIM_REDIS_DIR:-}" && -d "$_CIM_REDIS_DIR" ]] || return 0
    local pid=""
    [[ -f "$_CIM_REDIS_DIR/redis.pid" ]] && pid="$(cat "$_CIM_REDIS_DIR/redis.pid")"
    # A test may have left it frozen (SIGSTOP): wake it, and never wait long for an answer.
    [[ -n "$pid" ]] && kill -CONT "$pid" 2>/dev/null
    timeout 5 redis-cli -h 127.0.0.1 -p "$CIM_TEST_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    if [[ -n "$pid" ]]; then
        local i
        for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -rf "$_CIM_REDIS_DIR"
    unset _CIM_REDIS_DIR
}

# The Python that has aiosmtpd: $CIM_PYTHON, else the project's venv, else python3 on PATH.
_smtp_python() {
    local here
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    if [[ -n "${CIM_PYTHON:-}" ]]; then
        echo "$CIM_PYTHON"
    elif [[ -x "$here/.venv/bin/python" ]]; then
        echo "$here/.venv/bin/python"
    else
        command -v python3
    fi
}

# An SMTP sink (aiosmtpd) on 127.0.0.1 at a free port (or $1), storing every message it receives
# in a Maildir (or in $2): what the e-mail tests read their sign-in links from.
start_smtp() {
    local dir port py maildir i
    py="$(_smtp_python)"
    port="${1:-$(free_port)}"
    if [[ -n "${2:-}" ]]; then
        maildir="$2"
        dir="$(mktemp -d "${TMPDIR:-/tmp}/cim-smtp.XXXXXX")"
    else
        dir="$(mktemp -d "${TMPDIR:-/tmp}/cim-smtp.XXXXXX")"
        maildir="$dir/maildir"
    fi
    mkdir -p "$(dirname "$maildir")"
    "$py" -m aiosmtpd -n -l "127.0.0.1:$port" -c aiosmtpd.handlers.Mailbox "$maildir" \
        >"$dir/smtp.log" 2>&1 &
    echo $! >"$dir/smtp.pid"
    export _CIM_SMTP_DIR="$dir"
    for i in $(seq 1 100); do
        if "$py" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' \
            "$port" 2>/dev/null; then
            export CIM_TEST_SMTP_PORT="$port" CIM_TEST_SMTP_DIR="$maildir"
            _svc_log "SMTP sink on 127.0.0.1:$port (mail in $maildir)"
            return 0
        fi
        if ! kill -0 "$(cat "$dir/smtp.pid")" 2>/dev/null; then break; fi
        sleep 0.1
    done
    _svc_log "the SMTP sink did not start:"
    tail -n 20 "$dir/smtp.log" >&2
    return 1
}

stop_smtp() {
    [[ -n "${_CIM_SMTP_DIR:-}" && -d "$_CIM_SMTP_DIR" ]] || return 0
    local pid="" i
    [[ -f "$_CIM_SMTP_DIR/smtp.pid" ]] && pid="$(cat "$_CIM_SMTP_DIR/smtp.pid")"
    if [[ -n "$pid" ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -rf "$_CIM_SMTP_DIR"
    unset _CIM_SMTP_DIR CIM_TEST_SMTP_PORT CIM_TEST_SMTP_DIR
}
