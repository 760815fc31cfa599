#!/usr/bin/env bash
# End to end with the real docker CLI: starts a berth server and a private dockerd, builds a multi-layer
# image FROM scratch (static busybox + files), pushes it to berth, removes it locally, pulls it back
# (by tag and by digest), runs it and compares digests and image IDs.
#
# Usage: tests/e2e/docker.sh   (as root: it runs its own dockerd)
# Needs: docker.io (dockerd + docker CLI), busybox-static, curl.
# Env:   BERTH_BIN  the server binary, default target/debug/berth (built with cargo if missing)
#        BUSYBOX    a statically linked busybox, default /bin/busybox
# Everything lives in /tmp/berth-e2e, removed on exit; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

E2E=/tmp/berth-e2e
SOCK=$E2E/docker.sock
BERTH_BIN=${BERTH_BIN:-target/debug/berth}
BUSYBOX=${BUSYBOX:-/bin/busybox}
STEP=0

step() { STEP=$((STEP + 1)); printf '\n== step %d: %s\n' "$STEP" "$*"; }
say() { printf '   %s\n' "$*"; }
die() { printf '\nFAIL (step %d): %s\n' "$STEP" "$*" >&2; exit 1; }
run() { printf '+ %s\n' "$*" >&2; "$@"; }

# --- preconditions -------------------------------------------------------------------------------------
step "checking prerequisites"
[ "$(id -u)" = 0 ] || die "must run as root (it starts its own dockerd)"
for tool in dockerd docker curl; do command -v "$tool" >/dev/null || die "$tool is missing (apt-get install docker.io curl)"; done
[ -x "$BUSYBOX" ] || die "$BUSYBOX is missing (apt-get install busybox-static)"
if ldd "$BUSYBOX" >/dev/null 2>&1; then die "$BUSYBOX is dynamically linked (apt-get install busybox-static)"; fi
if [ -f "$E2E/docker.pid" ] && kill -0 "$(cat "$E2E/docker.pid")" 2>/dev/null; then
  die "a dockerd from another run is still running (pid $(cat "$E2E/docker.pid")); stop it or remove $E2E"
fi
if [ ! -x "$BERTH_BIN" ]; then
  case $BERTH_BIN in
    target/debug/berth) run cargo build --bin berth ;;
    target/release/berth) run cargo build --release --bin berth ;;
    *) die "BERTH_BIN=$BERTH_BIN does not exist" ;;
  esac
fi
[ -x "$BERTH_BIN" ] || die "$BERTH_BIN is missing"
say "berth: $BERTH_BIN; busybox: $BUSYBOX; $(docker --version)"

