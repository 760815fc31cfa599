#!/usr/bin/env bash
# The management REST API under the Schemathesis schema fuzzer: every response must conform to
# src/http/api/openapi.json (status codes, bodies, content types, headers), no request may get a 5xx, and
# the server must accept what the document allows and refuse what it forbids. Two runs against one
# `berth serve`: (a) as the operator; (b) as a service principal that is Owner of registry A, while
# registry B holds an image, an admin user, tags and principals with roles. The Owner's requests are in
# part steered at B (tests/e2e/schemathesis_hooks.py), a custom check fails any 2xx that concerns B
# beyond reading st/app, where the Owner also holds a Reader role (any role reads what it may pull), and
# afterwards B as the operator sees it (settings, credentials, role assignments, principals, content)
# must be what it was before.
#
# Usage: tests/e2e/schemathesis.sh   (needs python3 with venv and pip, curl; PyPI for the first install)
# Env: SCHEMATHESIS_SECONDS (time budget of each run, default 75), SCHEMATHESIS_SEED (default: random,
#      printed), BERTH_BIN (default: the debug build).
set -euo pipefail
cd "$(dirname "$0")/../.."
E2E=/tmp/berth-schemathesis-e2e
PASS_MESSAGE="the management API conforms to its OpenAPI document under Schemathesis, as operator and as Owner"
source tests/e2e/lib.sh
SCHEMATHESIS_VERSION=4.32.5
RUN_SECONDS=${SCHEMATHESIS_SECONDS:-75}
VENV=${XDG_CACHE_HOME:-$HOME/.cache}/berth-ci/schemavenv
ST=$VENV/bin/schemathesis
HOOKS=$PWD/tests/e2e/schemathesis_hooks.py

step "installing schemathesis $SCHEMATHESIS_VERSION"
for tool in python3 curl sha256sum; do command -v "$tool" >/dev/null || die "$tool is missing"; done
if ! "$ST" --version 2>/dev/null | grep -qxF "schemathesis, version $SCHEMATHESIS_VERSION"; then
  run python3 -m venv "$VENV"
  run "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi
say "$("$ST" --version)"

step "building berth"
if [ -z "${BERTH_BIN:-}" ]; then
  run cargo build --bin berth
  BERTH_BIN=${CARGO_TARGET_DIR:-target}/debug/berth
fi
[ -x "$BERTH_BIN" ] || die "$BERTH_BIN is missing"
rm -rf "$E2E"
mkdir -p "$E2E/sandbox"
trap e2e_cleanup EXIT
trap 'exit 130' INT TERM
# The fuzzer sends thousands of requests from one address, many with wrong credentials on purpose (it
# checks they get 401 or 403); the per-address throttle of failed logins, tested in tests/http/hostile.rs,
# would answer 429 once it has seen 30 in a minute.
start_berth BERTH_FAILED_LOGINS_PER_SOURCE=0
BASE=http://$ADDR
json() { python3 -c "import json,sys; v=json.load(sys.stdin); print(eval(sys.argv[1], {'v': v}))" "$1"; }
random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
CASES_TOTAL=0

# fuzz NAME SCHEMATHESIS_ARG...: one bounded run with every check; fails the script on any finding, and on
# the warning that generated data is mostly refused (the document would be looser than the server).
fuzz() {
  local name=$1 seed=${SCHEMATHESIS_SEED:-$(random_hex 8 | python3 -c 'import sys; print(int(sys.stdin.read(), 16))')}
  shift
  say "schemathesis run $name: seed $seed, ${RUN_SECONDS}s (SCHEMATHESIS_SEED=$seed reproduces the generation)"
  printf '[warnings]\nfail-on = ["validation_mismatch"]\n' >"$E2E/schemathesis.toml"
  set +e
  # Run in the script's folder: schemathesis keeps its replay store in the working directory. The health
  # check of how many generated values a pattern filters out is off: the restore path (a repository name
  # ending in /_restore, at most 264 characters) filters many, and it checks the generator, not the API.
  (cd "$E2E" && BERTH_ST_SANDBOX="$E2E/sandbox" BERTH_ST_SEED="$seed" PYTHONDONTWRITEBYTECODE=1 \
    SCHEMATHESIS_HOOKS="$HOOKS" "$ST" --config-file "$E2E/schemathesis.toml" --no-color run --checks all \
    --suppress-health-check=filter_too_much \
    --max-time "$RUN_SECONDS" --seed "$seed" --generation-database none --report junit \
    --report-junit-path "$E2E/$name.xml" "$@" "$BASE/api/openapi.json" >"$E2E/$name.out" 2>&1)
  local rc=$?
  set -e
  sed -n '/^=* SUMMARY =*$/,$p' "$E2E/$name.out"
  local cases
  cases=$(grep -oE '^  [0-9]+ generated' "$E2E/$name.out" | grep -oE '[0-9]+' || echo 0)
  CASES_TOTAL=$((CASES_TOTAL + cases))
  if [ "$rc" -ne 0 ]; then
    cat "$E2E/$name.out"
    die "schemathesis run $name: findings (exit $rc); replay with SCHEMATHESIS_SEED=$seed"
  fi
  say "schemathesis run $name: $cases cases, no findings"
}

step "fuzzing as the operator"
fuzz operator -H "Authorization: Bearer $OPERATOR_TOKEN"

