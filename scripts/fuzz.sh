#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document with schemathesis, on SQLite and
# on PostgreSQL: every answer must be documented (status, media type, headers, body
# schema) and none may be a 5xx. Each backend gets a time budget (default 120 s).
#
# It serves the debug binary (built by `cargo build -p flowstore-cli` if missing) on a
# port of its own, against a new SQLite file and a new PostgreSQL database that it
# drops when done. schemathesis is installed, pinned, into a virtual environment
# under ~/.cache/flowstore the first time.
#
# PostgreSQL: FLOWSTORE_TEST_PG (an admin URL whose role may CREATE DATABASE), else
# postgres://postgres@127.0.0.1:5432/postgres; scripts/test.sh exports it, having
# started a throwaway cluster when none was running.
#
# Usage: scripts/fuzz.sh [seconds per backend]
set -euo pipefail
cd "$(dirname "$0")/.."

budget=${1:-120}
st_version=4.32.5
log() { printf 'fuzz.sh: %s\n' "$*" >&2; }

venv="${XDG_CACHE_HOME:-$HOME/.cache}/flowstore/schemathesis-$st_version"
if [[ ! -x "$venv/bin/st" ]]; then
  log "installing schemathesis $st_version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==$st_version"
fi

bin=target/debug/flowstore
if [[ ! -x "$bin" ]]; then
  cargo build -p flowstore-cli --bin flowstore
fi

pg_admin=${FLOWSTORE_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}
work=$(mktemp -d /tmp/flowstore-fuzz.XXXXXX)
server_pid=""
pg_db=""
cleanup() {
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [[ -n "$pg_db" ]]; then psql "$pg_admin" -qc "DROP DATABASE IF EXISTS \"$pg_db\" WITH (FORCE)" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Starts the server on $1 (a database URL); sets server_pid, base and key.
start() {
  local url=$1 out="$work/serve.out"
  : >"$out"
  (cd "$work" && FLOWSTORE_KEY_FILE="$work/flowstore.key" RUST_LOG=warn exec "$OLDPWD/$bin" \
      --database-url "$url" serve --listen 127.0.0.1:0 \
      --rate-per-second 100000 --rate-burst 100000 >"$out" 2>"$work/serve.err") &
  server_pid=$!
  for _ in $(seq 1 300); do
    if grep -q 'is listening on' "$out"; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      log "ERROR: the server exited:"; cat "$work/serve.err" >&2; exit 1
    fi
    sleep 0.1
  done
  base=$(grep -o 'http://[0-9.:]*' "$out" | head -1)
  key=$(grep -o 'fsk_[A-Za-z0-9_]*' "$out" | head -1)
  if [[ -z "$base" || -z "$key" ]]; then
    log "ERROR: the server did not print its address and key:"; cat "$out" "$work/serve.err" >&2; exit 1
  fi
}

stop() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

# The event streams never end, so they are left out; everything else is fuzzed with
# the admin key the server made at its first start. A run fails on any failed check
# and on any error other than schemathesis's own (a "Runtime Error" in its data
# generation, which says nothing of the server).
fuzz() {
  local name=$1 out="$work/st-$1.out"
  log "fuzzing the API on $name for up to $budget s ($base)"
  # Run from the scratch directory: schemathesis and hypothesis keep caches in the
  # working directory, which must not be the checkout.
  (cd "$work" && "$venv/bin/st" run "$base/api/v1/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --exclude-path /api/v1/events \
    --exclude-path /api/v1/notifications/stream \
    --max-time "$budget" --max-examples 25 --workers 2 --seed 1 \
    --request-timeout 40 --suppress-health-check all --no-color) >"$out" 2>&1 || true
  # Tracebacks of the tool carry whole source files on one line: print lines cut short.
  cut -c1-400 "$out"
  python3 - "$out" <<'PY'
import re
import sys

text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
summary = [l for l in text.splitlines() if re.match(r"^=+ .* in [0-9.]+s =+$", l)]
if not summary:
    sys.exit("fuzz.sh: schemathesis printed no summary")
cases = re.search(r"(\d+) generated, (\d+) passed", text)
if not cases or int(cases.group(1)) == 0:
    sys.exit("fuzz.sh: no test case was generated")
if re.search(r"\d+ (failed|failures?)\b", summary[-1]):
    sys.exit(f"fuzz.sh: {summary[-1].strip('= ')}")
errors = text.split("= ERRORS =", 1)[1] if "= ERRORS =" in text else ""
errors = re.split(r"^=+ [A-Z]+ =+$|^=+ .* in [0-9.]+s =+$", errors, maxsplit=1, flags=re.M)[0]
kinds = re.findall(r"^_{3,} (.+?) _{3,}\n+(.+)$", errors, re.M)
server = [f"{op}: {kind}" for op, kind in kinds if kind.strip() != "Runtime Error"]
if server:
    sys.exit("fuzz.sh: errors while testing the server:\n  " + "\n  ".join(server))
print(f"fuzz.sh: {cases.group(1)} cases, no failure ({len(kinds)} errors of the tool's own)")
PY
}

status=0
start "sqlite://$work/fuzz.db"
fuzz SQLite || status=1
stop

pg_db="fs_fuzz_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
psql "$pg_admin" -qc "CREATE DATABASE \"$pg_db\"" >/dev/null
pg_url=$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$pg_admin" "$pg_db")
start "$pg_url"
fuzz PostgreSQL || status=1
stop

if [[ $status != 0 ]]; then
  log "FAILED: schemathesis found answers that are 5xx or not as documented (above)"
else
  log "passed on SQLite and PostgreSQL"
fi
exit $status
