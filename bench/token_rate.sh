#!/usr/bin/env bash
# Token endpoint throughput: docker-login-style GET /oauth2/token with Basic auth and one repository scope,
# for the admin user (sealed password) and for a service principal (argon2id hash, verified once then
# cached), with wrk (Debian package wrk) at 8 connections for 5 s each. Prints requests per second.
# Usage: bench/token_rate.sh   (builds the release binary; needs wrk, curl, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet --bin berth
BIN=${CARGO_TARGET_DIR:-target}/release/berth
DIR=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BERTH_HTTP_BIND=127.0.0.1:$PORT BERTH_DATA_DIR=$DIR BERTH_OPERATOR_TOKEN=bench-operator-token-0123456789 BERTH_LOG_LEVEL=warn "$BIN" serve &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
api() { curl -fsS -H "Authorization: Bearer bench-operator-token-0123456789" -H 'Content-Type: application/json' "$@"; }
get() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
api -X PATCH -d '{"adminUserEnabled":true}' "http://127.0.0.1:$PORT/api/registries/default" >/dev/null
ADMIN_PASSWORD=$(api "http://127.0.0.1:$PORT/api/registries/default/credentials" | get '["passwords"][0]["value"]')
SP=$(api -X POST -d '{"scopes":["/registries/default"],"role":"Contributor"}' "http://127.0.0.1:$PORT/api/service-principals/create-for-rbac")
SP_ID=$(get '["appId"]' <<<"$SP")
SP_PASSWORD=$(get '["password"]' <<<"$SP")
URL="http://127.0.0.1:$PORT/oauth2/token?service=default.localhost&scope=repository:samples/hello:pull,push"
for who in "admin user:default:$ADMIN_PASSWORD" "service principal:$SP_ID:$SP_PASSWORD"; do
  label=${who%%:*}
  creds=${who#*:}
  out=$(wrk -t2 -c8 -d5s -H "Authorization: Basic $(printf '%s' "$creds" | base64 -w0)" "$URL")
  if grep -q 'Non-2xx' <<<"$out"; then echo "$label: some token requests failed: $out" >&2; exit 1; fi
  rate=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  printf '%-18s %10s tokens/s\n' "$label" "$rate"
done
