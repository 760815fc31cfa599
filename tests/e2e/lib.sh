# Shared by the end-to-end scripts (sourced, not run): step output, refusal checks, a berth server and a
# private dockerd (vfs storage) that live in the script's folder $E2E and are cleaned up on exit, and the
# push/pull checks of an image built FROM scratch. A script sets E2E (a folder of its own under /tmp) and
# PASS_MESSAGE, then sources this file; it may define e2e_before_cleanup and e2e_after_cleanup (run before
# and after dockerd and berth are stopped, with the exit status as $1).

STEP=0
BERTH_PID=
DOCKERD_PID=
HOSTS_MARK=

step() { STEP=$((STEP + 1)); printf '\n== step %d (%d s): %s\n' "$STEP" "$SECONDS" "$*"; }
say() { printf '   %s\n' "$*"; }
die() { printf '\nFAIL (step %d): %s\n' "$STEP" "$*" >&2; exit 1; }
show() { printf '+ %s\n' "$*" >&2; }
run() { show "$@"; "$@"; }
# refused NAME PATTERN CMD...: CMD must fail and say something matching PATTERN (extended regex, any case);
# its output is kept in $E2E/NAME.out.
refused() {
  local out=$E2E/$1.out pattern=$2
  shift 2
  show "$@"
  if "$@" >"$out" 2>&1; then die "'$*' succeeded, expected a refusal: $(cat "$out")"; fi
  grep -Eiq "$pattern" "$out" || die "'$*' failed without saying /$pattern/: $(cat "$out")"
  say "refused: $(grep -Ei "$pattern" "$out" | tail -n1)"
}
# Extra options of every curl the helpers run (e.g. --cacert of a test CA).
CURL_OPTS=()
# The management API as the operator.
api() { curl "${CURL_OPTS[@]}" -fsS -H "Authorization: Bearer $OPERATOR_TOKEN" -H 'Content-Type: application/json' "$@"; }

# The helpers below talk to the server at $BASE (scheme://host:port), which the script sets.
# enable_admin: enables the default registry's admin user; sets USER_NAME and PASSWORD to its credentials.
enable_admin() {
  local creds
  api -X PATCH -d '{"adminUserEnabled":true}' "$BASE/api/registries/default" >/dev/null ||
    die "could not enable the default registry's admin user"
  creds=$(api "$BASE/api/registries/default/credentials") || die "could not read the admin credentials"
  USER_NAME=$(printf '%s' "$creds" | field username)
  PASSWORD=$(printf '%s' "$creds" | field value)
  [ -n "$USER_NAME" ] && [ -n "$PASSWORD" ] || die "no username/password in $creds"
}
# principal VAR ROLE SCOPE: creates a service principal with ROLE on SCOPE; sets VAR_ID and VAR_PASSWORD.
principal() {
  local body id password
  body=$(api -X POST -d "{\"scopes\":[\"$3\"],\"role\":\"$2\"}" \
    "$BASE/api/service-principals/create-for-rbac") || die "create-for-rbac $2 on $3 failed"
  id=$(printf '%s' "$body" | field appId)
  password=$(printf '%s' "$body" | field password)
  [ -n "$id" ] && [ -n "$password" ] || die "no appId/password in $body"
  printf -v "${1}_ID" '%s' "$id"
  printf -v "${1}_PASSWORD" '%s' "$password"
  say "service principal $id: $2 on $3"
}
# curl_as SCOPE CURL_ARG...: curl as the admin user with a token for one scope ("repository:a/b:pull").
curl_as() {
  local scope=$1 token
  shift
  token=$(curl "${CURL_OPTS[@]}" -fsS -u "$USER_NAME:$PASSWORD" --get --data-urlencode "service=default.localhost" \
    --data-urlencode "scope=$scope" "$BASE/oauth2/token" | field token)
  [ -n "$token" ] || die "no token for $scope"
  curl "${CURL_OPTS[@]}" -fsS -H "Authorization: Bearer $token" "$@"
}
# tags REPO JSON: the repository's tags/list (read as the admin user) must list exactly JSON.
tags() {
  local got
  got=$(curl_as "repository:$1:pull" "$BASE/v2/$1/tags/list") || die "tags/list of $1 failed"
  [ "$got" = "{\"name\":\"$1\",\"tags\":$2}" ] || die "unexpected tags/list of $1: $got"
  say "tags/list: $got"
}
# field NAME: the first string member NAME of the JSON on stdin.
field() { grep -oE "\"$1\":\"[^\"]*\"" | head -n1 | cut -d'"' -f4; }

