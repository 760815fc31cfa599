#!/usr/bin/env bash
# End to end: purge and restore with real clients. podman pushes 30 images tagged build-1..build-30 and a
# multi-arch index (two platforms, `podman manifest push --all`); their push times are then set in the
# database to N days ago (the injectable clock of this test: berth reads ages from there). skopeo pulls an
# old image by digest only, so it counts as recently pulled. A `berth purge --dry-run` must list exactly
# the expected tags and manifests; the purge itself deletes them; every kept tag, and each platform of the
# index (`skopeo --override-arch`), still pulls; the digest-pulled image survives; a purged tag is
# restored and pulls again.
#
# Usage: tests/e2e/purge.sh   (as root)
# Needs: podman, skopeo, sqlite3, curl, python3.
# Env:   BERTH_BIN  the server binary, default the debug build (built with cargo when not given)
set -euo pipefail
cd "$(dirname "$0")/../.."

E2E=/tmp/berth-e2e-purge
PASS_MESSAGE="purge (dry run, then applied) and restore with podman and skopeo"
source tests/e2e/lib.sh

step "checking prerequisites"
e2e_prerequisites podman skopeo sqlite3 curl python3
start_berth BERTH_RETENTION_PULLS_FLUSH_SECS=1
BASE=http://$ADDR
enable_admin
REPO=$ADDR/ci/app
podman() { show podman "$@"; env REGISTRY_AUTH_FILE="$E2E/auth.json" podman --root "$E2E/podman" --runroot "$E2E/podman-run" --storage-driver vfs "$@"; }
skopeo() { command skopeo --insecure-policy "$@"; }
cli() { BERTH_SERVER=$BASE BERTH_TOKEN=$OPERATOR_TOKEN "$BERTH_BIN" "$@"; }
db() { sqlite3 -cmd '.timeout 10000' "$E2E/data/berth.db" "$@"; }
# layer_file DIR FILE: the content of FILE in the first layer of the image skopeo copied to DIR.
layer_file() {
  python3 - "$1" "$2" <<'PY'
import gzip, io, json, os, sys, tarfile
folder, name = sys.argv[1], sys.argv[2]
manifest = json.load(open(os.path.join(folder, "manifest.json")))
blob = open(os.path.join(folder, manifest["layers"][0]["digest"].split(":")[1]), "rb").read()
data = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
sys.stdout.write(tarfile.open(fileobj=io.BytesIO(data)).extractfile(name).read().decode())
PY
}
podman login --tls-verify=false "$ADDR" -u "$USER_NAME" --password-stdin <<<"$PASSWORD" >/dev/null

step "podman pushes 30 images, build-1 .. build-30"
for n in $(seq 1 30); do
  mkdir -p "$E2E/b$n"
  printf 'build %d\n' "$n" >"$E2E/b$n/build.txt"
  printf 'FROM scratch\nCOPY build.txt /build.txt\n' >"$E2E/b$n/Containerfile"
  podman build -q -t "$REPO:build-$n" "$E2E/b$n" >/dev/null 2>"$E2E/build.err" || die "podman build: $(cat "$E2E/build.err")"
  podman push -q --tls-verify=false "$REPO:build-$n" >/dev/null 2>"$E2E/push.err" || die "podman push: $(cat "$E2E/push.err")"
done
say "pushed build-1 .. build-30"

step "podman pushes a multi-arch index (amd64, arm64) as multi"
for arch in amd64 arm64; do
  mkdir -p "$E2E/$arch"
  printf 'for %s\n' "$arch" >"$E2E/$arch/arch.txt"
  printf 'FROM scratch\nCOPY arch.txt /arch.txt\n' >"$E2E/$arch/Containerfile"
  podman build -q --platform "linux/$arch" -t "localhost/multi-$arch" "$E2E/$arch" >/dev/null
done
podman manifest create "$REPO:multi" >/dev/null
for arch in amd64 arm64; do podman manifest add "$REPO:multi" "containers-storage:localhost/multi-$arch" >/dev/null; done
podman manifest push -q --all --tls-verify=false "$REPO:multi" "docker://$REPO:multi" >/dev/null
CHILDREN=$(skopeo inspect --raw --tls-verify=false --creds "$USER_NAME:$PASSWORD" "docker://$REPO:multi" |
  python3 -c 'import json,sys; print(" ".join(m["digest"] for m in json.load(sys.stdin)["manifests"]))')
say "index children: $CHILDREN"

step "setting push times: build-N is 31-N days old (less an hour), multi and its platforms 60 days"
db "UPDATE tags SET updated_at = strftime('%s','now') - (31 - CAST(substr(name, 7) AS INTEGER)) * 86400 + 3600 WHERE name LIKE 'build-%';
UPDATE manifests SET created_at = (SELECT t.updated_at FROM tags t WHERE t.repository_id = manifests.repository_id AND t.manifest_digest = manifests.digest)
  WHERE digest IN (SELECT manifest_digest FROM tags WHERE name LIKE 'build-%');
