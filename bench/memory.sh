#!/usr/bin/env bash
# Memory benchmark: the server must stream blobs, never hold them in memory.
#
# Builds the release binary, starts `berth serve` on a free port with a throwaway data folder, pushes a
# 2 GiB blob with curl (one streamed PATCH, then PUT ?digest=; and a monolithic POST ?digest= variant),
# pulls each back checking its sha256, and samples the server's VmRSS every 0.2 s. Prints the peak RSS
# of every phase and exits non-zero if one exceeds the limit.
#
# Usage: bench/memory.sh            (from anywhere; runs in the repository)
# Env:   BERTH_BENCH_SIZE_MIB   blob size, default 2048
#        BERTH_BENCH_LIMIT_MIB  peak RSS limit, default 100
#        BERTH_BENCH_TMP        where the temp folder goes, default $TMPDIR or /tmp (needs ~4x the size free)
#        BERTH_BENCH_NO_BUILD=1 skip `cargo build --release`
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${BERTH_BENCH_SIZE_MIB:-2048}
LIMIT_MIB=${BERTH_BENCH_LIMIT_MIB:-100}
BIN=${CARGO_TARGET_DIR:-target}/release/berth

say() { printf '== %s\n' "$*"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

for tool in curl openssl sha256sum; do command -v "$tool" >/dev/null || die "$tool is required"; done

if [ -z "${BERTH_BENCH_NO_BUILD:-}" ]; then
  say "cargo build --release"
  cargo build --release --quiet
fi
[ -x "$BIN" ] || die "$BIN is missing"

WORK=$(mktemp -d "${BERTH_BENCH_TMP:-${TMPDIR:-/tmp}}/berth-mem.XXXXXX")
SERVER_PID=
SAMPLER_PID=
cleanup() {
  local rc=$?
  set +e
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  fi
  if [ $rc -ne 0 ] && [ -f "$WORK/server.log" ]; then
    echo "--- server log (last 20 lines)" >&2
    tail -n 20 "$WORK/server.log" >&2
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting $BIN serve (data in $WORK/data)"
OPERATOR_TOKEN=bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
BERTH_HTTP_BIND=127.0.0.1:0 BERTH_DATA_DIR="$WORK/data" BERTH_LOG_LEVEL=warn,berth=info \
  BERTH_OPERATOR_TOKEN=$OPERATOR_TOKEN "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
ADDR=
for _ in $(seq 1 100); do
  ADDR=$(grep -m1 -oE '127\.0\.0\.1:[0-9]+' "$WORK/server.log" || true)
  [ -n "$ADDR" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited: $(cat "$WORK/server.log")"
  sleep 0.1
done
[ -n "$ADDR" ] || die "the server did not report its address"
BASE="http://$ADDR"
say "server pid $SERVER_PID on $BASE"

# Anonymous data plane (GET /v2/ is 200), or one behind tokens (401): then every request carries a token
# of the default registry's admin user, enabled through the management API with the operator token.
AUTH=()
V2=$(curl -sS -o /dev/null -w '%{http_code}' "$BASE/v2/")
if [ "$V2" = 401 ]; then
  api() { curl -fsS -H "Authorization: Bearer $OPERATOR_TOKEN" -H 'Content-Type: application/json' "$@"; }
  api -X PATCH -d '{"adminUserEnabled":true}' "$BASE/api/registries/default" >/dev/null ||
    die "could not enable the default registry's admin user"
  CREDS=$(api "$BASE/api/registries/default/credentials") || die "could not read the admin credentials"
  USER_NAME=$(printf '%s' "$CREDS" | grep -oE '"username":"[^"]*"' | cut -d'"' -f4)
  PASSWORD=$(printf '%s' "$CREDS" | grep -oE '"value":"[^"]*"' | head -n1 | cut -d'"' -f4)
  [ -n "$USER_NAME" ] && [ -n "$PASSWORD" ] || die "no username/password in $CREDS"
  say "GET /v2/ is 401: using tokens of the admin user '$USER_NAME'"
elif [ "$V2" != 200 ]; then
  die "GET $BASE/v2/ answered $V2"
fi
# Sets AUTH to the header for a fresh token with push and pull on the repositories used here.
authorize() {
  [ "$V2" = 401 ] || return 0
  local token
  token=$(curl -fsS -u "$USER_NAME:$PASSWORD" --get --data-urlencode "service=default.localhost" \
    --data-urlencode "scope=repository:mem/test:push,pull" --data-urlencode "scope=repository:mem/mono:push,pull" \
    "$BASE/oauth2/token" | grep -oE '"token":"[^"]*"' | cut -d'"' -f4)
  [ -n "$token" ] || die "no token from $BASE/oauth2/token"
  AUTH=(-H "Authorization: Bearer $token")
}

rss_kib() { # field of /proc/<server>/status in KiB
  local key value _
  while read -r key value _; do
    [ "$key" = "$1:" ] && { echo "$value"; return; }
  done <"/proc/$SERVER_PID/status"
  echo 0
}

# Samples VmRSS every 0.2 s into $1 (the largest value seen, in KiB) until killed.
sampler() {
  local max=0 v
  while kill -0 "$SERVER_PID" 2>/dev/null; do
    v=$(rss_kib VmRSS)
    if [ "$v" -gt "$max" ]; then max=$v; echo "$max" >"$1"; fi
    sleep 0.2
  done
}

declare -a RESULTS=()
FAILED=0
# Runs "$@" while sampling; records the phase's peak (max of the samples and VmHWM, which is reset first).
phase() {
  local name=$1; shift
  local samples="$WORK/rss.$RANDOM"
  echo 0 >"$samples"
  # "5" resets the peak RSS (VmHWM) of the process (Linux >= 4.0); ignore if not allowed.
  echo 5 >"/proc/$SERVER_PID/clear_refs" 2>/dev/null || true
  sampler "$samples" &
  SAMPLER_PID=$!
  authorize
  local start=$SECONDS
  "$@"
  alive
  kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null || true
  SAMPLER_PID=
  local sampled hwm peak
  sampled=$(cat "$samples")
  hwm=$(rss_kib VmHWM)
  peak=$(( sampled > hwm ? sampled : hwm ))
  local line
  line=$(printf '%-36s peak RSS %4d MiB (sampled max %d MiB, VmHWM %d MiB), %ds' \
    "$name" $((peak / 1024)) $((sampled / 1024)) $((hwm / 1024)) $((SECONDS - start)))
  echo "   $line"
  RESULTS+=("$line")
  if [ $((peak / 1024)) -gt "$LIMIT_MIB" ]; then FAILED=1; fi
}

make_file() { # path key: SIZE_MIB of AES-CTR keystream (fast, incompressible, deterministic)
  # openssl dies of SIGPIPE when head has enough: not an error.
  { openssl enc -aes-128-ctr -nosalt -pass "pass:$2" -pbkdf2 </dev/zero 2>/dev/null || true; } |
    head -c $((SIZE_MIB * 1024 * 1024)) >"$1"
  [ "$(stat -c %s "$1")" -eq $((SIZE_MIB * 1024 * 1024)) ] || die "could not create $1"
}

say "creating two ${SIZE_MIB} MiB files"
t=$SECONDS
make_file "$WORK/blob1" berth-one
make_file "$WORK/blob2" berth-two
DIGEST1=sha256:$(sha256sum "$WORK/blob1" | cut -d' ' -f1)
DIGEST2=sha256:$(sha256sum "$WORK/blob2" | cut -d' ' -f1)
echo "   $DIGEST1"
echo "   $DIGEST2 ($((SECONDS - t)) s)"

absolute() { case $1 in http*) echo "$1" ;; *) echo "$BASE$1" ;; esac; }
with_digest() { case $1 in *\?*) echo "$1&digest=$2" ;; *) echo "$1?digest=$2" ;; esac; }
header() { grep -i "^$1:" | tail -n1 | cut -d' ' -f2- | tr -d '\r'; }

