#!/usr/bin/env bash
# End to end for the container image: builds the repository's Dockerfile, runs the image with a named volume
# on /var/lib/berth, a published port and configuration by environment, waits for the image's HEALTHCHECK to
# report healthy, checks the server runs as the non-root user 65532, then goes through the published port
# with the real docker CLI: enables the default registry's admin user over the API, docker login, pushes a
# small image built FROM scratch (static busybox), pulls it back and runs it. Then it stops the container
# (SIGTERM must end it cleanly), starts it again, and finally replaces it with a new container on the same
# volume listening on another port (BERTH_HTTP_BIND): both times the admin login still works and the image
# pulls back with the digest it was pushed with.
#
# What this machine cannot do, and what the test substitutes. No base image can be pulled here, so both FROM
# lines of the Dockerfile are given local images through its build arguments; the Dockerfile itself is used
# as written (every instruction runs: COPY . ., the build stage's RUN, both COPY --from, USER, VOLUME,
# HEALTHCHECK, ...):
#   RUST_IMAGE     stands in for rust:1.95-slim-bookworm: static busybox (sh, mkdir, cp) and a `cargo` script
#                  that checks it was asked for `cargo build --release --locked` in a copy of the build
#                  context (Cargo.toml, Cargo.lock, src/, config/, migrations/ present; target/, fuzz outputs
#                  and .git left out by .dockerignore) and then puts a release binary built on this host (by
#                  this script, with `cargo build --release --locked`, then stripped of debug info as the
#                  Dockerfile's CARGO_PROFILE_RELEASE_STRIP=debuginfo does) at target/release/berth.
#   RUNTIME_IMAGE  stands in for gcr.io/distroless/cc-debian12:nonroot: a `docker import` of the glibc
#                  libraries `ldd` lists for that binary, /etc/passwd and /etc/group with root and nonroot
#                  (65532), /tmp and /home/nonroot; like distroless it has no shell, so the runtime stage
#                  must not need one.
# Not covered here: compiling inside the real Rust image and the real distroless files. This host is
# Debian 12 (glibc 2.36) like both real bases, so the binary and the libraries are the same kind.
#
# Usage: tests/e2e/container.sh   (as root: it runs its own dockerd, next to any other e2e script)
# Needs: docker.io (dockerd, docker-proxy, docker CLI), busybox-static, curl, binutils (strip, optional);
#        cargo unless BERTH_RELEASE_BIN is given.
# Env:   BERTH_RELEASE_BIN  a release build of berth; default: cargo build --release --locked --bin berth
#        BUSYBOX            a statically linked busybox, default /bin/busybox
# Everything lives in /tmp/berth-container-e2e (dockerd's data, exec root, socket, pidfile) and the bridge
# berthce0; all of it is removed on exit. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

E2E=/tmp/berth-container-e2e
BRIDGE=berthce0         # the host side of the test's docker network; unique to this script
NETWORK=berth-ce
VOLUME=berth-ce-data
IMAGE=berth-ce/berth:test
RUST_STANDIN=berth-ce/rust-standin:local
RUNTIME_STANDIN=berth-ce/runtime-base:local
BERTH_RELEASE_BIN=${BERTH_RELEASE_BIN:-}
BUSYBOX=${BUSYBOX:-/bin/busybox}

PASS_MESSAGE="the Dockerfile's image serves docker login/push/pull, healthy, non-root, data kept on its volume"
source tests/e2e/lib.sh
inspect() { docker inspect -f "$2" "$1"; }

# start_container NAME PORT [docker run options...]: runs the image as NAME with the volume, publishing
# container port PORT on a free loopback port, and the operator token; the HEALTHCHECK is the image's, only
# probed every second instead of every 15 s. Waits until it is healthy and sets ADDR (host:port).
start_container() {
  local name=$1 port=$2
  shift 2
  run docker run -d --name "$name" --network "$NETWORK" -p "127.0.0.1::$port" -v "$VOLUME:/var/lib/berth" \
    -e BERTH_OPERATOR_TOKEN="$OPERATOR_TOKEN" -e BERTH_LOG_FORMAT=json --health-interval 1s "$@" "$IMAGE" >/dev/null
  wait_healthy "$name"
  ADDR=$(docker port "$name" "$port/tcp" | grep -m1 -oE '127\.0\.0\.1:[0-9]+' || true)
  [ -n "$ADDR" ] || die "no published address for $name's port $port: $(docker port "$name")"
  say "$name is up at $ADDR"
}