UPDATE tags SET updated_at = strftime('%s','now') - 60 * 86400 WHERE name = 'multi';
UPDATE manifests SET created_at = strftime('%s','now') - 60 * 86400 WHERE digest NOT IN (SELECT manifest_digest FROM tags WHERE name LIKE 'build-%');"
say "$(db "SELECT COUNT(*) FROM tags WHERE updated_at < strftime('%s','now') - 15 * 86400") tags are older than 15 days"

step "skopeo pulls build-2 by digest only: recently pulled, it must survive"
BUILD2=$(skopeo inspect --tls-verify=false --creds "$USER_NAME:$PASSWORD" --format '{{.Digest}}' "docker://$REPO:build-2")
# The inspects above pulled by tag: once their counts are written, they are forgotten.
sleep 2
db "UPDATE tags SET last_pulled_at = NULL, pull_count = 0; UPDATE manifests SET last_pulled_at = NULL, pull_count = 0;"
skopeo copy -q --src-tls-verify=false --src-creds "$USER_NAME:$PASSWORD" "docker://$REPO@$BUILD2" "dir:$E2E/build2" >/dev/null
sleep 2
say "pulled $BUILD2 by digest"

# Expected: build-1..build-15 are older than 15 days; build-2 was pulled within them; the newest 3 stay
# anyway. With --untagged the 14 manifests left untagged go too; the index is not matched by the filter,
# so its platforms stay (children of an index that stays).
EXPECTED='build-1 build-10 build-11 build-12 build-13 build-14 build-15 build-3 build-4 build-5 build-6 build-7 build-8 build-9'
PURGE=(purge -n default --filter 'ci/app:build-.*' --ago 15d --keep 3 --untagged)
step "berth purge --dry-run lists exactly the expected candidates"
cli "${PURGE[@]}" --dry-run >"$E2E/dry.json"
cli "${PURGE[@]}" --dry-run -o table >"$E2E/dry.table"
head -n 6 "$E2E/dry.table"
check() {
  python3 - "$1" "$EXPECTED" "$2" <<'PY'
import json, sys
report, expected, applied = json.load(open(sys.argv[1])), set(sys.argv[2].split()), sys.argv[3] == "applied"
deleted = {c["tag"] for c in report["candidates"] if c["action"] == "delete" and c["tag"]}
assert deleted == expected, f"deleted tags {sorted(deleted)} != expected {sorted(expected)}"
untagged = [c for c in report["candidates"] if c["action"] == "delete" and not c["tag"]]
assert len(untagged) == 14, f"{len(untagged)} untagged manifests, expected 14"
kept = {c["tag"]: c["reason"] for c in report["candidates"] if c["action"] == "keep" and c["tag"]}
assert kept["build-2"].startswith("pulled "), kept["build-2"]
assert kept["build-30"] == "among the 3 newest", kept["build-30"]
assert report["dryRun"] != applied and report["deletedTags"] == 14 and report["deletedManifests"] == 14, report
print(f"   {len(deleted)} tags and {len(untagged)} untagged manifests to delete; build-2: {kept['build-2']}")
PY
}
check "$E2E/dry.json" dry
[ "$(db "SELECT COUNT(*) FROM tags WHERE name LIKE 'build-%'")" = 30 ] || die "the dry run deleted something"

step "berth purge deletes them"
cli "${PURGE[@]}" >"$E2E/applied.json"
check "$E2E/applied.json" applied
LEFT=$(curl_as repository:ci/app:pull "$BASE/v2/ci/app/tags/list")
say "tags left: $LEFT"

step "every kept tag pulls; each platform of the index pulls; build-2 survived; build-1 is gone"
for tag in build-2 build-16 build-30; do
  skopeo copy -q --src-tls-verify=false --src-creds "$USER_NAME:$PASSWORD" "docker://$REPO:$tag" "dir:$E2E/pull-$tag" >/dev/null
done
for arch in amd64 arm64; do
  skopeo --override-arch "$arch" copy -q --src-tls-verify=false --src-creds "$USER_NAME:$PASSWORD" \
    "docker://$REPO:multi" "dir:$E2E/multi-$arch" >/dev/null
  [ "$(layer_file "$E2E/multi-$arch" arch.txt)" = "for $arch" ] || die "multi for $arch: wrong layer"
  say "multi for $arch pulled"
done
refused purged 'manifest unknown|not found' \
  skopeo inspect --tls-verify=false --creds "$USER_NAME:$PASSWORD" "docker://$REPO:build-1"

step "build-1 is restored and pulls again"
cli repository restore -n default --image ci/app:build-1 >/dev/null
skopeo copy -q --src-tls-verify=false --src-creds "$USER_NAME:$PASSWORD" "docker://$REPO:build-1" "dir:$E2E/restored" >/dev/null
[ "$(layer_file "$E2E/restored" build.txt)" = "build 1" ] || die "the restored build-1 has the wrong layer"
HISTORY=$(cli repository show-tag-history -n default --repository ci/app --tag build-1 -o table)
printf '%s\n' "$HISTORY"
say "build-1 restored and pulled"
