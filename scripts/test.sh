#!/usr/bin/env bash
# Runs every flowstore test: the unit tests and each crate's integration-test binary
# (tests/main.rs of flowstore and of flowstore-server), most of whose test bodies run
# on SQLite and on PostgreSQL.
#
# PostgreSQL comes from, in order:
#   1. FLOWSTORE_TEST_PG, if set (an admin URL whose role may CREATE DATABASE);
#   2. a server answering at 127.0.0.1:5432 as user postgres;
#   3. a throwaway cluster started from the installed PostgreSQL binaries (initdb,
#      pg_ctl) in a temporary directory, stopped and removed on exit.
# When none of these works the script fails and says why: PostgreSQL tests never
# pass by being skipped.
#
# Usage: scripts/test.sh [--throwaway] [extra cargo test arguments]
#   --throwaway   always use a throwaway cluster (ignores a running server)
set -euo pipefail
cd "$(dirname "$0")/.."

force_throwaway=0
if [[ "${1:-}" == "--throwaway" ]]; then
  force_throwaway=1
  shift
fi

log() { printf 'test.sh: %s\n' "$*" >&2; }

pg_answers() {
  # Uses psql when present; otherwise a bare TCP probe.
  if command -v psql >/dev/null 2>&1; then
    psql "$1" -Atqc 'SELECT 1' >/dev/null 2>&1
  else
    (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
  fi
}

find_pg_bin() {
  local dir
  for dir in "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/*/bin /usr/local/pgsql/bin /usr/local/bin /usr/bin; do
    if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

cluster_dir=""
cleanup() {
  if [[ -n "$cluster_dir" && -d "$cluster_dir" ]]; then
    log "stopping the throwaway PostgreSQL cluster"
    run_as_owner "$pg_bin/pg_ctl" -D "$cluster_dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$cluster_dir"
  fi
}
trap cleanup EXIT

run_as_owner() {
  # initdb and postgres refuse to run as root: run them as an unprivileged user.
  if [[ "$(id -u)" == "0" ]]; then
    runuser -u "$pg_user" -- "$@"
  else
    "$@"
  fi
}

start_throwaway() {
  pg_bin=$(find_pg_bin) || {
    log "ERROR: PostgreSQL is not running at 127.0.0.1:5432 and no PostgreSQL binaries (initdb, pg_ctl) were found."
    log "Install PostgreSQL 14+ (for example: apt-get install postgresql) or set FLOWSTORE_TEST_PG to a server's admin URL."
    exit 1
  }
  pg_user=$(id -un)
  if [[ "$(id -u)" == "0" ]]; then
    if id postgres >/dev/null 2>&1; then pg_user=postgres; else pg_user=nobody; fi
  fi
  cluster_dir=$(mktemp -d /tmp/flowstore-pg.XXXXXX)
  chmod 755 "$cluster_dir"
  chown "$pg_user" "$cluster_dir" 2>/dev/null || true
  local port=$(( 20000 + RANDOM % 20000 ))
  log "starting a throwaway PostgreSQL cluster from $pg_bin on port $port"
  run_as_owner "$pg_bin/initdb" -D "$cluster_dir/data" -U postgres --auth=trust -E UTF8 >"$cluster_dir/initdb.log" 2>&1 || {
    log "ERROR: initdb failed:"; cat "$cluster_dir/initdb.log" >&2; exit 1; }
  run_as_owner "$pg_bin/pg_ctl" -D "$cluster_dir/data" -l "$cluster_dir/server.log" -w -t 60 \
    -o "-p $port -k $cluster_dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null || {
    log "ERROR: the throwaway PostgreSQL did not start:"; cat "$cluster_dir/server.log" >&2; exit 1; }
  export FLOWSTORE_TEST_PG="postgres://postgres@127.0.0.1:$port/postgres"
}

if [[ -n "${FLOWSTORE_TEST_PG:-}" && $force_throwaway == 0 ]]; then
  pg_answers "$FLOWSTORE_TEST_PG" || { log "ERROR: FLOWSTORE_TEST_PG=$FLOWSTORE_TEST_PG does not answer"; exit 1; }
elif [[ $force_throwaway == 0 ]] && pg_answers "postgres://postgres@127.0.0.1:5432/postgres"; then
  export FLOWSTORE_TEST_PG="postgres://postgres@127.0.0.1:5432/postgres"
else
  start_throwaway
fi
log "PostgreSQL for the tests: $FLOWSTORE_TEST_PG"

# The tests name their databases with this run's prefix, and each test drops the
# databases it made when it ends (flowstore-testkit's guards). What a test process
# that died before its guards ran left behind is dropped here: only databases with
# this run's prefix, so a second run on the same server (or its databases) is never
# touched.
run_id=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
export FLOWSTORE_TEST_DB_PREFIX="fs_test_${run_id}_"
log "test databases are named ${FLOWSTORE_TEST_DB_PREFIX}…"
drop_test_databases() {
  command -v psql >/dev/null 2>&1 || return 0
  local left
  left=$(psql "$FLOWSTORE_TEST_PG" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE '${FLOWSTORE_TEST_DB_PREFIX//_/\\_}%'" 2>/dev/null) || return 0
  [[ -n "$left" ]] || return 0
  log "dropping $(wc -l <<<"$left") test database(s) left by this run"
  while read -r db; do psql "$FLOWSTORE_TEST_PG" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true; done <<<"$left"
}
trap 'drop_test_databases; cleanup' EXIT

# Debian packages some tests drive, installed here when missing (as root, from
# Debian's packages); without them those tests fail and say so, never skip:
# Chromium and chromedriver for the dashboard's browser tests, PgBouncer for the
# tests that reach PostgreSQL through a pooler.
need_packages() {
  local why=$1; shift
  local missing=()
  local pair
  for pair in "$@"; do
    # Each argument is command:package.
    [[ -x "$(command -v "${pair%%:*}" 2>/dev/null)" || -x "/usr/sbin/${pair%%:*}" ]] || missing+=("${pair##*:}")
  done
  [[ ${#missing[@]} -gt 0 ]] || return 0
  if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
    log "installing ${missing[*]} for $why"
    apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
      apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${missing[@]}" >/dev/null; } || {
      log "ERROR: could not install ${missing[*]}"; exit 1; }
  else
    log "WARNING: ${missing[*]} missing; $why will fail (apt-get install ${missing[*]})"
  fi
}
need_packages "the browser tests" chromium:chromium chromedriver:chromium-driver
need_packages "the pooler tests" pgbouncer:pgbouncer

results=$(mktemp /tmp/flowstore-test-results.XXXXXX)
set +e
cargo test --workspace --all-targets "$@" 2>&1 | tee "$results"
status=${PIPESTATUS[0]}
set -e
passed=$(awk '/^test result:/ {n += $4} END {print n + 0}' "$results")
failed=$(awk '/^test result:/ {n += $6} END {print n + 0}' "$results")
rm -f "$results"
# The HTTP API fuzzed from its OpenAPI document on both backends, within a time
# budget per backend (FLOWSTORE_FUZZ_SECONDS, default 90); it counts as one test.
if [[ $status == 0 ]]; then
  if scripts/fuzz.sh "${FLOWSTORE_FUZZ_SECONDS:-90}"; then
    passed=$((passed + 1))
  else
    status=1
    failed=$((failed + 1))
  fi
fi
echo "tests: $passed passed, $failed failed"
exit $status
