#!/usr/bin/env bash
# End to end with the real docker CLI: starts a berth server and a private dockerd, builds a multi-layer
# image FROM scratch (static busybox + files), logs in as the default registry's admin user, pushes it to
# berth, removes it locally, pulls it back (by tag and by digest), runs it and compares digests and image IDs.
# Renewing admin password 1 leaves a client logged in with password 2 pulling; renewing password 2 logs it out.
# Then the same with service principals made through the management API: a Contributor (scoped to the
# repository prefix warrantydept) pushes to a multilevel repository, pulls it back and may not pull outside its
# prefix; a Reader pulls and is denied a push; a wrong password makes docker login fail, and so do a login
# with no role on the registry and one at a login server that names no registry (each saying why); after
# docker logout a pull is refused. On the way, the sequence of Distribution issue 3254: the image is
# deleted, its blobs collected, and it is pushed, pulled and run again; and a storage quota refuses a push
# that does not fit, then admits it once a deleted image was collected.
#
# Usage: tests/e2e/docker.sh   (as root: it runs its own dockerd)
# Needs: docker.io (dockerd + docker CLI), busybox-static, curl, skopeo.
# Env:   BERTH_BIN  the server binary, default the debug build (built with cargo when not given)
#        BUSYBOX    a statically linked busybox, default /bin/busybox
# Everything lives in /tmp/berth-e2e, removed on exit; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

E2E=/tmp/berth-e2e
PASS_MESSAGE="docker login/push/pull/logout through berth (admin user, service principals)"
source tests/e2e/lib.sh
BUSYBOX=${BUSYBOX:-/bin/busybox}
PUSHED=
# login USER PASSWORD: docker login, which must succeed and store the credentials.
login() {
  show docker login -u "$1" --password-stdin "$ADDR"
  printf '%s' "$2" | docker login -u "$1" --password-stdin "$ADDR" >"$E2E/login.out" 2>&1 ||
    die "docker login as $1 failed: $(cat "$E2E/login.out")"
  grep -q 'Login Succeeded' "$E2E/login.out" || die "docker login as $1 did not say 'Login Succeeded': $(cat "$E2E/login.out")"
  grep -q "$ADDR" "$DOCKER_CONFIG/config.json" || die "docker login did not store credentials"
  say "$1: $(grep 'Login Succeeded' "$E2E/login.out")"
}

# --- preconditions -------------------------------------------------------------------------------------
step "checking prerequisites"
e2e_prerequisites dockerd docker curl skopeo
require_static_busybox
say "berth: $BERTH_BIN; busybox: $BUSYBOX; $(docker --version)"

# --- berth ---------------------------------------------------------------------------------------------
step "starting berth"
# A grace period of 2 s and no scheduled collection: the script runs the collector itself. Requests over a
# registry's limit wait 3 s before 429 (the throttling step).
start_berth BERTH_GC_GRACE_SECS=2 BERTH_GC_INTERVAL_SECS=0 BERTH_LIMITS_QUEUE_TIMEOUT_MS=3000
BASE=http://$ADDR
# No anonymous access: /v2/ answers 401 with a Bearer challenge. The management API (operator token) enables
# the default registry's admin user and makes service principals.
V2=$(curl -sS -o /dev/null -w '%{http_code}' "http://$ADDR/v2/")
[ "$V2" = 401 ] || die "GET http://$ADDR/v2/ without a token answered $V2, expected 401"
enable_admin
say "GET /v2/: 401; admin user '$USER_NAME' enabled"

# --- dockerd -------------------------------------------------------------------------------------------
step "starting dockerd"
start_dockerd

step "docker login as the admin user"
login "$USER_NAME" "$PASSWORD"

