#!/usr/bin/env bash
# Schema fuzzing of the JSON API (`make test-api-schema`): serves the built debug binary on a
# fresh scratch database, seeds users, tokens, campaigns, items, judgments, an export, a
# training run and a generation job, and runs schemathesis against /api/openapi.json once per
# role (labeler, researcher, admin). Fails on any 5xx, any response whose status code,
# content type or body its operation does not document, and on any difference between the
# routes the server declares (server/src/http/api/mod.rs) and the paths the document lists.
#
# Settings: PAIRWISE_BIN (default target/debug/pairwise), SCHEMA_EXAMPLES (fuzzed cases per
# operation, default 50), SCHEMA_SEED (default 1), SCHEMA_PHASES (default
# examples,coverage,fuzzing), SCHEMA_ROLES (default "labeler researcher admin"), SCHEMA_FILE
# (test against this file instead of the document the binary serves, e.g. server/openapi.json
# while editing it, without a rebuild), SCHEMA_ARGS (more schemathesis options, e.g.
# "--report ndjson --report-dir /tmp/st").
# The schemathesis virtual environment is created once under ~/.cache/pairwise.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[api-schema.sh] $*" >&2; }

SCHEMATHESIS_VERSION=4.32.5
CACHE="${PAIRWISE_CACHE:-$HOME/.cache/pairwise}"
VENV="$CACHE/schemathesis-$SCHEMATHESIS_VERSION-venv"
BIN="${PAIRWISE_BIN:-target/debug/pairwise}"
EXAMPLES="${SCHEMA_EXAMPLES:-50}"
SEED="${SCHEMA_SEED:-1}"
PHASES="${SCHEMA_PHASES:-examples,coverage,fuzzing}"
ROLES="${SCHEMA_ROLES:-labeler researcher admin}"
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance

if [ ! -x "$VENV/bin/schemathesis" ] ||
  [ "$("$VENV/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  log "installing schemathesis==$SCHEMATHESIS_VERSION into $VENV"
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV" || { log "python3 -m venv failed: apt-get install python3-venv"; exit 1; }
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2
fi
PY="$VENV/bin/python"

# The document against the router's declaration, both ways (the Rust test in tests/tests/api.rs
# checks one way against server::http::api::ROUTES; this also catches documented paths the
# server does not have).
"$PY" - server/src/http/api/mod.rs server/openapi.json <<'EOF'
import json, re, sys
source, spec = open(sys.argv[1]).read(), json.load(open(sys.argv[2]))
block = source[source.index("api! {"):]
declared = set()
for path, methods in re.findall(r'"(/[^"]*)"[^"{}]*?=>\s*\{([^}]*)\}', block):
    for method in re.findall(r"\b(get|post|put|patch|delete)\s+[\w:]+", methods):
        declared.add((method, "/api/v1" + path))
# Routes outside /api/v1 that the document describes (server/src/http/mod.rs).
outside = {("get", "/healthz"), ("get", "/metrics"), ("get", "/api/openapi.json")}
documented = {(m, p) for p, item in spec["paths"].items() for m in item if m != "parameters"}
missing, extra = declared - documented, documented - declared - outside
for m, p in sorted(missing):
    print(f"not documented in server/openapi.json: {m.upper()} {p}", file=sys.stderr)
for m, p in sorted(extra):
    print(f"documented but not served: {m.upper()} {p}", file=sys.stderr)
if not declared or missing or extra:
    sys.exit(1)
print(f"[api-schema.sh] {len(declared)} API routes, all documented", file=sys.stderr)
EOF

[ -x "$BIN" ] || { log "$BIN is missing: run make build"; exit 1; }

PG_BASE="$(scripts/database.sh)"
DB="pairwise_schema_$(date +%s)_$$"
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "$rc" != 0 ] && [ -f "$WORK/server.log" ]; then
    log "server log (last 40 lines):"
    tail -n 40 "$WORK/server.log" >&2 || true
  fi
  psql "$PG_BASE/postgres" -qc "drop database if exists \"$DB\" with (force)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql "$PG_BASE/postgres" -qc "create database \"$DB\""
export PAIRWISE_DATABASE_URL="$PG_BASE/$DB"
export PAIRWISE_DATA_DIR="$WORK/data"
PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"

