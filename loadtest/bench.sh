#!/usr/bin/env bash
# The benchmark of a running group-service, against baselines measured in the same run.
#
#   bash loadtest/bench.sh           full run (under 10 minutes): PostgreSQL and SQLite,
#                                    100,000-group tenant, baselines first and last
#   bash loadtest/bench.sh --smoke   about 30 seconds (CI): SQLite, a small tenant, every call
#                                    once briefly; exits non-zero when a call fails
#
# Baselines: pgbench -S -M prepared and TPC-B at the same client count on a scratch database,
# and a bare tonic Health server (bare-health) driven by the same load tool (group-load). Then
# the real group-service binary on 127.0.0.1, seeded by `group-load seed`.
#
# Environment: BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres; a server this
# script may create and drop databases on), BENCH_CLIENTS (16), BENCH_SECONDS (6),
# BENCH_PORT (20071, below Linux's ephemeral range, where an outgoing connection's local port
# could take it; the bare server uses the next port), BENCH_KEEP=1 keeps the work dir,
# BENCH_CACHE_MB (the server's --cache-mb, 64; 0 measures without the read cache),
# BENCH_BACKENDS ("postgres sqlite" in the full run), BENCH_SERVER_ARGS (more group-service flags,
# for example "--max-concurrent-calls 100000" to measure overload without the admission limit),
# MALLOC_ARENA_MAX (the server's, 2 as in the Docker image).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=full
case "${1:-}" in
  --smoke) MODE=smoke ;;
  "") ;;
  *) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac

PG_URL="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_BASE="${PG_URL%/*}"
CLIENTS="${BENCH_CLIENTS:-16}"
CACHE_MB="${BENCH_CACHE_MB:-64}"
read -r -a SERVER_ARGS <<<"${BENCH_SERVER_ARGS:-}"
PORT="${BENCH_PORT:-20071}"
BARE_PORT=$((PORT + 1))
SVC_HOST="127.0.0.1:$PORT"
BARE_HOST="127.0.0.1:$BARE_PORT"
METRICS_HOST="127.0.0.1:$((PORT + 2))"
SECOND_HOST="127.0.0.1:$((PORT + 3))"
SECRET="bench-hs256-secret-0123456789abcdef"
PGBENCH_DB="group_bench_pgbench_$$"
SVC_DB="group_bench_service_$$"
WORK="$(mktemp -d /tmp/group-bench.XXXXXX)"
STARTED=$(date +%s)
FAILED=()
RUNS=()
PIDS=()
CREATED_DBS=()

if [ "$MODE" = smoke ]; then
  SECONDS_PER_CALL="${BENCH_SECONDS:-1}"
  WARMUP=0s
  SEED_ARGS=(--groups 3000 --users 600 --team-size 300 --heavy-groups 300 --nested-groups 500
    --team-groups 100 --create-tenants 4 --create-users 50)
  PROFILE=debug
  BACKENDS=(sqlite)
  LATER_PAGE=3
  OPEN_RPS=50
  TOKEN_ROUNDS=50
else
  SECONDS_PER_CALL="${BENCH_SECONDS:-6}"
  WARMUP=1s
  SEED_ARGS=()
  PROFILE=release
  read -r -a BACKENDS <<<"${BENCH_BACKENDS:-postgres sqlite}"
  LATER_PAGE=20
  OPEN_RPS=500
  TOKEN_ROUNDS=2000
fi

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  local db
  for db in "${CREATED_DBS[@]}"; do
    psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    echo "work dir kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

echo "== build ($PROFILE)"
if [ "$PROFILE" = release ]; then
  cargo build --release -q --bin group-service --bin group-load --bin bare-health
  BIN=target/release
else
  cargo build -q --bin group-service --bin group-load --bin bare-health
  BIN=target/debug
fi
LOAD="$BIN/group-load"

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
for p in "$PORT" "$BARE_PORT" "$((PORT + 2))" "$((PORT + 3))"; do
  port_free "$p" || { echo "port $p is in use: set BENCH_PORT" >&2; exit 1; }
done

pg_answers() {
  psql -qAt "$PG_URL" -c "SELECT 1" >/dev/null 2>&1
}

# run NAME [group-load run flags...]: one measured run, RUN_CLIENTS (default BENCH_CLIENTS) in
# flight; its JSON lands in $WORK/r-NAME.json.
run() {
  local name="$1"
  shift
  RUNS+=("$name")
  if ! "$LOAD" run --name "$name" -c "${RUN_CLIENTS:-$CLIENTS}" --connections 4 -z "${SECONDS_PER_CALL}s" \
      --warmup "$WARMUP" --json-out "$WORK/r-$name.json" "$@" >"$WORK/t-$name.txt" 2>&1; then
    FAILED+=("$name")
  fi
  sed 's/^/  /' "$WORK/t-$name.txt"
}

# rerun NAME FACTOR SUFFIX [group-load run flags...]: NAME again as NAME@SUFFIX, open loop at
# FACTOR times the rate its closed-loop run reached; latency from each scheduled send.
rerun() {
  local name="$1" factor="$2" suffix="$3" rps
  shift 3
  rps=$(jq -r ".rps * $factor | floor" "$WORK/r-$name.json" 2>/dev/null || echo 0)
  if [ "${rps:-0}" -lt 1 ]; then
    echo "  no rate for $name: its $suffix run is skipped" >&2
    FAILED+=("$name@$suffix")
    return
  fi
  run "$name@$suffix" "$@" -r "$rps"
}

# half_rate NAME [flags...]: at half the rate (the targets' "p99 at half the maximum rate").
half_rate() {
  local name="$1"
  shift
  rerun "$name" 0.5 half "$@"
}

# overload NAME [flags...]: at 4 times the rate, with up to 1,024 calls in flight: the server's
# admission limit refuses what it cannot run (RESOURCE_EXHAUSTED, allowed here). Goodput is the
# OK answers that ended in the measured window, a second, against the closed-loop rate (the
# peak) and against the ceiling below; it lands in $WORK/goodput. FLAGS name no host.
#
# The ceiling, a baseline of this run: NAME's closed loop again (as NAME@ceiling) while the
# same requests go to the bare tonic server at 3 times NAME's rate, which answers each at once
# (UNIMPLEMENTED). It is the goodput this machine allows when every call beyond the peak costs
# no more than the cheapest answer a gRPC server can give, the load tool's share included: on
# cores shared by the load tool, the server and the database, refusals are not free.
overload() {
  local name="$1" extra
  shift
  RUN_CLIENTS=1024 rerun "$name" 4 4x --host "$SVC_HOST" "$@" --allow-status ResourceExhausted
  [ -e "$WORK/r-$name@4x.json" ] || return 0
  extra=$(jq -r '.rps * 3 | floor' "$WORK/r-$name.json")
  "$BIN/bare-health" --listen "$BARE_HOST" --max-seconds 600 2>"$WORK/bare-ceiling.log" &
  local bare=$!
  PIDS+=("$bare")
  wait_serving "$BARE_HOST" "$bare" "$WORK/bare-ceiling.log"
  # Longer than the measured run on both ends, so that the whole run shares the machine.
  "$LOAD" run --name "$name@ceiling-extra" -c 1024 --connections 4 -r "$extra" \
    -z "$((SECONDS_PER_CALL + 3))s" --host "$BARE_HOST" "$@" --allow-status Unimplemented \
    --json-out "$WORK/r-$name@ceiling-extra.json" >"$WORK/t-$name@ceiling-extra.txt" 2>&1 &
  local extra_pid=$!
  sleep 1
  run "$name@ceiling" --host "$SVC_HOST" "$@"
  wait "$extra_pid" || FAILED+=("$name@ceiling-extra")
  kill "$bare"
  wait "$bare" 2>/dev/null || true
  jq -r --slurpfile peak "$WORK/r-$name.json" --slurpfile ceiling "$WORK/r-$name@ceiling.json" \
    '[.name, .goodput_rps, $peak[0].rps, $ceiling[0].rps, (.status_codes.ResourceExhausted // 0)] | @tsv' \
    "$WORK/r-$name@4x.json" >>"$WORK/goodput"
}

# wait_serving HOST PID LOG: Health/Check answers SERVING within 30 s, or the run fails (with
# the end of the server's LOG).
wait_serving() {
  local i
  for i in $(seq 1 60); do
    if ! kill -0 "$2" 2>/dev/null; then
      echo "server on $1 exited:" >&2
      tail -n 20 "$3" >&2
      return 1
    fi
    if "$LOAD" call --call grpc.health.v1.Health.Check --host "$1" -t 2s 2>/dev/null \
        | grep -q '"SERVING"'; then
      return 0
    fi
    sleep 0.5
  done
  echo "server on $1 did not become SERVING" >&2
  return 1
}

BARE_PID=""
# bare_baseline NAME [bare-health flags...]: the bare server, driven by the same load tool as
# the service (its JSON lands in $WORK/r-NAME.json).
bare_baseline() {
  local name="$1"
  shift
  "$BIN/bare-health" --listen "$BARE_HOST" --max-seconds 600 "$@" 2>"$WORK/$name.log" &
  BARE_PID=$!
  PIDS+=("$BARE_PID")
  wait_serving "$BARE_HOST" "$BARE_PID" "$WORK/$name.log"
  run "$name" --config loadtest/ghz/health.json --host "$BARE_HOST"
  kill "$BARE_PID"
  wait "$BARE_PID" 2>/dev/null || true
}

PGBENCH=0
if [ "$MODE" = full ]; then
  if pg_answers && command -v pgbench >/dev/null; then
    PGBENCH=1
  else
    echo "PostgreSQL at $PG_URL does not answer (or pgbench is missing)" >&2
    exit 1
  fi
fi

pgbench_baseline() {
  local when="$1" out
  out=$(pgbench -n -S -M prepared -c "$CLIENTS" -j 2 -T "$SECONDS_PER_CALL" "$PG_BASE/$PGBENCH_DB" 2>&1)
  echo "$out" | grep -E '^(tps|latency average)' | sed "s/^/  pgbench -S $when: /"
  echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' >"$WORK/pg-select-$when"
  out=$(pgbench -n -M prepared -c "$CLIENTS" -j 2 -T "$SECONDS_PER_CALL" "$PG_BASE/$PGBENCH_DB" 2>&1)
  echo "$out" | grep -E '^(tps|latency average)' | sed "s/^/  pgbench TPC-B $when: /"
  echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' >"$WORK/pg-tpcb-$when"
}

baselines() {
  local when="$1"
  echo "== baselines ($when)"
  if [ "$PGBENCH" = 1 ]; then
    pgbench_baseline "$when"
    # The bare server whose Check makes pgbench -S's one primary-key read first: the ceiling
    # of a gRPC call that needs one read, which uncached reads are measured against (/pk).
    bare_baseline "bare-pk-$when" --pg-url "$PG_BASE/$PGBENCH_DB" --pg-connections "$CLIENTS"
  fi
  bare_baseline "bare-health-$when"
}

# cache_counts: the server's cache hits and lookups so far (its metrics).
cache_counts() {
  curl -s "http://$METRICS_HOST/metrics" | awk '/^group_service_cache_lookups_total/ {
    total += $NF; if ($0 ~ /outcome="hit"/) hits += $NF } END { printf "%d %d\n", hits, total }'
}

# run_hits NAME [flags...]: `run`, and the share of the run's cache lookups that hit, into
# $WORK/hits-NAME (the table's hit% column).
run_hits() {
  local name="$1" before after
  before=$(cache_counts)
  run "$@"
  after=$(cache_counts)
  echo "$before $after" | awk '{ l = $4 - $2; printf "%s\n", (l > 0 ? sprintf("%.0f", 100 * ($3 - $1) / l) : "-") }' \
    >"$WORK/hits-$name"
}

if [ "$PGBENCH" = 1 ]; then
  psql -q "$PG_URL" -c "CREATE DATABASE $PGBENCH_DB" >/dev/null
  CREATED_DBS+=("$PGBENCH_DB")
  pgbench -i -q -s 10 "$PG_BASE/$PGBENCH_DB" >"$WORK/pgbench-init.log" 2>&1
fi
baselines first

bearer() { printf '{"authorization":"Bearer %s"}' "$1"; }

# bench_service BACKEND: seed, start the server, run every call, record RSS.
bench_service() {
  local backend="$1" url
  echo "== group-service on $backend"
  if [ "$backend" = postgres ]; then
    psql -q "$PG_URL" -c "CREATE DATABASE $SVC_DB" >/dev/null
    CREATED_DBS+=("$SVC_DB")
    url="$PG_BASE/$SVC_DB"
  else
    url="$WORK/bench.db"
  fi
  "$BIN/group-service" migrate --database-url "$url" --data-dir "$WORK/data" >/dev/null
  "$LOAD" seed --database-url "$url" --jwt-secret "$SECRET" "${SEED_ARGS[@]}" >"$WORK/seed-$backend.json"
  local s="$WORK/seed-$backend.json"
  jq -r '"  seeded \(.groups) groups, \(.users) users, \(.memberships) memberships (user \(.member_user) in \(.member_user_groups) groups) in \(.seconds | . * 10 | round / 10) s\(if .backend == "postgres" then " (+ \(.analyze_seconds | . * 10 | round / 10) s VACUUM ANALYZE)" else "" end)"' "$s"

  # glibc's allocator as the Docker image runs it (MALLOC_ARENA_MAX, docs/decisions.md).
  MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}" RUST_LOG=warn "$BIN/group-service" \
    --listen "$SVC_HOST" --database-url "$url" \
    --data-dir "$WORK/data" --jwt-secret "$SECRET" --max-connections 16 --cache-mb "$CACHE_MB" \
    --metrics-listen "$METRICS_HOST" \
    "${SERVER_ARGS[@]}" 2>"$WORK/service-$backend.log" &
  local pid=$!
  PIDS+=("$pid")
  wait_serving "$SVC_HOST" "$pid" "$WORK/service-$backend.log"

  local t admin member priv outer team_user outsider muser
  t=$(jq -r .tenant "$s")
  admin=$(bearer "$(jq -r .tokens.admin "$s")")
  member=$(bearer "$(jq -r .tokens.member "$s")")
  priv=$(jq -r .private_group "$s")
  outer=$(jq -r .nest_outer "$s")
  team_user=$(jq -r .team_user "$s")
  outsider=$(jq -r .outsider_user "$s")
  muser=$(jq -r .member_user "$s")
  local b="$backend"
  run "$b:Health" --config loadtest/ghz/health.json --host "$SVC_HOST"
  run "$b:GetGroup-member" --config loadtest/ghz/get_group.json --host "$SVC_HOST" \
    -m "$member" -d "{\"name\":\"$priv\"}"
  run "$b:GetGroup-admin" --config loadtest/ghz/get_group.json --host "$SVC_HOST" \
    -m "$admin" -d "{\"name\":\"$priv\"}"
  # Open loop: a fixed rate, latency from each call's scheduled send.
  run "$b:GetGroup-admin-open${OPEN_RPS}rps" --config loadtest/ghz/get_group.json --host "$SVC_HOST" \
    -m "$admin" -d "{\"name\":\"$priv\"}" -r "$OPEN_RPS"
  local direct=(--config loadtest/ghz/check_membership.json --host "$SVC_HOST" -m "$admin"
    -d "{\"group\":\"$priv\",\"user\":{\"tenant_id\":$t,\"user_id\":$muser}}"
    --expect '{"member":true,"direct":true}')
  run "$b:Check-direct" "${direct[@]}"
  half_rate "$b:Check-direct" "${direct[@]}"
  local depth5=(--config loadtest/ghz/check_membership.json --host "$SVC_HOST" -m "$admin"
    -d "{\"group\":\"$outer\",\"user\":{\"tenant_id\":$t,\"user_id\":$team_user}}"
    --expect '{"member":true,"direct":false}')
  run "$b:Check-depth5-yes" "${depth5[@]}"
  half_rate "$b:Check-depth5-yes" "${depth5[@]}"
  run "$b:Check-depth5-no" --config loadtest/ghz/check_membership.json --host "$SVC_HOST" -m "$admin" \
    -d "{\"group\":\"$outer\",\"user\":{\"tenant_id\":$t,\"user_id\":$outsider}}" \
    --expect '{"member":false}'
  # BatchCheckMembership: the user against 10 and 100 of their own groups in one call.
  local mine
  mine=$("$LOAD" call --call groups.v1.MembershipService.ListGroupsOfUser --host "$SVC_HOST" \
    -m "$member" -d "{\"user\":{\"tenant_id\":$t,\"user_id\":$muser},\"page_size\":100}" \
    | jq -c '[.groups[].group.name]')
  local n
  for n in 10 100; do
    local batch=(--config loadtest/ghz/batch_check_membership.json --host "$SVC_HOST" -m "$admin"
      -d "{\"user\":{\"tenant_id\":$t,\"user_id\":$muser},\"groups\":$(jq -c ".[:$n]" <<<"$mine")}")
    run "$b:BatchCheck-$n" "${batch[@]}"
    half_rate "$b:BatchCheck-$n" "${batch[@]}"
  done

  # A later page: follow the tokens of the first pages.
  local page_body="{\"user\":{\"tenant_id\":$t,\"user_id\":$muser},\"page_size\":50}"
  local token="" i
  for i in $(seq 2 "$LATER_PAGE"); do
    token=$("$LOAD" call --call groups.v1.MembershipService.ListGroupsOfUser --host "$SVC_HOST" \
      -m "$member" -d "{\"user\":{\"tenant_id\":$t,\"user_id\":$muser},\"page_size\":50,\"page_token\":\"$token\"}" \
      | jq -r .next_page_token)
  done
  local first=(--config loadtest/ghz/list_groups_of_user.json --host "$SVC_HOST" -m "$member"
    -d "$page_body")
  run "$b:ListGroupsOfUser-p1" "${first[@]}"
  half_rate "$b:ListGroupsOfUser-p1" "${first[@]}"
  if [ -n "$token" ] && [ "$token" != null ]; then
    local later=(--config loadtest/ghz/list_groups_of_user.json --host "$SVC_HOST" -m "$member"
      -d "{\"user\":{\"tenant_id\":$t,\"user_id\":$muser},\"page_size\":50,\"page_token\":\"$token\"}")
    run "$b:ListGroupsOfUser-p$LATER_PAGE" "${later[@]}"
    half_rate "$b:ListGroupsOfUser-p$LATER_PAGE" "${later[@]}"
  else
    echo "  no page $LATER_PAGE of ListGroupsOfUser" >&2
    FAILED+=("$b:ListGroupsOfUser-p$LATER_PAGE")
  fi
  local auto=(--config loadtest/ghz/autocomplete.json --host "$SVC_HOST" -m "$member"
    -d "{\"parent\":\"tenants/$t\",\"prefix\":\"de\",\"limit\":10}")
  run "$b:Autocomplete" "${auto[@]}"
  half_rate "$b:Autocomplete" "${auto[@]}"
  local search=(--config loadtest/ghz/search_groups.json --host "$SVC_HOST" -m "$member"
    -d "{\"parent\":\"tenants/$t\",\"query\":\"delta\",\"page_size\":20}")
  run "$b:SearchGroups" "${search[@]}"
  half_rate "$b:SearchGroups" "${search[@]}"

  # Existence by timing (R24): another tenant's admin asks for, and tries to rename, an existing
  # private group and a missing one. Both answer NOT_FOUND; the table shows whether they cost
  # the same.
  local foreign rename='{"group":{"name":"%s","display_name":"Taken over"},"update_mask":"displayName"}'
  foreign=$(bearer "$(jq -r '.tokens.create_admins[0]' "$s")")
  run "$b:GetGroup-foreign-existing" --config loadtest/ghz/get_group.json --host "$SVC_HOST" \
    -m "$foreign" -d "{\"name\":\"$priv\"}" --allow-status NotFound
  run "$b:GetGroup-foreign-missing" --config loadtest/ghz/get_group.json --host "$SVC_HOST" \
    -m "$foreign" -d "{\"name\":\"tenants/$t/groups/1\"}" --allow-status NotFound
  run "$b:UpdateGroup-foreign-existing" --config loadtest/ghz/get_group.json --host "$SVC_HOST" \
    --call groups.v1.GroupService.UpdateGroup -m "$foreign" \
    -d "$(printf "$rename" "$priv")" --allow-status NotFound
  run "$b:UpdateGroup-foreign-missing" --config loadtest/ghz/get_group.json --host "$SVC_HOST" \
    --call groups.v1.GroupService.UpdateGroup -m "$foreign" \
    -d "$(printf "$rename" "tenants/$t/groups/1")" --allow-status NotFound

  if [ "$MODE" = smoke ]; then
    # The shipped file as it is (tenant 1, master 7), bounded by its own total.
    run "$b:CreateGroup-file" --config loadtest/ghz/create_group.json --host "$SVC_HOST" \
      -m "$admin" -n 200
  fi
  local c1 cu tokens1 bodies metas
  c1=$(jq -r '.create_tenants[0]' "$s")
  cu=$(jq -r '.create_users' "$s")
  tokens1=$(bearer "$(jq -r '.tokens.create_admins[0]' "$s")")
  local create_tpl='{"parent":"tenants/%s","group":{"display_name":"load {{.RequestNumber}} {{.UUID}}"},"master_user_ids":["{{randomInt 1 %s}}"],"request_id":"{{.UUID}}"}'
  run "$b:CreateGroup-1tenant" --config loadtest/ghz/create_group.json --host "$SVC_HOST" \
    -m "$tokens1" -d "$(printf "$create_tpl" "$c1" "$((cu + 1))")"
  bodies=$(jq -c --arg tpl "$create_tpl" --argjson cu "$((cu + 1))" \
    '[.create_tenants[] as $c | $tpl | sub("%s"; "\($c)") | sub("%s"; "\($cu)") | fromjson]' "$s")
  metas=$(jq -c '[.tokens.create_admins[] | {authorization: "Bearer \(.)"}]' "$s")
  local many="$b:CreateGroup-$(jq '.create_tenants | length' "$s")tenants"
  run "$many" --config loadtest/ghz/create_group.json --host "$SVC_HOST" -m "$metas" -d "$bodies"
  overload "$many" --config loadtest/ghz/create_group.json -m "$metas" -d "$bodies"

  # Reads under writes: CheckMembership of the private group for users drawn from the
  # tenant's first 2,000 (many keys, not one hot key), and GetGroup over the first 1,000 group
  # ids, while creates run open loop in the other tenants at 0, 10 and 100 a second (the
  # cache's per-tenant revisions: other tenants' writes keep this tenant's answers), then at
  # 10 a second in the tenant itself.
  local spread_users spread_groups wrps wpid
  spread_users=$(jq -r '[.users, 2000] | min' "$s")
  spread_groups=$(jq -c '[.group_sample[] | {name: .}]' "$s")
  local spread=(--config loadtest/ghz/check_membership.json --host "$SVC_HOST" -m "$admin"
    -d "{\"group\":\"$priv\",\"user\":{\"tenant_id\":$t,\"user_id\":\"{{randomInt 1 $((spread_users + 1))}}\"}}")
  local spread_get=(--config loadtest/ghz/get_group.json --host "$SVC_HOST" -m "$admin"
    -d "$spread_groups")
  # The tenant holds its plan's 100,000 groups: its own writes are updates of its public
  # group's description (an UpdateGroup without an etag).
  local own_bodies
  own_bodies="{\"group\":{\"name\":\"$(jq -r .public_group "$s")\",\"description\":\"load {{.UUID}}\"},\"update_mask\":\"description\"}"
  # The same reads with `x-consistency: fully-consistent` (the cache bypassed, call by call)
  # at 0 and 100 writes a second: the cache off, measured beside it.
  local uncached_admin
  uncached_admin=$(jq -c '. + {"x-consistency": "fully-consistent"}' <<<"$admin")
  local spread_off=("${spread[@]}")
  spread_off[5]="$uncached_admin"
  local spread_get_off=("${spread_get[@]}")
  spread_get_off[5]="$uncached_admin"
  for wrps in 0 10 100 400 own10; do
    wpid=""
    case "$wrps" in
      0) ;;
      own10)
        "$LOAD" run --name "writes-$wrps" --config loadtest/ghz/create_group.json --host "$SVC_HOST" \
          --call groups.v1.GroupService.UpdateGroup -m "$admin" -d "$own_bodies" -c 4 \
          --connections 1 -r 10 \
          -z "$((2 * SECONDS_PER_CALL + 6))s" >"$WORK/w-$b-$wrps.txt" 2>&1 &
        wpid=$! ;;
      *)
        "$LOAD" run --name "writes-$wrps" --config loadtest/ghz/create_group.json --host "$SVC_HOST" \
          -m "$metas" -d "$bodies" -c 4 --connections 1 -r "$wrps" \
          -z "$((2 * SECONDS_PER_CALL + 6))s" >"$WORK/w-$b-$wrps.txt" 2>&1 &
        wpid=$! ;;
    esac
    [ -z "$wpid" ] || sleep 1
    run_hits "$b:Check-${spread_users}users-writes-$wrps" "${spread[@]}"
    run_hits "$b:GetGroup-$(jq '.group_sample | length' "$s")groups-writes-$wrps" "${spread_get[@]}"
    case "$wrps" in
      0 | 100)
        run_hits "$b:Check-${spread_users}users-writes-$wrps-nocache" "${spread_off[@]}"
        run_hits "$b:GetGroup-$(jq '.group_sample | length' "$s")groups-writes-$wrps-nocache" "${spread_get_off[@]}"
        ;;
    esac
    [ -z "$wpid" ] || wait "$wpid" || FAILED+=("$b:writes-$wrps")
  done

  # A plain member in many groups (the seed's member user), over random groups of theirs:
  # GetGroup and CheckMembership of themselves, uncached (against the /pk baseline: tonic and
  # one primary-key read) and cached; then the names of all of their groups in one call.
  local uncached_member their_groups their_checks
  uncached_member=$(jq -c '. + {"x-consistency": "fully-consistent"}' <<<"$member")
  their_groups=$(jq -c --argjson n "$(jq .member_user_groups "$s")" '[.group_sample[:$n][] | {name: .}]' "$s")
  their_checks=$(jq -c --argjson n "$(jq .member_user_groups "$s")" --argjson t "$t" --argjson u "$muser" \
    '[.group_sample[:$n][] | {group: ., user: {tenant_id: $t, user_id: $u}}]' "$s")
  local mg
  mg=$(jq .member_user_groups "$s")
  run "$b:GetGroup-member-in-${mg}-uncached" --config loadtest/ghz/get_group.json --host "$SVC_HOST" \
    -m "$uncached_member" -d "$their_groups"
  run "$b:Check-member-in-${mg}-uncached" --config loadtest/ghz/check_membership.json --host "$SVC_HOST" \
    -m "$uncached_member" -d "$their_checks" --expect '{"member":true}'
  run_hits "$b:GetGroup-member-in-${mg}-cached" --config loadtest/ghz/get_group.json --host "$SVC_HOST" \
    -m "$member" -d "$their_groups"
  run_hits "$b:Check-member-in-${mg}-cached" --config loadtest/ghz/check_membership.json --host "$SVC_HOST" \
    -m "$member" -d "$their_checks" --expect '{"member":true}'
  local names_body="{\"user\":{\"tenant_id\":$t,\"user_id\":$muser},\"view\":\"GROUP_OF_USER_VIEW_NAME_ONLY\"}"
  run_hits "$b:GroupNames-of-${mg}-cached" --config loadtest/ghz/list_groups_of_user.json --host "$SVC_HOST" \
    -m "$member" -d "$names_body"
  run "$b:GroupNames-of-${mg}-uncached" --config loadtest/ghz/list_groups_of_user.json --host "$SVC_HOST" \
    -m "$uncached_member" -d "$names_body"

  # Consistency tokens across servers (PostgreSQL: a second server on the same database):
  # writes through this server, each read at once through the second one, every other read
  # with the write's token. The token reads must never be stale; their p99 against the plain
  # reads' is what the token adds.
  if [ "$backend" = postgres ]; then
    RUST_LOG=warn "$BIN/group-service" --listen "$SECOND_HOST" --database-url "$url" \
      --data-dir "$WORK/data" --jwt-secret "$SECRET" --max-connections 16 --cache-mb "$CACHE_MB" \
      2>"$WORK/service-second.log" &
    local second=$!
    PIDS+=("$second")
    wait_serving "$SECOND_HOST" "$second" "$WORK/service-second.log"
    if "$LOAD" token-reads --write-host "$SVC_HOST" --read-host "$SECOND_HOST" \
        --token "$(jq -r .tokens.admin "$s")" --group "$(jq -r .public_group "$s")" \
        --rounds "$TOKEN_ROUNDS" >"$WORK/token-$b.json"; then
      :
    else
      FAILED+=("$b:token-reads")
    fi
    jq -r 'def ms: . * 100 | round / 100;
      "  token reads on a second server, \(.rounds) rounds: with the token p50 \(.with_token.p50_ms | ms) ms, p99 \(.with_token.p99_ms | ms) ms, stale \(.stale_with_token); without p50 \(.without_token.p50_ms | ms) ms, p99 \(.without_token.p99_ms | ms) ms, stale \(.stale_without_token)"' \
      "$WORK/token-$b.json" 2>/dev/null || true
    kill "$second"
    wait "$second" 2>/dev/null || true
  fi

  local rss hwm
  rss=$(awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status")
  hwm=$(awk '/^VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status")
  echo "$rss $hwm" >"$WORK/rss-$backend"
  echo "  server RSS: $rss MiB now, $hwm MiB peak"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

for backend in "${BACKENDS[@]}"; do
  bench_service "$backend"
done

baselines last

# The table: each call's throughput against the medians of the baselines (first and last).
median2() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { printf "%.1f", (a + b) / 2 }'; }
bare_first=$(jq .rps "$WORK/r-bare-health-first.json" 2>/dev/null || echo 0)
bare_last=$(jq .rps "$WORK/r-bare-health-last.json" 2>/dev/null || echo 0)
BARE=$(median2 "$bare_first" "$bare_last")
pk_first=$(jq .rps "$WORK/r-bare-pk-first.json" 2>/dev/null || echo 0)
pk_last=$(jq .rps "$WORK/r-bare-pk-last.json" 2>/dev/null || echo 0)
PK=$(median2 "$pk_first" "$pk_last")
echo
echo "== baselines (first / last / median)"
printf '  %-28s %10.1f %10.1f %10.1f\n' "bare tonic Health/Check" "$bare_first" "$bare_last" "$BARE"
if [ "$PGBENCH" = 1 ]; then
  printf '  %-28s %10.1f %10.1f %10.1f\n' "bare tonic + one key read" "$pk_first" "$pk_last" "$PK"
fi
SEL=0
TPCB=0
if [ "$PGBENCH" = 1 ]; then
  SEL=$(median2 "$(cat "$WORK/pg-select-first")" "$(cat "$WORK/pg-select-last")")
  TPCB=$(median2 "$(cat "$WORK/pg-tpcb-first")" "$(cat "$WORK/pg-tpcb-last")")
  printf '  %-28s %10.1f %10.1f %10.1f\n' "pgbench -S -M prepared" \
    "$(cat "$WORK/pg-select-first")" "$(cat "$WORK/pg-select-last")" "$SEL"
  printf '  %-28s %10.1f %10.1f %10.1f\n' "pgbench TPC-B" \
    "$(cat "$WORK/pg-tpcb-first")" "$(cat "$WORK/pg-tpcb-last")" "$TPCB"
fi
echo
echo "== calls ($CLIENTS in flight, 4 connections, ${SECONDS_PER_CALL}s each after $WARMUP warm-up)"
printf '  %-34s %9s %8s %8s %8s %8s %8s %9s %9s %5s\n' call rps p50_ms p99_ms p99.9_ms /bare /pk /pg-S /pg-TPCB hit%
for name in "${RUNS[@]}"; do
  f="$WORK/r-$name.json"
  case "$name" in *:*) ;; *) continue ;; esac
  [ -e "$f" ] || continue
  hits=$(cat "$WORK/hits-$name" 2>/dev/null || echo "")
  jq -r --argjson bare "$BARE" --argjson pk "$PK" --argjson sel "$SEL" --argjson tpcb "$TPCB" \
    --arg hits "${hits:--}" '
    def r($base): if $base > 0 then (.rps / $base * 1000 | round / 1000 | tostring) else "-" end;
    [.name, (.rps | . * 10 | round / 10), .latency_ms.p50, .latency_ms.p99, .latency_ms.p99_9,
     r($bare), r($pk), r($sel), r($tpcb), $hits, (if .passed then "" else "FAILED" end)] | @tsv' "$f"
done | while IFS=$'\t' read -r name rps p50 p99 p999 rb rp rs rt hit status; do
  printf '  %-34s %9s %8.3f %8.3f %8.3f %8s %8s %8s %9s %5s %s\n' "$name" "$rps" "$p50" "$p99" "$p999" "$rb" "$rp" "$rs" "$rt" "$hit" "$status"
done
if [ -f "$WORK/goodput" ]; then
  echo
  echo "== overload: offered 4 x the closed-loop rate, up to 1,024 in flight"
  echo "  (ceiling: the closed loop while the same requests go to the bare server at 3 x its rate)"
  printf '  %-34s %11s %9s %10s %7s %10s %10s\n' call goodput/s peak/s ceiling/s /peak /ceiling refused
  while IFS=$'\t' read -r name good peak ceiling refused; do
    awk -v n="$name" -v g="$good" -v p="$peak" -v c="$ceiling" -v r="$refused" \
      'BEGIN { printf "  %-34s %11.1f %9.1f %10.1f %7.3f %10.3f %10d\n", n, g, p, c,
        (p > 0 ? g / p : 0), (c > 0 ? g / c : 0), r }'
  done <"$WORK/goodput"
fi
for backend in "${BACKENDS[@]}"; do
  if [ -f "$WORK/rss-$backend" ]; then
    read -r rss hwm <"$WORK/rss-$backend"
    echo "  server RSS on $backend: $rss MiB at the end, $hwm MiB peak"
  fi
done
echo "  total time: $(($(date +%s) - STARTED)) s"

if [ "${#FAILED[@]}" -gt 0 ]; then
  echo "FAILED: ${FAILED[*]}" >&2
  exit 1
fi
echo "bench passed"
