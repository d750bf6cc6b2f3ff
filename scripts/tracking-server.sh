#!/usr/bin/env bash
# A shared MLflow tracking server for a team: PostgreSQL backend store, artifacts proxied by the server.
#
#   scripts/tracking-server.sh start  [--dir DIR] [--host H] [--port P] [--workers N]
#                                     [--backend-store-uri URL] [--artifacts-destination DEST]
#                                     [--timeout S] [-- extra `mlflow server` options]
#   scripts/tracking-server.sh stop   [--dir DIR] [--keep-db]
#   scripts/tracking-server.sh status [--dir DIR]
#
# DIR (default ./tracking-server) keeps the server's state: postgres/ (the PostgreSQL cluster made here
# when no backend URL is given, and its log), artifacts/ (the default --artifacts-destination),
# server.log and server.pid.
# Users log to it with MLFLOW_TRACKING_URI=http://HOST:PORT; artifacts go through the server
# (mlflow-artifacts:/), so clients need no access to DIR.
#
# Passwords never go on a command line: the cluster made here has no password at all (PostgreSQL
# listens only on a Unix socket that only its owner may open, `trust` auth); for an existing database
# give a URL without a password and keep it in ~/.pgpass or PGPASSWORD (libpq reads both), or pass the
# whole URL in the environment as MLFLOW_BACKEND_STORE_URI. `status` prints the URL without a password.
#
# Starts promptly on a small machine: 1 worker (--workers) and MLflow's job runner (a huey consumer for
# GenAI jobs, MLFLOW_SERVER_ENABLE_JOB_EXECUTION) off unless set; `start` returns once /health answers.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

die() { echo "tracking-server: $*" >&2; exit 1; }
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

COMMAND="${1:-}"; [ $# -gt 0 ] && shift
case "$COMMAND" in start|stop|status) ;; -h|--help) usage 0 ;; *) usage 2 >&2 ;; esac
DIR="./tracking-server"; HOST="127.0.0.1"; PORT="5000"; WORKERS="1"; TIMEOUT="180"; KEEP_DB=""
BACKEND="${MLFLOW_BACKEND_STORE_URI:-}"; ARTIFACTS=""; EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR="$2"; shift 2 ;;
    --host) HOST="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    --backend-store-uri) BACKEND="$2"; shift 2 ;;
    --artifacts-destination) ARTIFACTS="$2"; shift 2 ;;
    --keep-db) KEEP_DB=1; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) usage 0 ;;
    *) die "unknown option '$1' (see: $0 --help)" ;;
  esac
done
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
PGHOME="$DIR/postgres"; PGDATA="$PGHOME/data"
# A socket path must stay under ~100 bytes, so the socket lives in a short folder named after DIR.
SOCKET_DIR="/tmp/gz-mlflow-pg-$(printf '%s' "$DIR" | cksum | cut -d' ' -f1)"
PGPORT_FILE="$PGHOME/socket-number"

MLFLOW="$(command -v mlflow || true)"
[ -n "$MLFLOW" ] || MLFLOW="$ROOT/.venv/bin/mlflow"
[ -x "$MLFLOW" ] || die "mlflow not found on PATH or in $ROOT/.venv (run: bash scripts/setup.sh)"
PYTHON="$(dirname "$MLFLOW")/python"