# wait_healthy NAME: until the HEALTHCHECK reports healthy (60 s at most); fails when it reports unhealthy
# or the container stops.
wait_healthy() {
  local name=$1 status
  for i in $(seq 1 120); do
    status=$(inspect "$name" '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}')
    [ "$(inspect "$name" '{{.State.Running}}')" = true ] ||
      die "$name stopped (exit code $(inspect "$name" '{{.State.ExitCode}}')): $(docker logs "$name" 2>&1 | tail -n 20)"
    case $status in
      healthy) break ;;
      unhealthy) die "$name is unhealthy: $(inspect "$name" '{{json .State.Health.Log}}')" ;;
      none) die "$name has no health check" ;;
    esac
    [ "$i" = 120 ] && die "$name is still '$status' after 60 s: $(inspect "$name" '{{json .State.Health}}')"
    sleep 0.5
  done
  say "$name: $status after $((i / 2)) s; last probe said: $(inspect "$name" '{{range .State.Health.Log}}{{.Output}}{{end}}' | grep . | tail -n1)"
}

# login: docker login to $ADDR as the default registry's admin user.
login() {
  show docker login -u "$USER_NAME" --password-stdin "$ADDR"
  printf '%s' "$PASSWORD" | docker login -u "$USER_NAME" --password-stdin "$ADDR" >"$E2E/login.out" 2>&1 ||
    die "docker login to $ADDR failed: $(cat "$E2E/login.out")"
  grep -q 'Login Succeeded' "$E2E/login.out" || die "docker login did not say 'Login Succeeded': $(cat "$E2E/login.out")"
  say "docker login $ADDR as $USER_NAME: Login Succeeded"
}

# pull_run REF: removes the local copies, docker pull REF (its digest must be $PUSHED), runs it.
pull_run() {
  local ref=$1 digest out
  docker rmi -f "$ID_BUILT" >/dev/null 2>&1 || true
  run timeout 120 docker pull "$ref" | tee "$E2E/pull.out"
  digest=$(grep -oE 'Digest: sha256:[0-9a-f]{64}' "$E2E/pull.out" | cut -d' ' -f2 || true)
  [ "$digest" = "$PUSHED" ] || die "pulled digest '$digest' != pushed $PUSHED"
  [ "$(docker image inspect -f '{{.Id}}' "$ref")" = "$ID_BUILT" ] || die "pulled image ID differs from the built one"
  out=$(run docker run --rm --network none "$ref")
  [ "$out" = "$GREETING" ] || die "expected '$GREETING' from the pulled image, got '$out'"
  say "pulled $ref ($digest) and ran it: $out"
}

# --- preconditions -------------------------------------------------------------------------------------
step "checking prerequisites"
e2e_prerequisites dockerd docker docker-proxy curl ldd tar
require_static_busybox
if [ -e "/sys/class/net/$BRIDGE" ]; then
  die "the bridge $BRIDGE is left from an earlier run; remove it with: ip link delete $BRIDGE"
fi
if [ -z "$BERTH_RELEASE_BIN" ]; then
  run cargo build --release --locked --bin berth
  BERTH_RELEASE_BIN=${CARGO_TARGET_DIR:-target}/release/berth
fi
[ -x "$BERTH_RELEASE_BIN" ] || die "$BERTH_RELEASE_BIN is missing"
say "berth: $BERTH_RELEASE_BIN; busybox: $BUSYBOX; $(docker --version)"

