#!/usr/bin/env bash
# End to end over HTTPS with the real docker CLI: berth terminates TLS itself (BERTH_TLS_CERT_FILE /
# BERTH_TLS_KEY_FILE) with a server certificate signed by a throwaway CA made here with openssl. A private
# dockerd trusts that CA only through /etc/docker/certs.d/<host>:<port>/ca.crt: without the file docker
# login fails on the certificate, with it docker logs in (following an https:// token realm), pushes an
# image built FROM scratch, pulls it back by tag and digest and runs it; after docker logout a pull is
# refused.
#
# Why a network namespace: dockerd treats every registry on 127.0.0.0/8 (or a name resolving there) as
# insecure, and for those it skips certificate verification and never reads certs.d. So berth runs in a
# network namespace of its own made here (berth-tls-e2e), reached over a veth pair at 10.213.77.2, which
# dockerd verifies like any remote registry. Nothing leaves the machine.
#
# Usage: tests/e2e/docker_tls.sh   (as root: it runs its own dockerd and makes a network namespace)
# Needs: docker.io (dockerd + docker CLI), busybox-static, curl, openssl, iproute2.
# Env:   BERTH_BIN  the server binary, default the debug build (built with cargo when not given)
#        BUSYBOX    a statically linked busybox, default /bin/busybox
# Everything lives in /tmp/berth-tls-e2e (its own dockerd socket, data root, exec root and pidfile, so it
# can run beside tests/e2e/docker.sh); the namespace, the veth pair and the certs.d entry are removed on
# exit. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

E2E=/tmp/berth-tls-e2e
PASS_MESSAGE="docker login/push/pull/run through berth over HTTPS (CA trusted via certs.d)"
source tests/e2e/lib.sh
BUSYBOX=${BUSYBOX:-/bin/busybox}
PUSHED=
PKI=$E2E/pki
CURL_OPTS=(--cacert "$PKI/ca.crt") # the helpers' curl trusts the test CA, and only it
NETNS=berth-tls-e2e
VETH_HOST=btls-e2e0
VETH_NS=btls-e2e1
HOST_IP=10.213.77.1
BERTH_IP=10.213.77.2
CERTS_D=/etc/docker/certs.d
CERTS_HOST_DIR=
CREATED_CERTS_D=
NETNS_MADE=
# Only our own veth: no proxy from the environment may stand between the clients and berth.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

# Before lib.sh's cleanup (dockerd, berth, logs, $E2E): the certs.d entry, the namespace and the veth pair,
# each only if this run made it.
e2e_before_cleanup() {
  [ -n "$CERTS_HOST_DIR" ] && rm -rf "$CERTS_HOST_DIR"
  [ -n "$CREATED_CERTS_D" ] && rmdir "$CERTS_D" 2>/dev/null
  if [ -n "$NETNS_MADE" ]; then
    ip link del "$VETH_HOST" 2>/dev/null
    ip netns del "$NETNS" 2>/dev/null
  fi
  return 0
}

# --- preconditions -------------------------------------------------------------------------------------
step "checking prerequisites"
e2e_prerequisites dockerd docker curl openssl ip
require_static_busybox
if ip netns list | grep -qw "$NETNS"; then
  [ -z "$(ip netns pids "$NETNS" 2>/dev/null)" ] || die "network namespace $NETNS is in use by another run"
  ip netns del "$NETNS" # left behind by a run that was killed
fi
ip link del "$VETH_HOST" 2>/dev/null || true
if ip -4 addr | grep -q ' 10\.213\.77\.'; then die "10.213.77.0/30 is already in use on this machine"; fi
mkdir -p "$PKI"
say "berth: $BERTH_BIN; busybox: $BUSYBOX; $(docker --version); $(openssl version)"

# --- certificates --------------------------------------------------------------------------------------
step "making a CA and a server certificate for $BERTH_IP with openssl"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=berth tls e2e CA" -keyout "$PKI/ca.key" -out "$PKI/ca.crt" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>"$E2E/openssl.log" ||
  die "openssl could not make the CA: $(cat "$E2E/openssl.log")"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$BERTH_IP" \
  -keyout "$PKI/server.key" -out "$PKI/server.csr" 2>>"$E2E/openssl.log" ||
  die "openssl could not make the server key: $(cat "$E2E/openssl.log")"