# Users first, so that the server creates no bootstrap admin; then a token each.
export PAIRWISE_PASSWORD="schema-fuzz-$(date +%s%N)"
declare -A TOKEN
for role in admin researcher labeler; do
  "$BIN" user add "$role@schema.test" --role "$role" >/dev/null
  TOKEN[$role]="$("$BIN" token create "$role@schema.test" --name schemathesis | awk 'END { print $NF }')"
done
unset PAIRWISE_PASSWORD

# Background work runs only while seeding (a worker process, below): a generation job or a
# training run that the fuzzer starts must not take the CPU from the requests under test.
PAIRWISE_ADDR="127.0.0.1:$PORT" PAIRWISE_WORKERS=0 "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 120); do
  curl -fsS "$URL/healthz" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { log "the server exited"; exit 1; }
  sleep 0.5
done
curl -fsS "$URL/healthz" >/dev/null || { log "the server did not answer /healthz"; exit 1; }
log "serving on $URL (database $DB)"

# Seeds data through the API and writes schemathesis.toml: dictionaries of real ids, which the
# fuzzer puts in path parameters most of the time, so that requests reach the handlers' work
# and not only their 404s.
ADMIN="${TOKEN[admin]}" RESEARCHER="${TOKEN[researcher]}" LABELER="${TOKEN[labeler]}" \
  "$PY" - "$URL" "$BIN" "$WORK/schemathesis.toml" <<'EOF'
import json, os, subprocess, sys, time, urllib.error, urllib.request

url, binary, config = sys.argv[1:4]
tokens = {r: os.environ[r.upper()] for r in ("admin", "researcher", "labeler")}

def call(role, method, path, body=None, content_type="application/json", ok=(200, 201, 202, 204)):
    data = None
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    request = urllib.request.Request(url + "/api/v1" + path, data=data, method=method)
    request.add_header("Authorization", "Bearer " + tokens[role])
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    if status not in ok:
        sys.exit(f"seeding: {method} {path} answered {status}: {text}")
    return (json.loads(text) if text else None), status

me = {r: call(r, "GET", "/me")[0]["id"] for r in tokens}

campaign = call("admin", "POST", "/campaigns",
                {"name": "schema fuzz", "strength_scale": 3, "rationale": "optional"})[0]["id"]
items = "\n".join(json.dumps(line) for line in [
    {"prompt": f"Question {i}?", "responses": [f"answer {i}a", f"answer {i}b"]} for i in range(8)
] + [{"prompt": "2+2?", "responses": ["4", "5"], "gold": 0}])
call("admin", "POST", f"/campaigns/{campaign}/items", items, "application/x-ndjson")
call("admin", "PATCH", f"/campaigns/{campaign}", {"status": "active"})
for role in ("labeler", "researcher"):
    call("admin", "POST", f"/campaigns/{campaign}/members",
         {"email": f"{role}@schema.test", "role": role})

assignments = []
for n in range(4):
    item, status = call("labeler", "GET", f"/campaigns/{campaign}/next")
    if status != 200:
        break
    assignments.append(item["assignment_id"])
    if n < 3:
        call("labeler", "POST", f"/assignments/{item['assignment_id']}/judgment",
             {"choice": "ab"[n % 2], "strength": 2, "client_request_id": f"seed-{n}"})