# --- cleanup (around lib.sh's) --------------------------------------------------------------------------
e2e_before_cleanup() {
  [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null || return 0
  if [ "$1" -ne 0 ]; then
    for c in $(docker ps -aq 2>/dev/null); do
      echo "--- container $c: state $(docker inspect -f '{{.State.Status}} {{json .State.Health}}' "$c"); logs (last 15 lines)" >&2
      docker logs "$c" 2>&1 | tail -n 15 >&2
    done
  fi
  # Containers and the network first, so that dockerd removes their veths and the bridge itself.
  docker ps -aq | xargs -r docker rm -f >/dev/null 2>&1
  docker network rm "$NETWORK" >/dev/null 2>&1
  return 0
}
# The bridge can only be this run's: the preconditions refused to start with one present.
e2e_after_cleanup() {
  [ -e "/sys/class/net/$BRIDGE" ] && ip link delete "$BRIDGE"
  return 0
}
mkdir -p "$E2E/standin-rust" "$E2E/standin-runtime" "$E2E/hello"

# --- dockerd -------------------------------------------------------------------------------------------
step "starting dockerd"
echo '{}' >"$E2E/daemon.json" # nothing from /etc/docker/daemon.json
# No default bridge (docker0 would be shared with other dockerds) and no iptables or sysctl changes on the
# host: published ports go through docker-proxy to a bridge network of our own.
start_dockerd --config-file "$E2E/daemon.json" --ip-forward=false --ip-masq=false
run docker network create --driver bridge -o "com.docker.network.bridge.name=$BRIDGE" "$NETWORK" >/dev/null
say "network $NETWORK $(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$NETWORK") on $BRIDGE"

# --- local stand-ins for the two base images -----------------------------------------------------------
step "making the stand-in for the build stage's Rust image (busybox, a cargo that provides the prebuilt binary)"
root=$E2E/standin-rust
mkdir -p "$root/bin" "$root/usr/local/cargo/bin" "$root/opt/prebuilt" "$root/tmp"
chmod 1777 "$root/tmp"
cp "$BUSYBOX" "$root/bin/busybox"
for applet in $("$BUSYBOX" --list); do [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"; done
if command -v strip >/dev/null; then
  strip --strip-debug -o "$root/opt/prebuilt/berth" "$BERTH_RELEASE_BIN"
else
  cp "$BERTH_RELEASE_BIN" "$root/opt/prebuilt/berth"
fi
cat >"$root/usr/local/cargo/bin/cargo" <<'EOF'
#!/bin/sh
# cargo stand-in made by tests/e2e/container.sh, where no Rust image can be pulled: it checks that the
# Dockerfile asks for a locked release build of a copy of the build context, then puts the release binary
# built on the host (/opt/prebuilt/berth) where cargo would.
set -e
echo "cargo stand-in: cargo $* (in $PWD, CARGO_PROFILE_RELEASE_STRIP=${CARGO_PROFILE_RELEASE_STRIP:-unset})"
fail() { echo "cargo stand-in: $*" >&2; exit 1; }
[ "$1" = build ] || fail "expected 'cargo build ...', got 'cargo $*'"
for flag in --release --locked; do
  case " $* " in *" $flag "*) ;; *) fail "'cargo $*' lacks $flag" ;; esac
done
for f in Cargo.toml Cargo.lock src/main.rs src/lib.rs config/berth.toml migrations/sqlite migrations/postgres; do
  [ -e "$f" ] || fail "$PWD/$f is missing from the build context"
done
for f in target .git fuzz/target fuzz/corpus fuzz/artifacts; do
  [ ! -e "$f" ] || fail "$PWD/$f is in the build context; .dockerignore should leave it out"
done
mkdir -p target/release
cp /opt/prebuilt/berth target/release/berth
echo "cargo stand-in: target/release/berth is the host's release build"
EOF
chmod 755 "$root/usr/local/cargo/bin/cargo"
tar --numeric-owner -C "$root" -c . | run docker import \
  --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$RUST_STANDIN" >/dev/null
say "$RUST_STANDIN: $(docker image inspect -f '{{.Size}}' "$RUST_STANDIN") bytes"