# e2e_prerequisites TOOL...: root, the tools, and no dockerd left from an earlier run of this script.
e2e_prerequisites() {
  [ "$(id -u)" = 0 ] || die "must run as root (it starts its own dockerd)"
  for tool in "$@"; do command -v "$tool" >/dev/null || die "$tool is missing"; done
  if [ -f "$E2E/docker.pid" ] && kill -0 "$(cat "$E2E/docker.pid")" 2>/dev/null; then
    die "a dockerd from another run is still running (pid $(cat "$E2E/docker.pid")); stop it or remove $E2E"
  fi
  if [ -z "${BERTH_BIN:-}" ]; then
    run cargo build --bin berth
    BERTH_BIN=${CARGO_TARGET_DIR:-target}/debug/berth
  fi
  [ -x "$BERTH_BIN" ] || die "$BERTH_BIN is missing"
  rm -rf "$E2E"
  mkdir -p "$E2E/ctx" "$E2E/docker-config"
  trap e2e_cleanup EXIT
  trap 'exit 130' INT TERM
}

e2e_cleanup() {
  local rc=$?
  set +e
  declare -F e2e_before_cleanup >/dev/null && e2e_before_cleanup "$rc"
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    kill "$DOCKERD_PID"
    for _ in $(seq 1 150); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$DOCKERD_PID" 2>/dev/null && kill -9 "$DOCKERD_PID"
  fi
  if [ -n "$BERTH_PID" ] && kill -0 "$BERTH_PID" 2>/dev/null; then
    kill "$BERTH_PID"; wait "$BERTH_PID" 2>/dev/null
  fi
  [ -n "$HOSTS_MARK" ] && sed -i "/$HOSTS_MARK/d" /etc/hosts
  declare -F e2e_after_cleanup >/dev/null && e2e_after_cleanup "$rc"
  if [ $rc -ne 0 ]; then
    [ -f "$E2E/berth.log" ] && { echo "--- berth log (last 30 lines)" >&2; tail -n 30 "$E2E/berth.log" >&2; }
    [ -f "$E2E/dockerd.log" ] && { echo "--- dockerd log (last 15 lines)" >&2; tail -n 15 "$E2E/dockerd.log" >&2; }
  fi
  # Anything dockerd left mounted (netns, overlay) under the folder, deepest first.
  if [ -d "$E2E" ]; then
    awk -v dir="$E2E" '$2 ~ "^"dir {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$E2E"
  fi
  if [ $rc -eq 0 ]; then printf '\n== PASS (%d s): %s\n' "$SECONDS" "$PASS_MESSAGE"; fi
  exit $rc
}

# start_berth [ENV=VALUE...]: runs `berth serve` on a free loopback port with a fresh operator token;
# sets BERTH_PID, ADDR (host:port) and OPERATOR_TOKEN.
start_berth() {
  OPERATOR_TOKEN=e2e-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  env BERTH_HTTP_BIND=127.0.0.1:0 BERTH_DATA_DIR="$E2E/data" BERTH_LOG_LEVEL=info BERTH_LOG_FORMAT=text \
    BERTH_OPERATOR_TOKEN="$OPERATOR_TOKEN" "$@" "$BERTH_BIN" serve >"$E2E/berth.log" 2>&1 &
  BERTH_PID=$!
  ADDR=
  for _ in $(seq 1 100); do
    ADDR=$(grep -m1 -oE 'listening.*127\.0\.0\.1:[0-9]+' "$E2E/berth.log" | grep -oE '127\.0\.0\.1:[0-9]+' || true)
    [ -n "$ADDR" ] && break
    kill -0 "$BERTH_PID" 2>/dev/null || die "berth exited: $(cat "$E2E/berth.log")"
    sleep 0.1
  done
  [ -n "$ADDR" ] || die "berth did not report its address"
  say "berth pid $BERTH_PID listening on $ADDR"
}