# --- cleanup -------------------------------------------------------------------------------------------
BERTH_PID=
DOCKERD_PID=
cleanup() {
  local rc=$?
  set +e
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    kill "$DOCKERD_PID"
    for _ in $(seq 1 150); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$DOCKERD_PID" 2>/dev/null && kill -9 "$DOCKERD_PID"
  fi
  if [ -n "$BERTH_PID" ] && kill -0 "$BERTH_PID" 2>/dev/null; then
    kill "$BERTH_PID"; wait "$BERTH_PID" 2>/dev/null
  fi
  if [ $rc -ne 0 ]; then
    [ -f "$E2E/berth.log" ] && { echo "--- berth log (last 30 lines)" >&2; tail -n 30 "$E2E/berth.log" >&2; }
    [ -f "$E2E/dockerd.log" ] && { echo "--- dockerd log (last 15 lines)" >&2; tail -n 15 "$E2E/dockerd.log" >&2; }
  fi
  # Anything dockerd left mounted (netns, overlay) under the folder, deepest first.
  if [ -d "$E2E" ]; then
    awk -v dir="$E2E" '$2 ~ "^"dir {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$E2E"
  fi
  if [ $rc -eq 0 ]; then printf '\n== PASS: docker push/pull round trip through berth\n'; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$E2E"
mkdir -p "$E2E/ctx" "$E2E/docker-config"

# --- berth ---------------------------------------------------------------------------------------------
step "starting berth"
OPERATOR_TOKEN=e2e-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
BERTH_HTTP_BIND=127.0.0.1:0 BERTH_DATA_DIR="$E2E/data" BERTH_LOG_LEVEL=info BERTH_LOG_FORMAT=text \
  BERTH_OPERATOR_TOKEN=$OPERATOR_TOKEN "$BERTH_BIN" serve >"$E2E/berth.log" 2>&1 &
BERTH_PID=$!
ADDR=
for _ in $(seq 1 100); do
  ADDR=$(grep -m1 -oE '127\.0\.0\.1:[0-9]+' "$E2E/berth.log" || true)
  [ -n "$ADDR" ] && break
  kill -0 "$BERTH_PID" 2>/dev/null || die "berth exited: $(cat "$E2E/berth.log")"
  sleep 0.1
done
[ -n "$ADDR" ] || die "berth did not report its address"
say "berth pid $BERTH_PID listening on $ADDR"
# Anonymous data plane (200), or one behind tokens (401): then log in as the default registry's admin user,
# enabled through the management API with the operator token.
CURL=(curl -fsS)
V2=$(curl -sS -o /dev/null -w '%{http_code}' "http://$ADDR/v2/")
case $V2 in
  200) AUTH=; say "GET /v2/: 200, no authentication" ;;
  401)
    api() { curl -fsS -H "Authorization: Bearer $OPERATOR_TOKEN" -H 'Content-Type: application/json' "$@"; }
    api -X PATCH -d '{"adminUserEnabled":true}' "http://$ADDR/api/registries/default" >/dev/null ||
      die "could not enable the default registry's admin user"
    CREDS=$(api "http://$ADDR/api/registries/default/credentials") || die "could not read the admin credentials"
    USER_NAME=$(printf '%s' "$CREDS" | grep -oE '"username":"[^"]*"' | cut -d'"' -f4)
    PASSWORD=$(printf '%s' "$CREDS" | grep -oE '"value":"[^"]*"' | head -n1 | cut -d'"' -f4)
    [ -n "$USER_NAME" ] && [ -n "$PASSWORD" ] || die "no username/password in $CREDS"
    AUTH=1
    say "GET /v2/: 401, logging in as the admin user '$USER_NAME'"
    ;;
  *) die "GET http://$ADDR/v2/ answered $V2" ;;
esac
# curl as the admin user: a token for one scope ("repository:samples/hello:pull" or "registry:catalog:*").
curl_as() {
  local scope=$1; shift
  if [ -z "$AUTH" ]; then "${CURL[@]}" "$@"; return; fi
  local token
  token=$(curl -fsS -u "$USER_NAME:$PASSWORD" --get --data-urlencode "service=default.localhost" \
    --data-urlencode "scope=$scope" "http://$ADDR/oauth2/token" | grep -oE '"token":"[^"]*"' | cut -d'"' -f4)
  [ -n "$token" ] || die "no token for $scope"
  "${CURL[@]}" -H "Authorization: Bearer $token" "$@"
}

# --- dockerd -------------------------------------------------------------------------------------------
step "starting dockerd"
export DOCKER_HOST=unix://$SOCK
export DOCKER_CONFIG=$E2E/docker-config # no credential helpers or proxies from the host
export DOCKER_BUILDKIT=0                # the classic builder: no buildx plugin needed, works offline
dockerd --storage-driver=vfs --iptables=false --bridge=none --host "unix://$SOCK" --data-root "$E2E/docker" \
  --exec-root "$E2E/exec" --pidfile "$E2E/docker.pid" >"$E2E/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for i in $(seq 1 60); do
  docker info >/dev/null 2>&1 && break
  kill -0 "$DOCKERD_PID" 2>/dev/null || die "dockerd exited: $(tail -n 20 "$E2E/dockerd.log")"
  [ "$i" = 60 ] && die "dockerd did not answer within 60 s"
  sleep 1
