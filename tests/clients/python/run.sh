#!/usr/bin/env bash
# Runs scenario.py, a Python client built from proto/ with grpcio-tools, against the real
# server binary:
#
#   bash tests/clients/python/run.sh target/debug/group-service              # SQLite
#   bash tests/clients/python/run.sh target/debug/group-service postgres://postgres@127.0.0.1:5432/postgres
#
# With a PostgreSQL URL a fresh database is created on that server and dropped afterwards.
# Everything else (the venv with the pinned packages, the stubs, the data dir) lives in a
# temporary directory. Exits non-zero when anything fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
admin_url=${2:-}

work=$(mktemp -d)
server=""
database=""
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  if [ -n "$database" ]; then
    psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt"

# Stubs for groups.v1; google/api/field_behavior.proto resolves from proto/ (its module comes
# with googleapis-common-protos), the well-known types from grpcio-tools.
mkdir "$work/gen"
(cd "$root/proto" && "$py" -m grpc_tools.protoc -I . --python_out="$work/gen" \
  --grpc_python_out="$work/gen" groups/v1/*.proto)

data="$work/data"
mkdir "$data"
db_args=()
if [ -n "$admin_url" ]; then
  database="gs_python_client_$$"
  psql -q "$admin_url" -c "CREATE DATABASE $database"
  db_args=(--database-url "${admin_url%/*}/$database")
fi
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" --listen "127.0.0.1:$port" --data-dir "$data" "${db_args[@]}" serve \
  >"$work/server.log" 2>&1 &
server=$!

# The development secret is written at start: wait for it before minting tokens.
for _ in $(seq 1 100); do
  [ -s "$data/jwt-secret" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
svc=$("$bin" --data-dir "$data" token --tenant 1 --service)
admin=$("$bin" --data-dir "$data" token --tenant 1 --user 7 --admin)

PYTHONPATH="$work/gen" "$py" "$here/scenario.py" --target "127.0.0.1:$port" \
  --service-token "$svc" --admin-token "$admin" || {
  echo "--- server log" >&2
  cat "$work/server.log" >&2
  exit 1
}