# start_dockerd [DOCKERD_ARG...]: a private dockerd (vfs storage, no default bridge, no iptables changes)
# and a docker CLI pointed at it.
start_dockerd() {
  export DOCKER_HOST=unix://$E2E/docker.sock
  export DOCKER_CONFIG=$E2E/docker-config # no credential helpers or proxies from the host
  export DOCKER_BUILDKIT=0                # the classic builder: no buildx plugin needed, works offline
  dockerd --storage-driver=vfs --iptables=false --bridge=none --host "$DOCKER_HOST" --data-root "$E2E/docker" \
    --exec-root "$E2E/exec" --pidfile "$E2E/docker.pid" "$@" >"$E2E/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for i in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$DOCKERD_PID" 2>/dev/null || die "dockerd exited: $(tail -n 20 "$E2E/dockerd.log")"
    [ "$i" = 60 ] && die "dockerd did not answer within 60 s"
    sleep 1
  done
  say "dockerd pid $DOCKERD_PID, server $(docker info --format '{{.ServerVersion}}'), storage $(docker info --format '{{.Driver}}')"
}

# add_hosts NAME...: maps the names to 127.0.0.1 in /etc/hosts until the script ends.
add_hosts() {
  HOSTS_MARK="berth-e2e-$$"
  printf '127.0.0.1 %s # %s\n' "$*" "$HOSTS_MARK" >>/etc/hosts
}

# require_static_busybox: $BUSYBOX (default /bin/busybox) must be a statically linked busybox.
require_static_busybox() {
  BUSYBOX=${BUSYBOX:-/bin/busybox}
  [ -x "$BUSYBOX" ] || die "$BUSYBOX is missing (apt-get install busybox-static)"
  if ldd "$BUSYBOX" >/dev/null 2>&1; then die "$BUSYBOX is dynamically linked (apt-get install busybox-static)"; fi
}

# push REF: docker push REF; the manifest digest it reports must be $PUSHED (set by the first push).
push() {
  local digest
  run docker push "$1" | tee "$E2E/push.out"
  digest=$(grep -oE 'digest: sha256:[0-9a-f]{64}' "$E2E/push.out" | cut -d' ' -f2 || true)
  [ -n "$digest" ] || die "no digest in the output of docker push $1"
  PUSHED=${PUSHED:-$digest}
  [ "$digest" = "$PUSHED" ] || die "$1 was pushed as $digest, expected $PUSHED"
  say "pushed $1: manifest digest $digest"
}
# pull_run REF: docker pull REF (removing the local image first); its digest must be $PUSHED, its image ID
# $ID_BUILT, and running it must print the greeting and the data's checksum.
pull_run() {
  local ref=$1 digest id out
  docker rmi -f "$ID_BUILT" >/dev/null 2>&1 || true
  run docker pull "$ref" | tee "$E2E/pull.out"
  digest=$(grep -oE 'Digest: sha256:[0-9a-f]{64}' "$E2E/pull.out" | cut -d' ' -f2 || true)
  id=$(docker image inspect -f '{{.Id}}' "$ref")
  [ "$digest" = "$PUSHED" ] || die "pulled digest '$digest' != pushed $PUSHED"
  [ "$id" = "$ID_BUILT" ] || die "pulled image ID $id != built $ID_BUILT"
  out=$(run docker run --rm --network none "$ref")
  printf '%s\n' "$out"
  [ "$(printf '%s\n' "$out" | sed -n 1p)" = "$GREETING" ] || die "expected '$GREETING', got '$out'"
  [ "$(printf '%s\n' "$out" | sed -n 2p | cut -d' ' -f1)" = "$DATA_SUM" ] || die "/opt/data.bin differs in the pulled image"
  say "pulled $digest, image ID $id, ran it"
}