# --- image ---------------------------------------------------------------------------------------------
step "building an image FROM scratch with 8 layers (more than the push limit of 5)"
TOKEN=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
GREETING="hello from berth $TOKEN"
cp "$BUSYBOX" "$E2E/ctx/busybox"
echo "$GREETING" >"$E2E/ctx/greeting.txt"
head -c $((4 * 1024 * 1024)) /dev/urandom >"$E2E/ctx/data.bin"
DATA_SUM=$(sha256sum "$E2E/ctx/data.bin" | cut -d' ' -f1)
printf 'built by tests/e2e/docker.sh\n' >"$E2E/ctx/README"
for i in 1 2 3 4; do head -c $((256 * 1024 + i)) /dev/urandom >"$E2E/ctx/extra$i.bin"; done
cat >"$E2E/ctx/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
COPY greeting.txt /etc/greeting.txt
COPY data.bin /opt/data.bin
COPY README /README
COPY extra1.bin /opt/extra1.bin
COPY extra2.bin /opt/extra2.bin
COPY extra3.bin /opt/extra3.bin
COPY extra4.bin /opt/extra4.bin
CMD ["/bin/busybox", "sh", "-c", "/bin/busybox cat /etc/greeting.txt && /bin/busybox sha256sum /opt/data.bin"]
EOF
IMAGE=$ADDR/samples/hello
run docker build -q -t "$IMAGE:v1" "$E2E/ctx"
ID_BUILT=$(docker image inspect -f '{{.Id}}' "$IMAGE:v1")
LAYERS=$(docker image inspect -f '{{len .RootFS.Layers}}' "$IMAGE:v1")
say "image ID $ID_BUILT with $LAYERS layers"
[ "$LAYERS" -ge 8 ] || die "expected at least 8 layers, got $LAYERS"
PUSH_LIMIT=$(api "http://$ADDR/api/registries/default" | grep -oE '"pushes":[0-9]+' | cut -d: -f2)
say "the registry allows $PUSH_LIMIT concurrent pushes; docker uploads up to 5 layers at a time"
[ "$PUSH_LIMIT" = 5 ] || die "expected Basic's push limit of 5, got $PUSH_LIMIT"

# --- push ----------------------------------------------------------------------------------------------
step "docker push $IMAGE:v1"
push "$IMAGE:v1"

step "checking the registry over HTTP"
tags samples/hello '["v1"]'
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
push "$IMAGE:v2"
tags samples/hello '["v1","v2"]'

# --- pull ----------------------------------------------------------------------------------------------
step "removing the local image"
run docker rmi -f "$ID_BUILT" >/dev/null
if docker image inspect "$IMAGE:v1" >/dev/null 2>&1; then die "$IMAGE:v1 is still present locally"; fi
say "gone: $(docker images -q | wc -l) local images"

step "docker pull $IMAGE:v1 and run it"
pull_run "$IMAGE:v1"
REPO_DIGEST=$(docker image inspect -f '{{join .RepoDigests " "}}' "$IMAGE:v1")
[ "$REPO_DIGEST" = "$IMAGE@$PUSHED" ] || die "RepoDigests: $REPO_DIGEST"

step "docker pull by digest $IMAGE@$PUSHED (after removing the image again) and run it"
pull_run "$IMAGE@$PUSHED"