printf 'subjectAltName=IP:%s,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
  "$BERTH_IP" >"$PKI/server.ext"
openssl x509 -req -in "$PKI/server.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -days 2 \
  -extfile "$PKI/server.ext" -out "$PKI/server.crt" 2>>"$E2E/openssl.log" ||
  die "openssl could not sign the server certificate: $(cat "$E2E/openssl.log")"
openssl verify -CAfile "$PKI/ca.crt" "$PKI/server.crt" >/dev/null || die "the server certificate does not verify"
say "$(openssl x509 -in "$PKI/server.crt" -noout -subject -ext subjectAltName | tr '\n' ' ')"

# --- network namespace ---------------------------------------------------------------------------------
step "a network namespace for berth at $BERTH_IP (dockerd would not verify a loopback registry)"
NETNS_MADE=1
run ip netns add "$NETNS"
run ip link add "$VETH_HOST" type veth peer name "$VETH_NS"
run ip link set "$VETH_NS" netns "$NETNS"
run ip addr add "$HOST_IP/30" dev "$VETH_HOST"
run ip link set "$VETH_HOST" up
run ip netns exec "$NETNS" ip addr add "$BERTH_IP/30" dev "$VETH_NS"
run ip netns exec "$NETNS" ip link set "$VETH_NS" up
run ip netns exec "$NETNS" ip link set lo up

# --- berth ---------------------------------------------------------------------------------------------
step "starting berth over HTTPS"
OPERATOR_TOKEN=e2e-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
ip netns exec "$NETNS" env BERTH_HTTP_BIND="$BERTH_IP:0" BERTH_DATA_DIR="$E2E/data" BERTH_LOG_LEVEL=info \
  BERTH_LOG_FORMAT=text BERTH_TLS_CERT_FILE="$PKI/server.crt" BERTH_TLS_KEY_FILE="$PKI/server.key" \
  BERTH_OPERATOR_TOKEN="$OPERATOR_TOKEN" "$BERTH_BIN" serve >"$E2E/berth.log" 2>&1 &
BERTH_PID=$!
ADDR=
for _ in $(seq 1 100); do
  ADDR=$(grep -m1 -oE '10\.213\.77\.2:[0-9]+' "$E2E/berth.log" || true)
  [ -n "$ADDR" ] && break
  kill -0 "$BERTH_PID" 2>/dev/null || die "berth exited: $(cat "$E2E/berth.log")"
  sleep 0.1
done
[ -n "$ADDR" ] || die "berth did not report its address"
sed 's/\x1b\[[0-9;]*m//g' "$E2E/berth.log" | grep -m1 'berth listening' | grep -q 'tls=true' ||
  die "berth does not say it serves TLS"
say "berth pid $BERTH_PID listening on https://$ADDR"
BASE=https://$ADDR

# Plain HTTP gets nothing; curl refuses the certificate without the CA; with it, 401 and an https realm.
if curl -sS -m 10 -o /dev/null "http://$ADDR/v2/" 2>/dev/null; then die "plain HTTP on $ADDR answered"; fi
refused curl-untrusted 'certificate' curl -sS -m 10 -o /dev/null "https://$ADDR/v2/"
CHALLENGE=$(curl "${CURL_OPTS[@]}" -sS -m 10 -o /dev/null -w '%{http_code} %header{www-authenticate}' "https://$ADDR/v2/")
say "GET https://$ADDR/v2/: $CHALLENGE"
[ "$CHALLENGE" = "401 Bearer realm=\"https://$ADDR/oauth2/token\",service=\"default.localhost\"" ] ||
  die "expected a 401 with the realm https://$ADDR/oauth2/token, got: $CHALLENGE"
enable_admin
say "admin user '$USER_NAME' enabled"