safe_url() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }
pg_bin() {
  local found
  found="$(compgen -G "/usr/lib/postgresql/*/bin/$1" | sort -V | tail -n1 || true)"
  [ -n "$found" ] || found="$(command -v "$1" || true)"
  [ -n "$found" ] || die "PostgreSQL's $1 not found (apt-get install postgresql, or give --backend-store-uri)"
  echo "$found"
}
# PostgreSQL refuses to run as root: then the cluster belongs to the system user `postgres`.
as_owner() { (cd / && if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi); }
managed_db() { [ -f "$PGDATA/PG_VERSION" ]; }
server_pid() { [ -f "$DIR/server.pid" ] && kill -0 "$(cat "$DIR/server.pid")" 2>/dev/null && cat "$DIR/server.pid"; }
port_free() { "$PYTHON" - "$1" "$2" <<'PY'
import socket, sys
with socket.socket() as sock:   # as uvicorn binds it: a port in TIME_WAIT counts as free
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((sys.argv[1], int(sys.argv[2])))
    except OSError:
        sys.exit(1)
PY
}
answers() { "$PYTHON" - "$1" <<'PY'
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1] + "/health", timeout=5).read()
except Exception:
    sys.exit(1)
PY
}

start_postgres() {
  local port
  mkdir -p "$SOCKET_DIR" "$PGHOME"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root, but there is no system user 'postgres' to own the cluster"
    chown postgres "$PGHOME" "$SOCKET_DIR"; chmod 0711 "$DIR"
    runuser -u postgres -- test -w "$PGHOME" ||
      die "user postgres can't reach $PGHOME (a parent folder is private): choose --dir elsewhere"
  fi
  chmod 0700 "$SOCKET_DIR"
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    echo "initialising a PostgreSQL cluster in $PGDATA"
    as_owner "$(pg_bin initdb)" -D "$PGDATA" -U mlflow --auth-local=trust --auth-host=reject >"$PGHOME/initdb.log" 2>&1 ||
      die "initdb failed: see $PGHOME/initdb.log"
  fi
  # No TCP at all: the socket's number only names the socket file, so any free one will do.
  port="$(cat "$PGPORT_FILE" 2>/dev/null || echo 5432)"; echo "$port" >"$PGPORT_FILE"
  if ! as_owner "$(pg_bin pg_ctl)" -D "$PGDATA" status >/dev/null 2>&1; then
    STARTED_PG=1
    as_owner "$(pg_bin pg_ctl)" -D "$PGDATA" -l "$PGHOME/postgres.log" -w -t 60 start \
      -o "-c listen_addresses='' -p $port -k $SOCKET_DIR -c unix_socket_permissions=0700" >/dev/null ||
      die "PostgreSQL didn't start: see $DIR/postgres.log"
  fi
  if ! as_owner "$(pg_bin psql)" -h "$SOCKET_DIR" -p "$port" -U mlflow -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = 'mlflow'" | grep -q 1; then
    as_owner "$(pg_bin createdb)" -h "$SOCKET_DIR" -p "$port" -U mlflow mlflow
  fi
  BACKEND="postgresql+psycopg://mlflow@/mlflow?host=$SOCKET_DIR&port=$port"
}

# A start that fails leaves nothing running: the PostgreSQL it started and the server are stopped.
undo_failed_start() {
  local status=$?
  [ "$status" -ne 0 ] || return 0
  if [ -n "$STARTED_SERVER" ] && pid="$(server_pid)"; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
  [ -z "$STARTED_SERVER" ] || rm -f "$DIR/server.pid"
  if [ -n "$STARTED_PG" ]; then
    as_owner "$(pg_bin pg_ctl)" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 && echo "PostgreSQL stopped again" >&2
  fi
  return "$status"
}

start() {
  if pid="$(server_pid)"; then die "already running (pid $pid): $0 status --dir $DIR"; fi
  if answers "http://$HOST:$PORT"; then die "something already answers on $HOST:$PORT: choose another --port"; fi
  port_free "$HOST" "$PORT" || die "port $PORT on $HOST is taken by another program: choose another --port"
  STARTED_PG=""; STARTED_SERVER=""
  trap undo_failed_start EXIT
  [ -n "$BACKEND" ] || start_postgres
  # psycopg2 isn't installed: SQLAlchemy's plain postgresql:// would look for it.
  BACKEND="$(sed -E 's#^postgres(ql)?://#postgresql+psycopg://#' <<<"$BACKEND")"
  ARTIFACTS="${ARTIFACTS:-$DIR/artifacts}"
  case "$ARTIFACTS" in *://*) ;; *) mkdir -p "$ARTIFACTS"; ARTIFACTS="$(cd "$ARTIFACTS" && pwd)" ;; esac
  echo "$HOST $PORT" >"$DIR/server.address"
  # The backend URL travels in the environment (never argv, where `ps` would show a password).
  MLFLOW_BACKEND_STORE_URI="$BACKEND" \
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}" \
    setsid nohup "$MLFLOW" server --host "$HOST" --port "$PORT" --workers "$WORKERS" \
      --serve-artifacts --artifacts-destination "$ARTIFACTS" "${EXTRA[@]}" >>"$DIR/server.log" 2>&1 </dev/null &
  echo $! >"$DIR/server.pid"; STARTED_SERVER=1
  local deadline=$((SECONDS + TIMEOUT))
  until answers "http://$HOST:$PORT"; do
    if ! server_pid >/dev/null; then
      tail -n 30 "$DIR/server.log" >&2; die "mlflow server exited: see $DIR/server.log"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      STARTED_PG=""; STARTED_SERVER=""   # still starting: left running, as the message says
      tail -n 30 "$DIR/server.log" >&2; die "no answer on http://$HOST:$PORT after ${TIMEOUT}s; it goes on trying (log: $DIR/server.log): $0 stop --dir $DIR"
    fi
    sleep 1
  done
  echo "MLflow tracking server on http://$HOST:$PORT  (backend $(safe_url "$BACKEND"), artifacts $ARTIFACTS)"
  echo "log to it with:  export MLFLOW_TRACKING_URI=http://$HOST:$PORT"
  trap - EXIT
}

stop() {
  local pid
  if pid="$(server_pid)"; then
    # The server leads its own process group (setsid): its uvicorn workers go with it.
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    echo "mlflow server stopped"
  else
    echo "mlflow server not running"
  fi
  rm -f "$DIR/server.pid"
  if [ -z "$KEEP_DB" ] && managed_db && [ -f "$PGDATA/postmaster.pid" ]; then
    as_owner "$(pg_bin pg_ctl)" -D "$PGDATA" -m fast -w stop >/dev/null && echo "PostgreSQL stopped"
  fi
  # PostgreSQL removes its socket when it stops; the short folder made for it goes too (never a stray in /tmp)
  if [ -d "$SOCKET_DIR" ] && ! { managed_db && [ -f "$PGDATA/postmaster.pid" ]; }; then
    rmdir "$SOCKET_DIR" 2>/dev/null || true
  fi
}

status() {
  local pid address
  address="$(cat "$DIR/server.address" 2>/dev/null || echo "$HOST $PORT")"
  if pid="$(server_pid)"; then
    if answers "http://${address% *}:${address#* }"; then
      echo "mlflow server running (pid $pid) on http://${address% *}:${address#* }"
    else
      echo "mlflow server starting (pid $pid), not answering yet; log: $DIR/server.log"
    fi
  else
    echo "mlflow server not running"
  fi
  if managed_db; then
    if as_owner "$(pg_bin pg_ctl)" -D "$PGDATA" status >/dev/null 2>&1; then
      echo "PostgreSQL running: postgresql+psycopg://mlflow@/mlflow?host=$SOCKET_DIR&port=$(cat "$PGPORT_FILE")"
    else
      echo "PostgreSQL not running ($PGDATA)"
    fi
  fi
  [ -n "${pid:-}" ] || return 3
}

"$COMMAND"