step "making the stand-in for the runtime base (glibc libraries from ldd, passwd with nonroot 65532, no shell)"
root=$E2E/standin-runtime
mkdir -p "$root/etc" "$root/tmp" "$root/home/nonroot" "$root/var/lib" "$root/usr/local/bin"
chmod 1777 "$root/tmp"
chown 65532:65532 "$root/home/nonroot"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
LIBS=$(ldd "$BERTH_RELEASE_BIN" | grep -oE '(=> )?/[^ ]+' | sed 's/^=> //' | sort -u)
[ -n "$LIBS" ] || die "ldd lists no libraries for $BERTH_RELEASE_BIN"
for lib in $LIBS; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
say "libraries: $(echo "$LIBS" | tr '\n' ' ')"
tar --numeric-owner -C "$root" -c . | run docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' - "$RUNTIME_STANDIN" >/dev/null
say "$RUNTIME_STANDIN: $(docker image inspect -f '{{.Size}}' "$RUNTIME_STANDIN") bytes"

# --- the image -----------------------------------------------------------------------------------------
step "docker build of the repository's Dockerfile, with the stand-ins as RUST_IMAGE and RUNTIME_IMAGE"
grep -qx 'ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm' Dockerfile ||
  die "the Dockerfile's RUST_IMAGE default is not rust:1.95-slim-bookworm: $(grep 'ARG RUST_IMAGE' Dockerfile)"
grep -qx 'ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot' Dockerfile ||
  die "the Dockerfile's RUNTIME_IMAGE default is not distroless cc-debian12: $(grep 'ARG RUNTIME_IMAGE' Dockerfile)"
run docker build -t "$IMAGE" --build-arg "RUST_IMAGE=$RUST_STANDIN" --build-arg "RUNTIME_IMAGE=$RUNTIME_STANDIN" \
  -f "$REPO/Dockerfile" "$REPO" >"$E2E/build.out" 2>&1 || die "docker build failed: $(tail -n 30 "$E2E/build.out")"
grep -E '^(Step|cargo stand-in)' "$E2E/build.out" | sed 's/^/   /'
grep -q 'cargo stand-in: target/release/berth is' "$E2E/build.out" || die "the build stage did not run cargo"

step "checking the image's configuration and contents"
USER_CFG=$(inspect "$IMAGE" '{{.Config.User}}')
[ "$USER_CFG" = 65532:65532 ] || die "image user '$USER_CFG', expected 65532:65532"
VOLUMES=$(inspect "$IMAGE" '{{range $v, $_ := .Config.Volumes}}{{$v}} {{end}}')
[ "$VOLUMES" = '/var/lib/berth ' ] || die "image volumes '$VOLUMES', expected /var/lib/berth"
PORTS=$(inspect "$IMAGE" '{{range $p, $_ := .Config.ExposedPorts}}{{$p}} {{end}}')
[ "$PORTS" = '5000/tcp ' ] || die "exposed ports '$PORTS', expected 5000/tcp"
HEALTH=$(inspect "$IMAGE" '{{json .Config.Healthcheck.Test}}')
[ "$HEALTH" = '["CMD","berth","healthcheck"]' ] || die "health check $HEALTH, expected berth healthcheck"
ENTRY=$(inspect "$IMAGE" '{{json .Config.Entrypoint}} {{json .Config.Cmd}}')
[ "$ENTRY" = '["berth"] ["serve"]' ] || die "entrypoint and cmd '$ENTRY', expected [\"berth\"] [\"serve\"]"
ENVS=$(inspect "$IMAGE" '{{range .Config.Env}}{{.}} {{end}}')
for want in BERTH_DATA_DIR=/var/lib/berth BERTH_HTTP_BIND=0.0.0.0:5000; do
  case " $ENVS" in *" $want "*) ;; *) die "the image's environment lacks $want: $ENVS" ;; esac