# The sequence of Distribution issue 3254: the image's manifest (and so its tags) is deleted, the collector
# takes its blobs, and docker pushes it again. docker HEADs each layer first and uploads only those the
# registry says it lacks; a registry that answers from a stale record makes the manifest push fail with
# "manifest blob unknown".
step "deleting $IMAGE@$PUSHED, collecting its blobs, pushing it again, pulling and running it"
curl_as repository:samples/hello:delete -X DELETE "http://$ADDR/v2/samples/hello/manifests/$PUSHED" >/dev/null
sleep 3
REPORT=$(BERTH_SERVER=http://$ADDR BERTH_TOKEN=$OPERATOR_TOKEN "$BERTH_BIN" gc run -n default -o json)
say "berth gc run: $REPORT"
REMOVED=$(printf '%s' "$REPORT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["blobsRemoved"])')
[ "${REMOVED:-0}" -ge 2 ] || die "the collector removed ${REMOVED:-no} blobs of the deleted image"
run docker tag "$ID_BUILT" "$IMAGE:v1"
push "$IMAGE:v1"
pull_run "$IMAGE:v1"
STATUS=$(BERTH_SERVER=http://$ADDR BERTH_TOKEN=$OPERATOR_TOKEN "$BERTH_BIN" gc status -n default)
say "berth gc status:"$'\n'"$STATUS"

# A storage quota: a push that does not fit is refused with a message a person understands (DENIED, so
# docker shows it at once and does not retry), and fits once a deleted image has been collected.
step "a storage quota refuses a push that does not fit, and admits it after a delete and a collection"
cli() { BERTH_SERVER=http://$ADDR BERTH_TOKEN=$OPERATOR_TOKEN "$BERTH_BIN" "$@"; }
for name in a b; do
  mkdir -p "$E2E/quota-$name"
  head -c $((3 * 1024 * 1024)) /dev/urandom >"$E2E/quota-$name/fill.bin"
  printf 'FROM scratch\nCOPY fill.bin /fill.bin\n' >"$E2E/quota-$name/Dockerfile"
  run docker build -q -t "$ADDR/samples/quota:$name" "$E2E/quota-$name" >/dev/null
done
USED=$(cli registry show-usage -n default -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["value"][0]["currentValue"])')
cli registry update -n default --storage-quota $((USED + 4 * 1024 * 1024)) >/dev/null
say "the registry stores $USED bytes; its quota is now 4 MiB more"
run docker push -q "$ADDR/samples/quota:a" >/dev/null
refused quota-push 'denied: storage quota exceeded: registry default stores .* quota and this push needs' \
  timeout 120 docker push "$ADDR/samples/quota:b"
QUOTA_A=$(curl_as repository:samples/quota:pull -I -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
  "http://$ADDR/v2/samples/quota/manifests/a" | tr -d '\r' | grep -i '^docker-content-digest:' | cut -d' ' -f2)
curl_as repository:samples/quota:delete -X DELETE "http://$ADDR/v2/samples/quota/manifests/$QUOTA_A" >/dev/null
sleep 3
cli gc run -n default >/dev/null
run docker push -q "$ADDR/samples/quota:b" >/dev/null
tags samples/quota '["b"]'
cli registry update -n default --storage-quota 0 >/dev/null
say "after deleting samples/quota:a and a collection, samples/quota:b was pushed"

# Throttling is visible: with the registry's one pull slot held by a slow download, docker's pull waits
# its 3 s and gets 429 TOOMANYREQUESTS, which docker prints (it does not retry it); the server logs it at
# warn with the registry and the limit, and counts it.
step "a pull past the registry's pull limit: docker shows the 429, the server logs and counts it"
api -X PATCH -d '{"pullLimit":1}' "$BASE/api/registries/default" >/dev/null
BIG_LAYER=$(printf '%s' "$MANIFEST" | python3 -c 'import json,sys; print(max(json.load(sys.stdin)["layers"], key=lambda l: l["size"])["digest"])')
curl_as repository:samples/hello:pull --limit-rate 16K -o /dev/null "http://$ADDR/v2/samples/hello/blobs/$BIG_LAYER" &
HOLDER=$!
sleep 1
docker rmi -f "$ID_BUILT" >/dev/null 2>&1 || true
refused throttled 'toomanyrequests: too many requests: registry default allows 1 concurrent pulls and all were busy for 3000 ms' \
  timeout 120 docker pull "$IMAGE:v1"
pkill -f -- '--limit-rate 16K' || true
wait "$HOLDER" 2>/dev/null || true
LOGGED=$(grep -m1 'pull limit reached: request refused with 429' "$E2E/berth.log") || die "the 429 was not logged"
say "logged: $LOGGED"
COUNTED=$(api "$BASE/metrics" | grep '^berth_limit_throttled_total{direction="pull",registry="default"}') ||
  die "the 429 was not counted"
say "counted: $COUNTED"
api -X PATCH -d '{"pullLimit":0}' "$BASE/api/registries/default" >/dev/null

# Locks and tag immutability as docker and skopeo meet them: each refusal is DENIED (docker does not retry
# it) and names the lock or the rule that refused.
step "locks and tag immutability refuse docker push, skopeo delete and docker pull, naming why"
pull_run "$IMAGE:v1"
mkdir -p "$E2E/other"
printf 'another image\n' >"$E2E/other/note.txt"
printf 'FROM scratch\nCOPY note.txt /note.txt\n' >"$E2E/other/Dockerfile"
run docker build -q -t "$ADDR/samples/other:v1" "$E2E/other" >/dev/null
run docker tag "$ID_BUILT" "$ADDR/samples/locked:v1"
push "$ADDR/samples/locked:v1"
cli repository update -n default --image samples/locked:v1 --write-enabled false --delete-enabled false >/dev/null
run docker tag "$ADDR/samples/other:v1" "$ADDR/samples/locked:v1"
refused locked-push 'denied: push of samples/locked:v1 refused by a lock: writeEnabled is false on the tag' \
  timeout 120 docker push "$ADDR/samples/locked:v1"
refused locked-delete 'refused by a lock: deleteEnabled is false on the tag' \
  skopeo delete --tls-verify=false --creds "$USER_NAME:$PASSWORD" "docker://$ADDR/samples/locked:v1"
tags samples/locked '["v1"]'
cli repository update -n default --repository samples/locked --read-enabled false >/dev/null
docker rmi -f "$ADDR/samples/locked:v1" >/dev/null
refused locked-pull 'denied: pull of samples/locked:v1 refused by a lock: readEnabled is false on the repository' \
  timeout 120 docker pull "$ADDR/samples/locked:v1"
cli repository update -n default --repository samples/locked --read-enabled true --list-enabled false >/dev/null
CATALOG=$(curl_as registry:catalog:* "$BASE/v2/_catalog")
case $CATALOG in *samples/locked*) die "listEnabled=false left samples/locked in the catalog: $CATALOG" ;; esac
pull_run "$ADDR/samples/locked:v1"
say "hidden from the catalog ($CATALOG) and still pulled by name"
cli immutability create -n default --repositories 'samples/*' --tags 'release-*' >/dev/null
run docker tag "$ID_BUILT" "$ADDR/samples/immutable:release-1"
push "$ADDR/samples/immutable:release-1"
push "$ADDR/samples/immutable:release-1"
say "the same image pushed again to the write-once tag: accepted"
run docker tag "$ADDR/samples/other:v1" "$ADDR/samples/immutable:release-1"
refused immutable-push 'denied: push of samples/immutable:release-1 \(the tag holds another digest\) refused: tag immutability rule 1' \
  timeout 120 docker push "$ADDR/samples/immutable:release-1"
run docker tag "$ID_BUILT" "$ADDR/samples/immutable:release-1"

# Two admin passwords exist so that one can be rotated while clients use the other. docker keeps the
# refresh token it got at login; renewing a password revokes only what that password gave out.
step "rotating the admin passwords: a docker client logged in with password 2 keeps pulling"
renew() { api -X POST -d "{\"passwordName\":\"$1\"}" "$BASE/api/registries/default/credentials/renew"; }
PASSWORD2=$(api "$BASE/api/registries/default/credentials" | python3 -c 'import json,sys; print(json.load(sys.stdin)["passwords"][1]["value"])')
login "$USER_NAME" "$PASSWORD2"
grep -q identitytoken "$DOCKER_CONFIG/config.json" || die "docker login kept no refresh token: $(cat "$DOCKER_CONFIG/config.json")"
renew password >/dev/null || die "renewing password 1 failed"
pull_run "$IMAGE:v1"
say "password 1 renewed; the client logged in with password 2 pulled"
renew password2 >"$E2E/renewed.json" || die "renewing password 2 failed"
docker rmi -f "$ID_BUILT" >/dev/null 2>&1 || true
refused rotated-out 'unauthorized' docker pull "$IMAGE:v1"
PASSWORD=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["passwords"][0]["value"])' <"$E2E/renewed.json")
login "$USER_NAME" "$PASSWORD"
pull_run "$IMAGE:v1"
say "password 2 renewed: its client was asked to log in again, and did with the new password 1"

# --- service principals ----------------------------------------------------------------------------------
MULTI=warrantydept/customersubmissions/web
# Berth answers 403 {"code":"DENIED","message":"requested access to the resource is denied: <action> on
# repository <name> refused: service principal <appId> has <its roles>", "detail":[the missing access]}.
# A final denial: Berth names the missing access (insufficient_scope challenge and error detail), so docker
# prints the whole sentence and does not retry.
DENIED='denied: requested access to the resource is denied: (pull|push) on repository [^ ]+ refused: service principal [0-9a-f-]+ has'
step "a Contributor on the prefix warrantydept pushes to the multilevel repository $MULTI"
principal CONTRIB Contributor /registries/default/repositories/warrantydept
login "$CONTRIB_ID" "$CONTRIB_PASSWORD"
run docker tag "$ID_BUILT" "$ADDR/$MULTI:v1"
push "$ADDR/$MULTI:v1"
tags "$MULTI" '["v1"]'
# Outside its prefix it may neither pull nor push, and the push fails at once (no retry loop).
refused contrib-outside "$DENIED" docker pull "$IMAGE:v1"
run docker tag "$ID_BUILT" "$ADDR/samples/outside:v1"
refused contrib-outside-push "$DENIED" timeout 30 docker push "$ADDR/samples/outside:v1"

step "the Contributor pulls $MULTI:v1 back and runs it"
pull_run "$ADDR/$MULTI:v1"

step "a Reader on the registry pulls $MULTI:v1 and is denied a push"
principal READER Reader /registries/default
login "$READER_ID" "$READER_PASSWORD"
pull_run "$ADDR/$MULTI:v1"
run docker tag "$ID_BUILT" "$ADDR/$MULTI:v2"
refused reader-push "$DENIED Reader on registry default" docker push "$ADDR/$MULTI:v2"
tags "$MULTI" '["v1"]'

step "docker login with a wrong password fails"
for user in "$USER_NAME" "$READER_ID"; do
  refused wrong-password 'unauthorized: incorrect username or password' \
    docker login -u "$user" --password-stdin "$ADDR" <<<"wrong-$PASSWORD"
done

step "a login that could do nothing is refused, and says why"
api -X POST -d '{"name":"elsewhere","sku":"Basic"}' "$BASE/api/registries" >/dev/null || die "creating registry elsewhere failed"
principal STRANGER Reader /registries/elsewhere
refused no-role 'has no role on registry default' \
  docker login -u "$STRANGER_ID" --password-stdin "$ADDR" <<<"$STRANGER_PASSWORD"
add_hosts typo.localhost
refused no-registry 'no registry named "typo"' \
  docker login -u "$USER_NAME" --password-stdin "typo.localhost:${ADDR##*:}" <<<"$PASSWORD"

step "anonymous pull is refused after docker logout"
run docker logout "$ADDR"
grep -q "$ADDR" "$DOCKER_CONFIG/config.json" && die "docker logout left credentials in config.json"
docker rmi -f "$ID_BUILT" >/dev/null
for ref in "$IMAGE:v1" "$ADDR/$MULTI:v1"; do
  refused anon-pull 'unauthorized: authentication required' docker pull "$ref"
done

step "summary"
say "pushed  $PUSHED ($LAYERS layers, image ID $ID_BUILT) as samples/hello:v1,v2 (admin) and $MULTI:v1 (Contributor)"
say "pulled  by tag and digest (admin), $MULTI:v1 (Contributor, Reader)"
say "rotated admin password 1 under a client of password 2, then password 2 (that client had to log in again)"
say "refused a push past the storage quota (admitted after a delete and a collection), a pull past the pull"
say "        limit (docker showed the 429; logged and counted)"
say "refused a push to a locked tag, its skopeo delete, a pull under a read lock, a push of another image to"
say "        a write-once tag (the same image again was taken)"
say "refused Contributor pull outside its prefix, Reader push, wrong passwords, a login without a role, a"
say "        login server that names no registry, pulls after logout"