push_chunked() { # one streamed PATCH of the whole file, then PUT ?digest=
  local location code
  location=$(curl -fsS "${AUTH[@]}" -o /dev/null -D - -X POST "$BASE/v2/mem/test/blobs/uploads/" | header location)
  [ -n "$location" ] || die "POST uploads/ gave no Location"
  location=$(curl -fsS "${AUTH[@]}" -o /dev/null -D - -X PATCH -H 'Content-Type: application/octet-stream' \
    -T "$WORK/blob1" "$(absolute "$location")" | header location)
  [ -n "$location" ] || die "PATCH gave no Location"
  code=$(curl -sS "${AUTH[@]}" -o "$WORK/put.out" -w '%{http_code}' -X PUT "$(with_digest "$(absolute "$location")" "$DIGEST1")")
  [ "$code" = 201 ] || die "PUT ?digest= answered $code: $(cat "$WORK/put.out")"
}

push_monolithic() { # POST ?digest= with the whole file as the body
  local code
  # `-T file` would append the file's name to a URL ending in '/': stream stdin with an explicit length.
  code=$(curl -sS "${AUTH[@]}" -o "$WORK/post.out" -w '%{http_code}' -X POST -H 'Content-Type: application/octet-stream' \
    -H "Content-Length: $(stat -c %s "$WORK/blob2")" -T - "$BASE/v2/mem/mono/blobs/uploads/?digest=$DIGEST2" \
    <"$WORK/blob2")
  [ "$code" = 201 ] || die "monolithic POST answered $code: $(cat "$WORK/post.out")"
}

pull() { # repo digest
  local got
  got=sha256:$(curl -fsS "${AUTH[@]}" "$BASE/v2/$1/blobs/$2" | sha256sum | cut -d' ' -f1)
  [ "$got" = "$2" ] || die "GET /v2/$1/blobs/$2 returned content with digest $got"
}

alive() { kill -0 "$SERVER_PID" 2>/dev/null || die "the server (pid $SERVER_PID) is gone"; }
alive
say "idle RSS: $(( $(rss_kib VmRSS) / 1024 )) MiB"
say "measuring (limit ${LIMIT_MIB} MiB)"
phase "push: POST + PATCH (streamed) + PUT" push_chunked
phase "pull: GET blob (mem/test)" pull mem/test "$DIGEST1"
phase "push: monolithic POST ?digest=" push_monolithic
phase "pull: GET blob (mem/mono)" pull mem/mono "$DIGEST2"

say "summary (${SIZE_MIB} MiB blobs, limit ${LIMIT_MIB} MiB)"
for line in "${RESULTS[@]}"; do echo "   $line"; done
if [ "$FAILED" -ne 0 ]; then
  die "peak RSS above ${LIMIT_MIB} MiB"
fi
say "OK"
