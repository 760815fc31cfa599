#!/usr/bin/env bash
# The seed's "push your first image" walkthrough, step by step as README.md tells it, with the berth CLI and
# the docker CLI against a real `berth serve`: create two registries, reach both by login server name at
# the same time, enable an admin user, show its credentials, docker login, build a small image (a static
# binary that prints a line), push, remove, pull, run, list it with the CLI; then the CI flow with service
# principals (a Contributor pushes, a Reader pulls and is denied a push) and a multi-arch manifest list.
#
# Usage: tests/e2e/walkthrough.sh   (as root: it runs its own dockerd and adds /etc/hosts entries)
# Needs: docker.io (with containerd's ctr), podman, busybox-static, curl, python3.  Env: BERTH_BIN (default: the debug build).
set -euo pipefail
cd "$(dirname "$0")/../.."
E2E=/tmp/berth-walkthrough-e2e
PASS_MESSAGE="the README walkthrough: two registries by name, admin user, service principals, multi-arch"
source tests/e2e/lib.sh
BUSYBOX=${BUSYBOX:-/bin/busybox}

step "checking prerequisites"
e2e_prerequisites dockerd docker ctr curl python3 podman
require_static_busybox

step "starting berth and dockerd"
# The login servers' names, mapped before dockerd starts (Go re-reads /etc/hosts only every few seconds).
add_hosts myregistry1.localhost teamregistry2.localhost
start_berth
start_dockerd
PORT=${ADDR##*:}
export BERTH_SERVER=http://$ADDR BERTH_TOKEN=$OPERATOR_TOKEN
berth() { show berth "$@"; "$BERTH_BIN" "$@"; }
json() { python3 -c "import json,sys; v=json.load(sys.stdin); print(eval(sys.argv[1], {'v': v}))" "$1"; }

step "berth registry create: two registries, each with its own login server"
berth registry create -n myRegistry1 --sku Basic | tee "$E2E/reg1.json"
berth registry create -n teamRegistry2 --sku Standard >"$E2E/reg2.json"
LOGIN1=$(json 'v["loginServer"]' <"$E2E/reg1.json")
LOGIN2=$(json 'v["loginServer"]' <"$E2E/reg2.json")
[ "$LOGIN1" = "myregistry1.localhost:$PORT" ] || die "unexpected login server $LOGIN1"
say "login servers $LOGIN1 and $LOGIN2 (127.0.0.1 in /etc/hosts)"

step "enable the admin user and show its credentials"
berth registry update -n myRegistry1 --admin-enabled true >/dev/null
berth credential show -n myRegistry1 -o table
berth credential show -n myRegistry1 >"$E2E/creds.json"
ADMIN_USER=$(json 'v["username"]' <"$E2E/creds.json")
ADMIN_PASSWORD=$(json 'v["passwords"][0]["value"]' <"$E2E/creds.json")

step "docker login $LOGIN1 as the admin user"
run docker login "$LOGIN1" -u "$ADMIN_USER" --password-stdin <<<"$ADMIN_PASSWORD"

step "build a small image: a static binary that prints a line"
GREETING="Hello from Berth $(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cp "$BUSYBOX" "$E2E/ctx/busybox"
cat >"$E2E/ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY busybox /bin/busybox
CMD ["/bin/busybox", "echo", "$GREETING"]
DOCKERFILE
run docker build -q -t hello "$E2E/ctx"

step "docker tag, push, remove, pull, run"
run docker tag hello "$LOGIN1/samples/hello:v1"
run docker push "$LOGIN1/samples/hello:v1"
run docker rmi "$LOGIN1/samples/hello:v1" hello >/dev/null
run docker pull "$LOGIN1/samples/hello:v1"
OUT=$(docker run --rm --network none "$LOGIN1/samples/hello:v1")
[ "$OUT" = "$GREETING" ] || die "the container printed '$OUT', expected '$GREETING'"
say "the container printed: $OUT"

step "berth repository list / show-tags show it"
berth repository list -n myRegistry1 | tee "$E2E/repos.json"
[ "$(json 'v' <"$E2E/repos.json")" = "['samples/hello']" ] || die "repository list: $(cat "$E2E/repos.json")"
berth repository show-tags -n myRegistry1 --repository samples/hello -o table | tee "$E2E/tags.txt"
grep -qx 'v1' <(tail -n +3 "$E2E/tags.txt" | tr -d ' ') || die "show-tags does not list v1"

step "CI flow on $LOGIN2: a Contributor service principal pushes"
berth sp create-for-rbac --scopes /registries/teamRegistry2 --role Contributor --name ci-push >"$E2E/contrib.json"
CONTRIB_ID=$(json 'v["appId"]' <"$E2E/contrib.json")
CONTRIB_PASSWORD=$(json 'v["password"]' <"$E2E/contrib.json")
run docker login "$LOGIN2" -u "$CONTRIB_ID" --password-stdin <<<"$CONTRIB_PASSWORD"
run docker tag "$LOGIN1/samples/hello:v1" "$LOGIN2/ci/app:1"
run docker push "$LOGIN2/ci/app:1"
say "docker is logged in to both login servers at once:"
python3 -c "import json,sys; print('   ', sorted(json.load(open(sys.argv[1]))['auths']))" "$DOCKER_CONFIG/config.json"
run docker rmi "$LOGIN1/samples/hello:v1" >/dev/null
run docker pull "$LOGIN1/samples/hello:v1"

step "a Reader service principal pulls from $LOGIN2 and is denied a push"
berth sp create-for-rbac --scopes /registries/teamRegistry2 --role Reader --name deploy-pull >"$E2E/reader.json"
run docker login "$LOGIN2" -u "$(json 'v["appId"]' <"$E2E/reader.json")" --password-stdin <<<"$(json 'v["password"]' <"$E2E/reader.json")"
run docker rmi "$LOGIN2/ci/app:1" >/dev/null
run docker pull "$LOGIN2/ci/app:1"
run docker tag "$LOGIN2/ci/app:1" "$LOGIN2/ci/app:2"
refused reader-push 'denied: requested access to the resource is denied' docker push "$LOGIN2/ci/app:2"
refused admin-elsewhere 'unauthorized' docker login "$LOGIN2" -u "$ADMIN_USER" --password-stdin <<<"$ADMIN_PASSWORD"

step "containerd pulls with the Reader's credentials (ctr, as the README shows)"
READER_CREDS="$(json 'v["appId"]' <"$E2E/reader.json"):$(json 'v["password"]' <"$E2E/reader.json")"
ctr() { show ctr "$@"; command ctr --address "$E2E/exec/containerd/containerd.sock" --namespace berth-e2e "$@"; }
ctr images pull --plain-http --user "$READER_CREDS" "$LOGIN2/ci/app:1" >"$E2E/ctr.out"
ctr images ls -q | grep -qx "$LOGIN2/ci/app:1" || die "containerd does not list the pulled image: $(cat "$E2E/ctr.out")"
say "containerd pulled $LOGIN2/ci/app:1"
refused ctr-wrong-password 'unauthorized|authorization failed|401' ctr images pull --plain-http --user "$READER_CREDS-wrong" "$LOGIN2/ci/app:1"

step "multi-arch: a manifest list of two platforms, pushed and pulled"
run docker login "$LOGIN2" -u "$CONTRIB_ID" --password-stdin <<<"$CONTRIB_PASSWORD"
TOKEN=$(curl -fsS -u "$CONTRIB_ID:$CONTRIB_PASSWORD" \
  "http://$LOGIN2/oauth2/token?scope=repository:ci/app:pull,push&scope=repository:ci/multi:pull,push" | json 'v["token"]')
python3 - "$LOGIN2" "$TOKEN" <<'PY'
# Makes an arm64 twin of ci/app:1 (same layers, a config saying arm64) and a manifest list of both.
import hashlib, json, sys, urllib.request
base, token = f"http://{sys.argv[1]}/v2", sys.argv[2]
def call(method, path, body=None, ctype=None, accept=None):
    req = urllib.request.Request(base + path, data=body, method=method, headers={"Authorization": f"Bearer {token}"})
    if ctype: req.add_header("Content-Type", ctype)
    if accept: req.add_header("Accept", accept)
    with urllib.request.urlopen(req) as r:
        return r.read(), r.headers
M2 = "application/vnd.docker.distribution.manifest.v2+json"
LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
raw, _ = call("GET", "/ci/app/manifests/1", accept=M2)
amd = json.loads(raw)
for d in [amd["config"]] + amd["layers"]:
    call("POST", f"/ci/multi/blobs/uploads/?mount={d['digest']}&from=ci/app")
config = json.loads(call("GET", f"/ci/app/blobs/{amd['config']['digest']}")[0])
config["architecture"] = "arm64"
config_bytes = json.dumps(config).encode()
config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
call("POST", f"/ci/multi/blobs/uploads/?digest={config_digest}", config_bytes, "application/octet-stream")
arm = dict(amd, config=dict(amd["config"], digest=config_digest, size=len(config_bytes)))
arm_bytes = json.dumps(arm).encode()
call("PUT", "/ci/multi/manifests/arm64", arm_bytes, M2)
call("PUT", "/ci/multi/manifests/amd64", raw, M2)
entries = [(raw, "amd64"), (arm_bytes, "arm64")]
index = {"schemaVersion": 2, "mediaType": LIST, "manifests": [
    {"mediaType": M2, "size": len(b), "digest": "sha256:" + hashlib.sha256(b).hexdigest(),
     "platform": {"architecture": a, "os": "linux"}} for b, a in entries]}
call("PUT", "/ci/multi/manifests/latest", json.dumps(index).encode(), LIST)
print("   pushed ci/multi:latest, a manifest list of linux/amd64 and linux/arm64")
PY
run docker manifest inspect --insecure "$LOGIN2/ci/multi:latest" >"$E2E/list.json"
[ "$(json '[m["platform"]["architecture"] for m in v["manifests"]]' <"$E2E/list.json")" = "['amd64', 'arm64']" ] ||
  die "the manifest list does not name both platforms: $(cat "$E2E/list.json")"
run docker pull "$LOGIN2/ci/multi:latest"
ARCH=$(docker image inspect -f '{{.Architecture}}' "$LOGIN2/ci/multi:latest")
[ "$ARCH" = amd64 ] || die "docker picked $ARCH from the list"
OUT=$(docker run --rm --network none "$LOGIN2/ci/multi:latest")
[ "$OUT" = "$GREETING" ] || die "the multi-arch image printed '$OUT'"
say "docker picked linux/$ARCH from the list; it printed: $OUT"

step "podman: login, push and pull against the same registries"
# podman cannot run containers in this sandbox (runc may not set rlimits here), so it pushes and pulls only.
podman() { show podman "$@"; env -u DOCKER_CONFIG REGISTRY_AUTH_FILE="$E2E/podman-auth.json" podman --root "$E2E/podman" --runroot "$E2E/podman-run" --storage-driver vfs "$@"; }
podman login --tls-verify=false "$LOGIN1" -u "$ADMIN_USER" --password-stdin <<<"$ADMIN_PASSWORD"
cp "$BUSYBOX" "$E2E/ctx/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nCMD ["/bin/busybox", "echo", "%s"]\n' "$GREETING" >"$E2E/ctx/Containerfile"
podman build -q -f "$E2E/ctx/Containerfile" -t "$LOGIN1/podman/hello:v1" "$E2E/ctx" >/dev/null
podman push -q --tls-verify=false "$LOGIN1/podman/hello:v1"
podman rmi -f "$LOGIN1/podman/hello:v1" >/dev/null
podman pull -q --tls-verify=false "$LOGIN1/podman/hello:v1" >/dev/null
CMD=$(podman image inspect -f '{{.Config.Cmd}}' "$LOGIN1/podman/hello:v1")
case $CMD in *"$GREETING"*) say "podman pulled it back: Cmd $CMD" ;; *) die "podman pulled an unexpected image: $CMD" ;; esac
podman logout "$LOGIN1"
refused podman-anonymous 'unauthorized|authentication required' podman pull --tls-verify=false "$LOGIN1/podman/hello:v1"
