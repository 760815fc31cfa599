#!/usr/bin/env bash
# containerd pulls and pushes through a slow link for longer than its access token lives. containerd 1.6
# (Debian 12's, and many kubelets') fetches a token when a pull or push starts and keeps using it, so a
# layer still streaming when the token expires must not be cut, and the requests after it must get an
# answer that makes containerd fetch a new token. Berth runs with tokens that verify for 60 s
# (BERTH_TOKEN_TTL_SECS=10 plus BERTH_CLOCK_LEEWAY_SECS=50); docker pushes an image with one incompressible
# 32 MiB layer straight to Berth; through a proxy that passes 480 KiB/s (about 70 s for the layer),
# `ctr images pull` as a Reader fetches it, then `ctr images push` as a Contributor uploads it again under
# another repository. Both must succeed, and each must have taken longer than its token lived.
#
# Usage: tests/e2e/ctr_slow_link.sh   (as root: it runs its own dockerd, whose containerd ctr talks to)
# Needs: docker.io (with containerd's ctr), curl, python3.  Env: BERTH_BIN (default: the debug build).
set -euo pipefail
cd "$(dirname "$0")/../.."
E2E=/tmp/berth-ctr-slow-e2e
PASS_MESSAGE="containerd pulls and pushes through a slow link for longer than its token lives"
source tests/e2e/lib.sh
TOKEN_VALID_SECS=60 # BERTH_TOKEN_TTL_SECS + BERTH_CLOCK_LEEWAY_SECS below
LAYER_MIB=32
RATE=$((480 * 1024))

step "checking prerequisites"
e2e_prerequisites dockerd docker ctr curl python3

step "starting berth (tokens verify for ${TOKEN_VALID_SECS} s) and dockerd"
start_berth BERTH_TOKEN_TTL_SECS=10 BERTH_CLOCK_LEEWAY_SECS=50
start_dockerd
BASE=http://$ADDR
enable_admin
principal READER Reader /registries/default
principal PUSHER Contributor /registries/default

step "docker pushes an image with one incompressible ${LAYER_MIB} MiB layer straight to berth"
head -c $((LAYER_MIB * 1024 * 1024)) /dev/urandom >"$E2E/ctx/layer.bin"
printf 'FROM scratch\nCOPY layer.bin /layer.bin\n' >"$E2E/ctx/Dockerfile"
run docker build -q -t "$ADDR/slow/big:1" "$E2E/ctx" >/dev/null
run docker login "$ADDR" -u "$USER_NAME" --password-stdin <<<"$PASSWORD" >/dev/null
run docker push "$ADDR/slow/big:1" >/dev/null

step "a proxy passing $((RATE / 1024)) KiB/s each way"
python3 tests/e2e/throttle_proxy.py "$ADDR" "$RATE" "$E2E/proxy.port" >"$E2E/proxy.log" 2>&1 &
PROXY_PID=$!
e2e_before_cleanup() { kill "$PROXY_PID" 2>/dev/null; }
for _ in $(seq 1 50); do [ -s "$E2E/proxy.port" ] && break; sleep 0.1; done
[ -s "$E2E/proxy.port" ] || die "the proxy did not start: $(cat "$E2E/proxy.log")"
SLOW=127.0.0.1:$(cat "$E2E/proxy.port")
say "proxy on $SLOW"

step "ctr pulls $SLOW/slow/big:1 as the Reader, through the proxy"
ctr() { show ctr "$@"; command ctr --address "$E2E/exec/containerd/containerd.sock" --namespace berth-e2e "$@"; }
started=$SECONDS
ctr images pull --plain-http --user "$READER_ID:$READER_PASSWORD" "$SLOW/slow/big:1" >"$E2E/ctr.out" 2>&1 ||
  die "the pull through the slow link failed: $(tail -n 5 "$E2E/ctr.out")"
took=$((SECONDS - started))
ctr images ls -q | grep -qx "$SLOW/slow/big:1" || die "containerd does not list the pulled image"
say "the pull took $took s; its token verified for $TOKEN_VALID_SECS s"
[ "$took" -gt "$TOKEN_VALID_SECS" ] ||
  die "the pull took $took s, not longer than the token lived: the link was too fast to test anything"

step "ctr pushes it as the Contributor to slow/pushed:1, through the proxy"
# Under another name for the proxy: containerd would otherwise mount the layer from slow/big, which it
# knows it pulled from there, and send no bytes.
OTHER=localhost:${SLOW##*:}
ctr images tag "$SLOW/slow/big:1" "$OTHER/slow/pushed:1" >/dev/null
started=$SECONDS
ctr images push --plain-http --user "$PUSHER_ID:$PUSHER_PASSWORD" "$OTHER/slow/pushed:1" >"$E2E/push.out" 2>&1 ||
  die "the push through the slow link failed: $(tail -n 5 "$E2E/push.out")"
took=$((SECONDS - started))
say "the push took $took s; its first token verified for $TOKEN_VALID_SECS s"
[ "$took" -gt "$TOKEN_VALID_SECS" ] ||
  die "the push took $took s, not longer than the token lived: the link was too fast to test anything"
pulled=$(curl_as "repository:slow/big:pull" -I -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
  "$BASE/v2/slow/big/manifests/1" | tr -d '\r' | grep -i '^docker-content-digest:' | cut -d' ' -f2)
pushed=$(curl_as "repository:slow/pushed:pull" -I -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
  "$BASE/v2/slow/pushed/manifests/1" | tr -d '\r' | grep -i '^docker-content-digest:' | cut -d' ' -f2)
[ -n "$pushed" ] && [ "$pushed" = "$pulled" ] || die "slow/pushed:1 is '$pushed', expected slow/big:1's $pulled"
say "slow/pushed:1 is $pushed, the manifest of slow/big:1"