done
say "user $USER_CFG, volume $VOLUMES, port $PORTS, health $HEALTH, $ENTRY"
say "env: $ENVS"
# Its files: the base's and the binary, no build tree, no shell.
docker create --name contents "$IMAGE" >/dev/null
docker export contents | tar -tv --numeric-owner >"$E2E/contents.txt"
docker rm contents >/dev/null
grep -qE ' usr/local/bin/berth$' "$E2E/contents.txt" || die "no /usr/local/bin/berth in the image"
grep -qE '^drwx.* 65532/65532 .* var/lib/berth/?$' "$E2E/contents.txt" ||
  die "/var/lib/berth is not owned by 65532: $(grep 'var/lib/berth' "$E2E/contents.txt")"
if grep -qE ' (src|bin/sh|usr/local/cargo)/?$' "$E2E/contents.txt"; then
  die "the runtime image holds build files or a shell: $(grep -E ' (src|bin/sh|usr/local/cargo)/?$' "$E2E/contents.txt")"
fi
SIZE=$(docker image inspect -f '{{.Size}}' "$IMAGE")
say "$(wc -l <"$E2E/contents.txt") entries, $((SIZE / 1024 / 1024)) MiB (stand-in base $(($(docker image inspect -f '{{.Size}}' "$RUNTIME_STANDIN") / 1024 / 1024)) MiB)"

# --- run it --------------------------------------------------------------------------------------------
step "docker run with a volume, a published port and BERTH_* environment; waiting for the HEALTHCHECK"
OPERATOR_TOKEN=e2e-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
run docker volume create "$VOLUME" >/dev/null
start_container berth 5000
LOG_LINE=$(docker logs berth 2>&1 | grep -m1 'berth listening' || true)
say "log: $LOG_LINE"
case $LOG_LINE in '{'*) ;; *) die "BERTH_LOG_FORMAT=json did not give JSON logs: $(docker logs berth 2>&1 | head -n 3)" ;; esac

step "the server runs as the non-root user 65532 and owns its data on the volume"
PID=$(inspect berth '{{.State.Pid}}')
UIDS=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$PID/status")
GIDS=$(awk '/^Gid:/ {print $2, $3, $4, $5}' "/proc/$PID/status")
say "process $PID ($(tr '\0' ' ' <"/proc/$PID/cmdline")): uid $UIDS, gid $GIDS"
[ "$UIDS" = '65532 65532 65532 65532' ] || die "the server runs with uids $UIDS, expected 65532"
[ "$GIDS" = '65532 65532 65532 65532' ] || die "the server runs with gids $GIDS, expected 65532"
MOUNTPOINT=$(docker volume inspect -f '{{.Mountpoint}}' "$VOLUME")
[ -f "$MOUNTPOINT/berth.db" ] || die "no berth.db on the volume: $(ls -la "$MOUNTPOINT")"
OWNERS=$(stat -c '%n %u:%g' "$MOUNTPOINT" "$MOUNTPOINT/berth.db" | sed "s|$MOUNTPOINT|<volume>|")
say "$(echo "$OWNERS" | tr '\n' ' ')"
if echo "$OWNERS" | grep -vq ' 65532:65532$'; then die "files on the volume not owned by 65532: $OWNERS"; fi
# The health check command inside the image, by hand: healthy, and one line and exit 1 on a wrong path.
say "docker exec berth berth healthcheck: $(docker exec berth berth healthcheck)"
if docker exec berth berth healthcheck --url http://127.0.0.1:5000/nowhere >"$E2E/probe.out" 2>&1; then
  die "berth healthcheck succeeded on a wrong path"
fi
[ "$(wc -l <"$E2E/probe.out")" = 1 ] || die "berth healthcheck said more than one line: $(cat "$E2E/probe.out")"
say "on a wrong path it exits non-zero with: $(cat "$E2E/probe.out")"

step "enabling the admin user through the management API at $ADDR"
V2=$(curl -sS -o /dev/null -w '%{http_code}' "http://$ADDR/v2/")
[ "$V2" = 401 ] || die "GET http://$ADDR/v2/ without a token answered $V2, expected 401"
api -X PATCH -d '{"adminUserEnabled":true}' "http://$ADDR/api/registries/default" >/dev/null ||
  die "could not enable the default registry's admin user"
