#!/usr/bin/env bash
# Run the CIM benchmarks (store appends and read_all, then HTTP appends) and write the tables to
# bench/out/last-run.md (ignored by git; raw JSON beside it). `make bench` calls this; pass --full
# for the issue's sizes. What changes a verdict is copied into bench/RESULTS.md by hand.
#
#   bash bench/run.sh            # a few minutes: 3 s append cells, read_all of 100,000 events
#   bash bench/run.sh --full     # 10 s cells, read_all of 1,000,000 events, longer HTTP runs
#
# PostgreSQL: CIM_BENCH_PG_URL if set (a database the run may empty), otherwise a throwaway
# cluster (fsync on) in a temp dir on a free loopback port, stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
FULL=()
for arg in "$@"; do
    case "$arg" in
        --full) FULL=(--full) ;;
        *) echo "usage: bench/run.sh [--full]" >&2; exit 2 ;;
    esac
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/cim-bench.XXXXXX")"
chmod 755 "$WORK"
PG_DIR=""; PG_BIN=""; PG_USER=postgres

pg_as_owner() {
    if [[ "$(id -u)" == 0 ]]; then (cd / && runuser -u "$PG_USER" -- "$@"); else "$@"; fi
}

cleanup() {
    local rc=$?
    if [[ -n "$PG_DIR" && -f "$PG_DIR/data/postmaster.pid" ]]; then
        pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 \
            || pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT INT TERM

# eventsourcing's PostgreSQL module needs psycopg-pool, which the project's lock does not carry:
# install the pinned bench-only requirement into the run's temp dir, not into .venv.
"$PY" -m pip install -q --disable-pip-version-check --no-deps --target "$WORK/pylib" \
    -r bench/requirements-bench.txt
export PYTHONPATH="$WORK/pylib${PYTHONPATH:+:$PYTHONPATH}"

if [[ -z "${CIM_BENCH_PG_URL:-}" ]]; then
    ctl="$(command -v pg_ctl || true)"
    if [[ -n "$ctl" ]]; then PG_BIN="$(dirname "$(readlink -f "$ctl")")"; else PG_BIN=/usr/lib/postgresql/15/bin; fi
    if [[ "$(id -u)" == 0 ]]; then
        id "$PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home "$PG_USER"
    else
        PG_USER="$(id -un)"
    fi
    PG_DIR="$WORK/pg"
    mkdir -p "$PG_DIR"
    [[ "$(id -u)" == 0 ]] && chown "$PG_USER" "$PG_DIR"
    port="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    pg_as_owner "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
        --no-sync >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; exit 1; }
    cat >>"$PG_DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$PG_DIR'
max_connections = 100
fsync = on
synchronous_commit = on
full_page_writes = on
shared_buffers = 256MB
logging_collector = off
CONF
    pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 start >/dev/null \
        || { tail -n 30 "$PG_DIR/postgres.log" >&2; exit 1; }
    pg_as_owner "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres cim_d_bench
    export CIM_BENCH_PG_URL="postgresql://postgres@127.0.0.1:$port/cim_d_bench"
    echo "[bench] throwaway PostgreSQL on 127.0.0.1:$port" >&2
fi

# 1. Appends (8 writers = 8 processes) and read_all, SQLite and PostgreSQL.
"$PY" bench/bench_store.py --sqlite-dir "$WORK" --pg-url "$CIM_BENCH_PG_URL" "${FULL[@]}" \
    --out "$WORK/store.json" >"$WORK/store.md"
# 2. SQLite's embedded default is one process with threads: 8 writer threads sharing one client.
"$PY" bench/bench_store.py --sqlite-dir "$WORK" --backends sqlite --mode threads --writers 8 \
    --skip-read --impls store,raw,peer "${FULL[@]}" \
    --out "$WORK/store-threads.json" >"$WORK/store-threads.md"
# 3. HTTP appends through gunicorn, 1 and 8 clients.
mkdir -p "$WORK/http"
"$PY" bench/bench_http.py --data-dir "$WORK/http" --pg-url "$CIM_BENCH_PG_URL" "${FULL[@]}" \
    --out "$WORK/http.json" >"$WORK/http.md"
"$PY" bench/report.py "$WORK/store.json" "$WORK/store-threads.json" "$WORK/http.json" >"$WORK/last-run.md"
mkdir -p bench/out
cp "$WORK"/store.json "$WORK"/store-threads.json "$WORK"/http.json "$WORK"/last-run.md bench/out/
cat bench/out/last-run.md
echo "[bench] tables written to bench/out/last-run.md (copy what changes a verdict into bench/RESULTS.md)" >&2