step "registries A and B, each with an image and an admin user; an Owner of A; principals with roles in B"
A=stowner$(random_hex 4)
B=stforeign$(random_hex 4)
api -X POST -d "{\"name\":\"$A\",\"adminUserEnabled\":true}" "$BASE/api/registries" >/dev/null
api -X POST -d "{\"name\":\"$B\",\"sku\":\"Standard\",\"adminUserEnabled\":true,\"tags\":{\"team\":\"b\"}}" \
  "$BASE/api/registries" >/dev/null
api -X POST -d "{\"name\":\"st-owner-a\",\"scopes\":[\"/registries/$A\"],\"role\":\"Owner\"}" \
  "$BASE/api/service-principals/create-for-rbac" >"$E2E/owner.json"
OWNER_ID=$(json 'v["appId"]' <"$E2E/owner.json")
OWNER_PASSWORD=$(json 'v["password"]' <"$E2E/owner.json")
OWNER_ASSIGNMENT=$(json 'v["roleAssignments"][0]["id"]' <"$E2E/owner.json")
api -X POST -d "{\"name\":\"st-push-b\",\"scopes\":[\"/registries/$B\"],\"role\":\"Contributor\"}" \
  "$BASE/api/service-principals/create-for-rbac" >"$E2E/pusher.json"
PUSHER_ID=$(json 'v["appId"]' <"$E2E/pusher.json")
PUSHER_PASSWORD=$(json 'v["password"]' <"$E2E/pusher.json")
api -X POST -d '{"name":"st-read-b"}' "$BASE/api/service-principals" >"$E2E/reader.json"
READER_ID=$(json 'v["appId"]' <"$E2E/reader.json")
api -X POST -d "{\"assignee\":\"$READER_ID\",\"scope\":\"/registries/$B/repositories/st\",\"role\":\"Reader\"}" \
  "$BASE/api/role-assignments" >/dev/null
api -X POST -d "{\"assignee\":\"$OWNER_ID\",\"scope\":\"/registries/$B/repositories/st/app\",\"role\":\"Reader\"}" \
  "$BASE/api/role-assignments" >/dev/null
# push_image REGISTRY APPID PASSWORD: pushes st/app:v1 (an empty config, no layers) with the /v2 API.
push_image() {
  local host token digest
  host=$(printf '%s' "$1" | tr 'A-Z' 'a-z').localhost
  token=$(curl -fsS -u "$2:$3" -H "Host: $host" --get --data-urlencode "service=$host" \
    --data-urlencode "scope=repository:st/app:pull,push" "$BASE/oauth2/token" | field token)
  [ -n "$token" ] || die "no push token for $1"
  printf '{}' >"$E2E/config.json"
  digest=sha256:$(sha256sum "$E2E/config.json" | cut -d' ' -f1)
  curl -fsS -o /dev/null -H "Host: $host" -H "Authorization: Bearer $token" -H 'Content-Type: application/octet-stream' \
    --data-binary @"$E2E/config.json" "$BASE/v2/st/app/blobs/uploads/?digest=$digest" || die "blob push to $1 failed"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":2},"layers":[]}' \
    "$digest" >"$E2E/manifest.json"
  curl -fsS -o /dev/null -X PUT -H "Host: $host" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary @"$E2E/manifest.json" \
    "$BASE/v2/st/app/manifests/v1" || die "manifest push to $1 failed"
}
push_image "$B" "$PUSHER_ID" "$PUSHER_PASSWORD"
push_image "$A" "$OWNER_ID" "$OWNER_PASSWORD"
B_HOST=$(printf '%s' "$B" | tr 'A-Z' 'a-z').localhost
FOREIGN_IDS=$(api "$BASE/api/role-assignments?scope=/registries/$B" | json '",".join(a["id"] for a in v)')
say "A=$A (Owner $OWNER_ID, assignment $OWNER_ASSIGNMENT), B=$B (assignments $FOREIGN_IDS)"

# snapshot FILE: registry B and everything of it, as the operator sees it.
snapshot() {
  {
    api "$BASE/api/registries/$B"
    api "$BASE/api/registries/$B/credentials"
    api "$BASE/api/role-assignments?scope=/registries/$B"
    api "$BASE/api/service-principals/$PUSHER_ID"
    api "$BASE/api/service-principals/$READER_ID"
    api "$BASE/api/registries/$B/repositories"
    api "$BASE/api/registries/$B/repositories/st/app/_manifests"
    api "$BASE/api/registries/$B/repositories/st/app/_tags"
  } >"$1" || die "could not read registry $B as the operator"
}
snapshot "$E2E/before.json"

step "fuzzing as the Owner of $A"
BERTH_ST_OWN_REGISTRY=$A BERTH_ST_FOREIGN_REGISTRY=$B BERTH_ST_FOREIGN_ASSIGNMENTS=$FOREIGN_IDS BERTH_ST_OWN_ASSIGNMENT=$OWNER_ASSIGNMENT \
  BERTH_ST_FOREIGN_READABLE=st/app \
  BERTH_ST_PRINCIPALS="$OWNER_ID,$PUSHER_ID,$READER_ID" fuzz owner --auth "$OWNER_ID:$OWNER_PASSWORD"

step "registry $B is unchanged"
snapshot "$E2E/after.json"
diff -u "$E2E/before.json" "$E2E/after.json" || die "registry $B changed during the Owner's run"
curl -fsS -o /dev/null -u "$PUSHER_ID:$PUSHER_PASSWORD" -H "Host: $B_HOST" --get --data-urlencode "service=$B_HOST" \
  "$BASE/oauth2/token" || die "the Contributor of $B can no longer log in"
say "B's settings, admin credentials, role assignments ($FOREIGN_IDS), principals and image are as before"
say "$CASES_TOTAL cases in all"