# A finished export (a worker runs until it is done), then a training run on it (queued).
export = call("researcher", "POST", "/exports", {"campaigns": [campaign], "format": "trl"})[0]["id"]
worker = subprocess.Popen([binary, "worker", "--workers", "1"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    deadline = time.time() + 120
    while True:
        record = call("researcher", "GET", f"/exports/{export}")[0]
        if record["status"] not in ("queued", "running"):
            break
        if time.time() > deadline:
            sys.exit("seeding: the export did not finish in 2 minutes")
        time.sleep(0.5)
finally:
    worker.terminate()
    worker.wait()
if record["status"] != "done":
    sys.exit(f"seeding: the export ended {record['status']}: {record.get('error')}")
files = [f["name"] for f in record["files"]]
queued_export = call("researcher", "POST", "/exports",
                     {"campaigns": [campaign], "format": "raw"})[0]["id"]
training, status = call("researcher", "POST", f"/exports/{export}/train", {"kind": "reward"},
                        ok=(202, 409))
trainings = [training["id"]] if status == 202 else []

# Prompts without responses, and a generation job for them (queued: no worker runs now).
prompts = call("admin", "POST", "/campaigns", {"name": "schema fuzz prompts"})[0]["id"]
call("admin", "POST", f"/campaigns/{prompts}/prompts", "Hello!\nWhat is 2+2?\n", "text/plain")
call("admin", "POST", f"/campaigns/{prompts}/members",
     {"email": "researcher@schema.test", "role": "researcher"})
job, status = call("admin", "POST", f"/campaigns/{prompts}/generate", {}, ok=(202, 409))
jobs = [job["job_id"]] if status == 202 else []

dictionaries = {
    "campaigns": [campaign, prompts],
    "members": [me["labeler"], me["researcher"]],
    "emails": ["labeler@schema.test", "researcher@schema.test"],
    "assignments": assignments,
    "exports": [export, queued_export],
    "files": files,
    "trainings": trainings,
    "jobs": jobs,
}
# (path regex, {parameter: dictionary})
operations = [
    (r"^/api/v1/campaigns/\{id\}",
     {"path.id": "campaigns", "path.user_id": "members", "body.email": "emails"}),
    (r"^/api/v1/exports$", {"body.campaigns[*]": "campaigns"}),
    (r"^/api/v1/assignments/\{id\}", {"path.id": "assignments", "query.exclude": "assignments"}),
    (r"^/api/v1/exports/\{id\}", {"path.id": "exports", "path.name": "files"}),
    (r"^/api/v1/training/\{id\}", {"path.id": "trainings"}),
    (r"^/api/v1/jobs/\{id\}", {"path.id": "jobs"}),
    (r"^/api/v1/users/\{id\}", {"path.id": "members"}),
]
lines = ["# Written by scripts/api-schema.sh for one run."]
for name, values in dictionaries.items():
    if values:
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
for regex, parameters in operations:
    bound = {p: d for p, d in parameters.items() if dictionaries[d]}
    if not bound:
        continue
    inline = ", ".join(f'"{p}" = {{ dictionary = "{d}", probability = 0.75 }}'
                       for p, d in bound.items())
    lines += ["[[operations]]", f"include-path-regex = {json.dumps(regex)}",
              f"parameters = {{ {inline} }}", ""]
open(config, "w").write("\n".join(lines))
print(f"[api-schema.sh] seeded: campaigns {campaign} and {prompts}, {len(assignments)} assignments, "
      f"export {export} ({', '.join(files)}), {len(trainings)} training run, {len(jobs)} job",
      file=sys.stderr)
EOF

# A hook that puts a NUL character into one string of a quarter of the generated bodies
# (JSON leaves and text bodies alike): valid JSON and UTF-8 that PostgreSQL cannot store, and
# that the generator alone almost never produces.
cat >"$WORK/pairwise_hooks.py" <<'EOF'
import schemathesis
from hypothesis import strategies as st


def strings(value, path=()):
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings(item, path + (index,))


def with_nul(value, path):
    if not path:
        return value[: len(value) // 2] + "\x00" + value[len(value) // 2 :]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = with_nul(value[path[0]], path[1:])
    return copy


@schemathesis.hook
def flatmap_body(context, body):
    paths = list(strings(body))
    if not paths:
        return st.just(body)
    nul = st.sampled_from(paths).map(lambda path: with_nul(body, path))
    return st.integers(0, 3).flatmap(lambda n: nul if n == 0 else st.just(body))
EOF

if [ -n "${SCHEMA_FILE:-}" ]; then
  LOCATION=("$(realpath "$SCHEMA_FILE")" --url "$URL")
else
  LOCATION=("$URL/api/openapi.json")
fi
failed=()
for role in $ROLES; do
  log "schemathesis as $role"
  # Run from the scratch folder so that nothing (reports, example databases) lands in the tree.
  if ! (cd "$WORK" && PYTHONPATH="$WORK" SCHEMATHESIS_HOOKS=pairwise_hooks "$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" \
    run "${LOCATION[@]}" \
    --header "Authorization: Bearer ${TOKEN[$role]}" \
    --checks "$CHECKS" \
    --phases "$PHASES" \
    --max-examples "$EXAMPLES" \
    --seed "$SEED" \
    --generation-database none \
    --workers 1 \
    --request-timeout 30 \
    --no-color ${SCHEMA_ARGS:-}); then
    failed+=("$role")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  log "failures as: ${failed[*]}"
  exit 1
fi
log "no failures as: $ROLES"