CREDS=$(api "http://$ADDR/api/registries/default/credentials") || die "could not read the admin credentials"
USER_NAME=$(printf '%s' "$CREDS" | field username)
PASSWORD=$(printf '%s' "$CREDS" | field value)
[ -n "$USER_NAME" ] && [ -n "$PASSWORD" ] || die "no username/password in $CREDS"
say "GET /v2/: 401; admin user '$USER_NAME' enabled"

step "docker login, then push an image built FROM scratch"
login
GREETING="hello from the berth container $(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cp "$BUSYBOX" "$E2E/hello/busybox"
echo "$GREETING" >"$E2E/hello/greeting.txt"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nCOPY greeting.txt /etc/greeting.txt\nCMD ["/bin/busybox", "cat", "/etc/greeting.txt"]\n' \
  >"$E2E/hello/Dockerfile"
REPO_NAME=samples/hello
run docker build -q -t "$ADDR/$REPO_NAME:v1" "$E2E/hello" >"$E2E/hello.out" 2>&1 ||
  die "docker build of the hello image failed: $(cat "$E2E/hello.out")"
ID_BUILT=$(docker image inspect -f '{{.Id}}' "$ADDR/$REPO_NAME:v1")
run timeout 120 docker push "$ADDR/$REPO_NAME:v1" | tee "$E2E/push.out"
PUSHED=$(grep -oE 'digest: sha256:[0-9a-f]{64}' "$E2E/push.out" | cut -d' ' -f2 || true)
[ -n "$PUSHED" ] || die "no digest in the output of docker push"
say "pushed $REPO_NAME:v1 as $PUSHED"

step "docker pull it back and run it"
pull_run "$ADDR/$REPO_NAME:v1"
BLOBS=$(find "$MOUNTPOINT/registries" -path '*/blobs/*' -type f | wc -l)
say "$BLOBS blobs on the volume"
[ "$BLOBS" -ge 3 ] || die "expected the image's blobs on the volume, found $BLOBS"

# --- restart -------------------------------------------------------------------------------------------
step "docker stop (SIGTERM) and docker start: the image is still there"
START=$SECONDS
run docker stop -t 30 berth >/dev/null
CODE=$(inspect berth '{{.State.ExitCode}}')
say "stopped in $((SECONDS - START)) s with exit code $CODE"
[ "$CODE" = 0 ] || die "berth exited with $CODE on SIGTERM, expected 0: $(docker logs berth 2>&1 | tail -n 5)"
run docker start berth >/dev/null
wait_healthy berth
ADDR=$(docker port berth 5000/tcp | grep -m1 -oE '127\.0\.0\.1:[0-9]+')
login
pull_run "$ADDR/$REPO_NAME:v1"

step "a new container on the same volume, listening on 8080 (BERTH_HTTP_BIND): the image is still there"
run docker rm -f berth >/dev/null
start_container berth2 8080 -e BERTH_HTTP_BIND=0.0.0.0:8080
TAGS=$(curl -fsS -u "$USER_NAME:$PASSWORD" "http://$ADDR/oauth2/token?service=default.localhost&scope=repository:$REPO_NAME:pull" |
  field token | { read -r token; curl -fsS -H "Authorization: Bearer $token" "http://$ADDR/v2/$REPO_NAME/tags/list"; })
say "tags/list: $TAGS"
[ "$TAGS" = "{\"name\":\"$REPO_NAME\",\"tags\":[\"v1\"]}" ] || die "unexpected tags/list: $TAGS"
login
pull_run "$ADDR/$REPO_NAME:v1"

step "summary"
say "built $IMAGE from the Dockerfile ($((SIZE / 1024 / 1024)) MiB with the stand-in base), user 65532, health checked"
say "pushed $PUSHED through the container, pulled it back after a restart and in a new container on the volume"
