#!/usr/bin/env bash
# Web portal page times for a registry of 2,000 repositories and 10,000 tags: starts a release Berth on a
# free port with a temporary data folder, pushes 1,999 repositories of one tag each and one repository of
# 8,001 tags (each tag its own manifest, sharing one config and one layer), signs in to the portal as the
# operator, then GETs each page R times and prints the median and the 95th percentile in milliseconds.
# The portal's target: every page under 50 ms. Time is measured by the client over loopback, so it
# includes a fraction of a millisecond of HTTP on top of the server's time.
#
# Usage: bench/portal.sh [--rounds R]    (default 30)
# Env:   BERTH_BENCH_NO_BUILD=1  skip `cargo build --release`
#        BERTH_BENCH_TMP         where the data folder goes (default $TMPDIR or /tmp)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=30
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=$2; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

[ -n "${BERTH_BENCH_NO_BUILD:-}" ] || cargo build --release --quiet --bin berth
BERTH=${CARGO_TARGET_DIR:-target}/release/berth
WORK=$(mktemp -d "${BERTH_BENCH_TMP:-${TMPDIR:-/tmp}}/berth-portal.XXXXXX")
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TOKEN=bench$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
BERTH_HTTP_BIND=127.0.0.1:$PORT BERTH_DATA_DIR=$WORK/data BERTH_OPERATOR_TOKEN=$TOKEN BERTH_LOG_LEVEL=warn \
  "$BERTH" serve >"$WORK/berth.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done

python3 - "$PORT" "$TOKEN" "$ROUNDS" <<'PY'
import base64, hashlib, http.client, json, statistics, sys, time, urllib.parse

port, operator, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port)

def call(method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    return response.status, dict(response.getheaders()), data

api = {"Authorization": f"Bearer {operator}", "Content-Type": "application/json"}
call("PATCH", "/api/registries/default", json.dumps({"adminUserEnabled": True, "pushLimit": 1000}), api)
password = json.loads(call("GET", "/api/registries/default/credentials", headers=api)[2])["passwords"][0]["value"]
basic = "Basic " + base64.b64encode(f"default:{password}".encode()).decode()

def token(repo):
    scope = urllib.parse.quote(f"repository:{repo}:push,pull")
    status, _, body = call("GET", f"/oauth2/token?service=default.localhost&scope={scope}", headers={"Authorization": basic})
    assert status == 200, body
    return json.loads(body)["token"]

def push_blob(repo, auth, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, _, body = call("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data,
                           {"Authorization": auth, "Content-Type": "application/octet-stream"})
    assert status == 201, body
    return digest

config, layer = b'{"architecture":"amd64","os":"linux"}', b"portal bench layer"

def push_tags(repo, tags):
    auth = "Bearer " + token(repo)
    config_digest, layer_digest = push_blob(repo, auth, config), push_blob(repo, auth, layer)
    for tag in tags:
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": len(layer)}],
            "annotations": {"build": f"{repo}:{tag}"},
        })
        status, _, body = call("PUT", f"/v2/{repo}/manifests/{tag}", manifest,
                               {"Authorization": auth, "Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert status == 201, body

started = time.time()
for i in range(1999):
    push_tags(f"team{i % 40:02d}/service{i:04d}", ["v1"])
push_tags("big/app", [f"build-{n:05d}" for n in range(8001)])
print(f"seeded 2,000 repositories and 10,000 tags in {time.time() - started:.0f} s", flush=True)

status, headers, _ = call("POST", "/portal/sign-in", urllib.parse.urlencode({"kind": "operator", "token": operator}),
                          {"Content-Type": "application/x-www-form-urlencoded"})
assert status == 303, status
cookie = headers["set-cookie"].split(";")[0]
pages = [
    ("registries", "/portal/registries"),
    ("overview", "/portal/registries/default"),
    ("access keys", "/portal/registries/default/access-keys"),
    ("repositories, page 1", "/portal/registries/default/repositories"),
    ("repositories, page 20", "/portal/registries/default/repositories?page=20"),
    ("repositories, search", "/portal/registries/default/repositories?q=service19"),
    ("repository, 8,001 tags", "/portal/registries/default/repositories/big/app"),
    ("repository, 8,001 tags, page 80", "/portal/registries/default/repositories/big/app?page=80"),
    ("repository, 1 tag", "/portal/registries/default/repositories/team07/service0007"),
    ("access control", "/portal/registries/default/access-control"),
    ("tag immutability", "/portal/registries/default/immutability"),
    ("retention", "/portal/registries/default/retention"),
    ("activity log", "/portal/registries/default/activity"),
]
print(f"{'page':36} {'median ms':>10} {'p95 ms':>8}")
worst = 0.0
for name, path in pages:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        status, _, body = call("GET", path, headers={"Cookie": cookie})
        times.append((time.perf_counter() - t) * 1000)
        assert status == 200, (path, status, body[:200])
    times.sort()
    median, p95 = statistics.median(times), times[int(len(times) * 0.95) - 1]
    worst = max(worst, median)
    print(f"{name:36} {median:10.1f} {p95:8.1f}")
print(f"slowest median: {worst:.1f} ms (target: under 50 ms)")
PY