# --- dockerd -------------------------------------------------------------------------------------------
step "starting dockerd"
start_dockerd
# 127.0.0.0/8 is insecure to dockerd; $BERTH_IP must not be, or the trust below proves nothing.
INSECURE=$(docker info --format '{{range .RegistryConfig.InsecureRegistryCIDRs}}{{.}} {{end}}')
say "registries dockerd does not verify: $INSECURE"
case " $INSECURE" in *" 10.213.77."*) die "dockerd treats $BERTH_IP as an insecure registry" ;; esac

step "docker login before the CA is trusted fails on the certificate"
refused login-untrusted 'x509|certificate' docker login -u "$USER_NAME" --password-stdin "$ADDR" <<<"$PASSWORD"

step "trusting the CA for $ADDR in $CERTS_D and logging in"
[ -d "$CERTS_D" ] || CREATED_CERTS_D=1
CERTS_HOST_DIR=$CERTS_D/$ADDR
mkdir -p "$CERTS_HOST_DIR"
cp "$PKI/ca.crt" "$CERTS_HOST_DIR/ca.crt"
say "$CERTS_HOST_DIR/ca.crt"
show docker login -u "$USER_NAME" --password-stdin "$ADDR"
printf '%s' "$PASSWORD" | docker login -u "$USER_NAME" --password-stdin "$ADDR" >"$E2E/login.out" 2>&1 ||
  die "docker login failed: $(cat "$E2E/login.out")"
grep -q 'Login Succeeded' "$E2E/login.out" || die "docker login did not say 'Login Succeeded': $(cat "$E2E/login.out")"
grep -q "$ADDR" "$DOCKER_CONFIG/config.json" || die "docker login did not store credentials"
say "$(grep 'Login Succeeded' "$E2E/login.out")"
refused login-wrong 'unauthorized: incorrect username or password' \
  docker login -u "$USER_NAME" --password-stdin "$ADDR" <<<"wrong-$PASSWORD"

# --- image ---------------------------------------------------------------------------------------------
step "building an image FROM scratch"
TOKEN=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
GREETING="hello over https from berth $TOKEN"
cp "$BUSYBOX" "$E2E/ctx/busybox"
echo "$GREETING" >"$E2E/ctx/greeting.txt"
head -c $((2 * 1024 * 1024)) /dev/urandom >"$E2E/ctx/data.bin"
DATA_SUM=$(sha256sum "$E2E/ctx/data.bin" | cut -d' ' -f1)
cat >"$E2E/ctx/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
COPY greeting.txt /etc/greeting.txt
COPY data.bin /opt/data.bin
CMD ["/bin/busybox", "sh", "-c", "/bin/busybox cat /etc/greeting.txt && /bin/busybox sha256sum /opt/data.bin"]
EOF
IMAGE=$ADDR/secure/hello
run docker build -q -t "$IMAGE:v1" "$E2E/ctx"
ID_BUILT=$(docker image inspect -f '{{.Id}}' "$IMAGE:v1")
say "image ID $ID_BUILT with $(docker image inspect -f '{{len .RootFS.Layers}}' "$IMAGE:v1") layers"

# --- push and pull -------------------------------------------------------------------------------------
step "docker push $IMAGE:v1 over HTTPS"
push "$IMAGE:v1"
tags secure/hello '["v1"]'

step "docker pull $IMAGE:v1 (after removing the local image) and run it"
run docker rmi -f "$ID_BUILT" >/dev/null
if docker image inspect "$IMAGE:v1" >/dev/null 2>&1; then die "$IMAGE:v1 is still present locally"; fi
pull_run "$IMAGE:v1"

step "docker pull by digest $IMAGE@$PUSHED and run it"
pull_run "$IMAGE@$PUSHED"

step "anonymous pull is refused after docker logout"
run docker logout "$ADDR"
docker rmi -f "$ID_BUILT" >/dev/null
refused anon-pull 'unauthorized: authentication required' docker pull "$IMAGE:v1"

step "summary"
say "berth served https://$ADDR with a certificate of a test CA; docker trusted it via $CERTS_HOST_DIR/ca.crt"
say "pushed $PUSHED as secure/hello:v1, pulled it by tag and digest and ran it; refusals without the CA and after logout"
