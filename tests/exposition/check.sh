#!/usr/bin/env bash
# The metrics exposition as scrapers see it: the server binary ($1) over a new SQLite database,
# a few calls (health checks through `group-service health`, one for a service it does not
# know), then /metrics scraped in both formats. `promtool check metrics` must accept the
# classic text format; OpenMetrics must end with `# EOF`, the classic format must not.
set -euo pipefail
BIN="$1"

if ! command -v promtool >/dev/null; then
  echo "promtool is not installed: installing it (Debian package prometheus)"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus
fi

dir=$(mktemp -d)
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
scrape() { # scrape OUTPUT [ACCEPT]
  python3 - "$METRICS" "$1" "${2:-}" <<'PY'
import sys, urllib.request
addr, out, accept = sys.argv[1:4]
req = urllib.request.Request(f"http://{addr}/metrics")
if accept:
    req.add_header("Accept", accept)
with urllib.request.urlopen(req, timeout=5) as r, open(out, "wb") as f:
    print(f"{out}: {r.headers['content-type']}")
    f.write(r.read())
PY
}

GRPC="127.0.0.1:$(free_port)"
METRICS="127.0.0.1:$(free_port)"
"$BIN" --listen "$GRPC" --metrics-listen "$METRICS" --data-dir "$dir" \
  --database-url "$dir/server.db" 2>"$dir/server.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

for _ in $(seq 1 100); do
  "$BIN" health --addr "$GRPC" --timeout-ms 500 >/dev/null 2>&1 && break
  sleep 0.1
done
for _ in 1 2 3; do "$BIN" health --addr "$GRPC" >/dev/null; done
"$BIN" health --addr "$GRPC" --service no.Such.Service >/dev/null 2>&1 || true

scrape "$dir/classic.txt"
scrape "$dir/openmetrics.txt" 'application/openmetrics-text; version=1.0.0'

grep -q '^grpc_server_handled_total{grpc_type="unary",grpc_service="grpc.health.v1.Health",grpc_method="Check",grpc_code="OK"} ' "$dir/classic.txt"
grep -q '^# TYPE grpc_server_handled_total counter$' "$dir/classic.txt"
if grep -q '^# EOF' "$dir/classic.txt"; then
  echo "the classic format ends with # EOF" >&2
  exit 1
fi
[ "$(tail -n 1 "$dir/openmetrics.txt")" = "# EOF" ]
promtool check metrics <"$dir/classic.txt"
echo "promtool accepts the classic exposition"