done
say "dockerd pid $DOCKERD_PID, server $(docker info --format '{{.ServerVersion}}'), storage $(docker info --format '{{.Driver}}')"
if [ -n "$AUTH" ]; then
  printf '%s' "$PASSWORD" | run docker login -u "$USER_NAME" --password-stdin "$ADDR" 2>&1 | grep -v -i 'warning\|credential\|^$' || true
  grep -q "$ADDR" "$DOCKER_CONFIG/config.json" || die "docker login did not store credentials"
fi

# --- image ---------------------------------------------------------------------------------------------
step "building an image FROM scratch with several layers"
TOKEN=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
GREETING="hello from berth $TOKEN"
cp "$BUSYBOX" "$E2E/ctx/busybox"
echo "$GREETING" >"$E2E/ctx/greeting.txt"
head -c $((4 * 1024 * 1024)) /dev/urandom >"$E2E/ctx/data.bin"
DATA_SUM=$(sha256sum "$E2E/ctx/data.bin" | cut -d' ' -f1)
printf 'built by tests/e2e/docker.sh\n' >"$E2E/ctx/README"
cat >"$E2E/ctx/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
COPY greeting.txt /etc/greeting.txt
COPY data.bin /opt/data.bin
COPY README /README
CMD ["/bin/busybox", "sh", "-c", "/bin/busybox cat /etc/greeting.txt && /bin/busybox sha256sum /opt/data.bin"]
EOF
IMAGE=$ADDR/samples/hello
run docker build -q -t "$IMAGE:v1" "$E2E/ctx"
ID_BUILT=$(docker image inspect -f '{{.Id}}' "$IMAGE:v1")
LAYERS=$(docker image inspect -f '{{len .RootFS.Layers}}' "$IMAGE:v1")
say "image ID $ID_BUILT with $LAYERS layers"
[ "$LAYERS" -ge 3 ] || die "expected at least 3 layers, got $LAYERS"

# --- push ----------------------------------------------------------------------------------------------
step "docker push $IMAGE:v1"
run docker push "$IMAGE:v1" | tee "$E2E/push.out"
PUSHED=$(grep -oE 'digest: sha256:[0-9a-f]{64}' "$E2E/push.out" | cut -d' ' -f2)
[ -n "$PUSHED" ] || die "no digest in the push output"
say "pushed manifest digest $PUSHED"

step "checking the registry over HTTP"
TAGS=$(curl_as repository:samples/hello:pull "http://$ADDR/v2/samples/hello/tags/list")
say "tags/list: $TAGS"
[ "$TAGS" = '{"name":"samples/hello","tags":["v1"]}' ] || die "unexpected tags/list: $TAGS"
HEADERS=$(curl_as repository:samples/hello:pull -I -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
  "http://$ADDR/v2/samples/hello/manifests/v1" | tr -d '\r')
SERVED=$(echo "$HEADERS" | grep -i '^docker-content-digest:' | cut -d' ' -f2)
TYPE=$(echo "$HEADERS" | grep -i '^content-type:' | cut -d' ' -f2)
say "HEAD manifests/v1: $TYPE $SERVED"
[ "$SERVED" = "$PUSHED" ] || die "the registry serves $SERVED for v1, docker pushed $PUSHED"
MANIFEST=$(curl_as repository:samples/hello:pull -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
  "http://$ADDR/v2/samples/hello/manifests/$PUSHED")
[ "sha256:$(printf '%s' "$MANIFEST" | sha256sum | cut -d' ' -f1)" = "$PUSHED" ] || die "manifest bytes do not hash to $PUSHED"
CATALOG=$(curl_as 'registry:catalog:*' "http://$ADDR/v2/_catalog")
say "catalog: $CATALOG"
case $CATALOG in *'"samples/hello"'*) ;; *) die "samples/hello not in the catalog" ;; esac

step "pushing a second tag (every layer already exists)"
run docker tag "$IMAGE:v1" "$IMAGE:v2"
run docker push "$IMAGE:v2" | tee "$E2E/push2.out"
grep -q 'digest: '"$PUSHED" "$E2E/push2.out" || die "v2 was pushed with another digest"
TAGS=$(curl_as repository:samples/hello:pull "http://$ADDR/v2/samples/hello/tags/list")
[ "$TAGS" = '{"name":"samples/hello","tags":["v1","v2"]}' ] || die "unexpected tags/list: $TAGS"
say "tags/list: $TAGS"

# --- pull ----------------------------------------------------------------------------------------------
step "removing the local image"
run docker rmi -f "$ID_BUILT" >/dev/null
if docker image inspect "$IMAGE:v1" >/dev/null 2>&1; then die "$IMAGE:v1 is still present locally"; fi
say "gone: $(docker images -q | wc -l) local images"

step "docker pull $IMAGE:v1"
run docker pull "$IMAGE:v1" | tee "$E2E/pull.out"
PULLED=$(grep -oE 'Digest: sha256:[0-9a-f]{64}' "$E2E/pull.out" | cut -d' ' -f2)
ID_PULLED=$(docker image inspect -f '{{.Id}}' "$IMAGE:v1")
say "pulled digest $PULLED, image ID $ID_PULLED"
[ "$PULLED" = "$PUSHED" ] || die "pulled digest $PULLED != pushed $PUSHED"
[ "$ID_PULLED" = "$ID_BUILT" ] || die "pulled image ID $ID_PULLED != built $ID_BUILT"
REPO_DIGEST=$(docker image inspect -f '{{join .RepoDigests " "}}' "$IMAGE:v1")
[ "$REPO_DIGEST" = "$IMAGE@$PUSHED" ] || die "RepoDigests: $REPO_DIGEST"

step "docker run --rm --network none $IMAGE:v1"
OUT=$(run docker run --rm --network none "$IMAGE:v1")
printf '%s\n' "$OUT"
[ "$(printf '%s\n' "$OUT" | sed -n 1p)" = "$GREETING" ] || die "expected '$GREETING'"
[ "$(printf '%s\n' "$OUT" | sed -n 2p | cut -d' ' -f1)" = "$DATA_SUM" ] || die "/opt/data.bin differs in the pulled image"

step "docker pull by digest $IMAGE@$PUSHED (after removing the image again)"
run docker rmi -f "$ID_PULLED" >/dev/null
run docker pull "$IMAGE@$PUSHED"
ID_BY_DIGEST=$(docker image inspect -f '{{.Id}}' "$IMAGE@$PUSHED")
[ "$ID_BY_DIGEST" = "$ID_BUILT" ] || die "image ID by digest $ID_BY_DIGEST != built $ID_BUILT"
OUT=$(run docker run --rm --network none "$IMAGE@$PUSHED")
[ "$(printf '%s\n' "$OUT" | sed -n 1p)" = "$GREETING" ] || die "expected '$GREETING', got '$OUT'"
say "image ID $ID_BY_DIGEST, printed: $(printf '%s\n' "$OUT" | sed -n 1p)"

if [ -n "$AUTH" ]; then
  step "anonymous pull is refused after docker logout"
  run docker logout "$ADDR"
  run docker rmi -f "$ID_BY_DIGEST" >/dev/null
  if run docker pull "$IMAGE:v1" >"$E2E/anon.out" 2>&1; then die "an anonymous pull succeeded"; fi
  say "refused: $(tail -n1 "$E2E/anon.out")"
fi

step "summary"
say "pushed  $PUSHED ($LAYERS layers, image ID $ID_BUILT)"
say "pulled  $PULLED (image ID $ID_PULLED)"
