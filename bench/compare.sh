#!/usr/bin/env bash
# Berth against CNCF Distribution 2.8.2 (Debian package docker-registry, filesystem storage) on this
# machine: builds the release binaries (berth, berth-bench), starts both servers fresh (temporary data
# folders, free loopback ports), runs every workload of berth-bench against each, interleaved (odd rounds
# Berth first, even rounds Distribution first), R rounds, and prints one table of medians with the
# Berth/Distribution ratio per row (every row is a rate, higher is better, so a ratio above 1 means Berth
# did better), then each server's CPU seconds (utime+stime) and peak RSS (VmHWM) over the whole suite.
#
# Usage: bench/compare.sh [--quick] [--rounds R]
#   --quick     1 round, smaller counts and sizes, shorter time boxes (under a minute)
#   --rounds R  rounds of the full suite (default 3)
# Env:   BERTH_BENCH_TMP         where the servers' data folders go (default $TMPDIR or /tmp; the full
#                                suite writes about 2 GiB per server per round)
#        BERTH_BENCH_NO_BUILD=1  skip `cargo build --release`
#        BERTH_BENCH_KEEP=FILE   also copy the raw JSON lines there
#
# Berth runs with BERTH_LOG_LEVEL=warn, its default registry's admin user enabled and that registry's
# concurrency limits raised to 1000 pulls / 1000 pushes (the Basic SKU's 10 / 5 would queue c=32) and its
# storage quota to 1 TiB (Basic's 10 GiB would refuse the later rounds; every push still checks it). Berth
# has no anonymous access: every Berth row uses one token per repository scope, fetched on the first 401
# and reused. Distribution runs twice on one storage folder, access log off, log level warn: without auth
# for every row, and with token auth (`auth.token`, tokens from `berth-bench token-server`, ES256 with the
# certificate in x5c) for the "token auth" and "token dance" rows. The blob workload also runs against
# Berth while its collector is asked for a full collection every second ("berth-gc"); a second table
# compares those rows with Berth's own. "token dance": every request goes out
# without a token, gets the 401 challenge, fetches a token and is repeated (three round trips).
# Distribution's CPU seconds add up both of its processes, its peak RSS is the larger; the token server's
# own CPU is not counted for it. Before each run the page cache is synced and dropped (as root), so the
# writeback and page reclaim left by the previous run (of either server) do not land in the next one's
# measurement; each workload pushes what it pulls, so its pulls still read from memory. Per workload, each server's CPU seconds and peak RSS (VmHWM, reset before
# each run through /proc/PID/clear_refs) are printed too. The load generator runs on the same machine and
# shares its cores with the server under test.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=
ROUNDS=3
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=--quick; ROUNDS=1 ;;
    --rounds) ROUNDS=$2; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
command -v docker-registry >/dev/null ||
  die "docker-registry (CNCF Distribution) is missing: apt-get install docker-registry"
for tool in curl python3 openssl; do command -v "$tool" >/dev/null || die "$tool is required"; done

if [ -z "${BERTH_BENCH_NO_BUILD:-}" ]; then
  cargo build --release --quiet --bin berth --bin berth-bench
fi
TARGET=${CARGO_TARGET_DIR:-target}/release
BERTH=$TARGET/berth
BENCH=$TARGET/berth-bench
[ -x "$BERTH" ] && [ -x "$BENCH" ] || die "$BERTH or $BENCH is missing"

WORK=$(mktemp -d "${BERTH_BENCH_TMP:-${TMPDIR:-/tmp}}/berth-compare.XXXXXX")
BERTH_PID=
DIST_PID=
DIST_AUTH_PID=
TOKEN_PID=
cleanup() {
  local rc=$?
  set +e
  for pid in $BERTH_PID $DIST_PID $DIST_AUTH_PID $TOKEN_PID; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  if [ $rc -ne 0 ]; then
    for log in "$WORK"/*.log; do [ -s "$log" ] && { echo "--- $log (last 10 lines)" >&2; tail -n 10 "$log" >&2; }; done
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # url pid
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "$1" && return 0
    kill -0 "$2" 2>/dev/null || die "the server for $1 exited"
    sleep 0.1
  done
  die "$1 did not answer"
}
SUITE_START=$SECONDS

# Berth
BERTH_PORT=$(free_port)
BERTH_URL=http://127.0.0.1:$BERTH_PORT
OPERATOR_TOKEN=bench$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
# A grace period of a minute (no scheduled collection): the "collector every second" rows collect what
# earlier runs left unreferenced, while a run's own blobs (pushed, then pulled within seconds) stay.
BERTH_HTTP_BIND=127.0.0.1:$BERTH_PORT BERTH_DATA_DIR=$WORK/berth BERTH_OPERATOR_TOKEN=$OPERATOR_TOKEN \
  BERTH_GC_GRACE_SECS=60 BERTH_GC_INTERVAL_SECS=0 BERTH_LOG_LEVEL=warn "$BERTH" serve >"$WORK/berth.log" 2>&1 &
BERTH_PID=$!
wait_for "$BERTH_URL/healthz" "$BERTH_PID"
api() { curl -fsS -H "Authorization: Bearer $OPERATOR_TOKEN" -H 'Content-Type: application/json' "$@"; }
api -X PATCH -d '{"adminUserEnabled":true,"pullLimit":1000,"pushLimit":1000,"storageQuotaBytes":1099511627776}' \
  "$BERTH_URL/api/registries/default" >/dev/null
CREDS=$(api "$BERTH_URL/api/registries/default/credentials")
BERTH_USER=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["username"])' <<<"$CREDS")
BERTH_PASSWORD=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["passwords"][0]["value"])' <<<"$CREDS")

# Distribution: one process without auth, one with token auth on the same storage folder.
# distribution_config PORT [AUTH_YAML]
distribution_config() {
  cat <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/distribution
  cache:
    blobdescriptor: inmemory
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$1
${2:-}
EOF
}
DIST_PORT=$(free_port)
DIST_URL=http://127.0.0.1:$DIST_PORT
distribution_config "$DIST_PORT" >"$WORK/distribution.yml"
docker-registry serve "$WORK/distribution.yml" >"$WORK/distribution.log" 2>&1 &
DIST_PID=$!

TOKEN_PORT=$(free_port)
TOKEN_PASSWORD=bench$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl pkcs8 -topk8 -nocrypt -out "$WORK/token.key"
openssl req -new -x509 -key "$WORK/token.key" -out "$WORK/token.crt" -days 2 -subj /CN=berth-bench 2>/dev/null
"$BENCH" token-server --bind "127.0.0.1:$TOKEN_PORT" --key "$WORK/token.key" --cert "$WORK/token.crt" \
  --issuer berth-bench --user bench --password "$TOKEN_PASSWORD" >"$WORK/token-server.log" 2>&1 &
TOKEN_PID=$!
DIST_AUTH_PORT=$(free_port)
DIST_AUTH_URL=http://127.0.0.1:$DIST_AUTH_PORT
distribution_config "$DIST_AUTH_PORT" "auth:
  token:
    realm: http://127.0.0.1:$TOKEN_PORT/token
    service: distribution-bench
    issuer: berth-bench
    rootcertbundle: $WORK/token.crt" >"$WORK/distribution-auth.yml"
docker-registry serve "$WORK/distribution-auth.yml" >"$WORK/distribution-auth.log" 2>&1 &
DIST_AUTH_PID=$!
wait_for "$DIST_URL/v2/" "$DIST_PID"
wait_for "$DIST_AUTH_URL/v2/" "$DIST_AUTH_PID"
DIST_VERSION=$(docker-registry --version 2>/dev/null | awk '{print $NF}')

RESULTS=$WORK/results.jsonl
: >"$RESULTS"
FAILURES=0
cpu_seconds() { # pid: utime+stime in seconds
  local stat
  stat=$(cat "/proc/$1/stat")
  stat=${stat##*) }
  awk -v tck="$(getconf CLK_TCK)" '{printf "%.2f", ($12 + $13) / tck}' <<<"$stat"
}
peak_rss_mib() { awk '/^VmHWM:/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
# run SERVER ROUND ARGS...: one berth-bench run, its lines tagged with the server and round, then a line
# with the server's CPU seconds and peak RSS over the run. SERVER: berth, distribution or
# distribution-auth (counted as distribution).
run() {
  local server=$1 round=$2 out pid
  shift 2
  local target=()
  case $server in
    berth|berth-gc) pid=$BERTH_PID; target=(--registry "$BERTH_URL" --user "$BERTH_USER" --password "$BERTH_PASSWORD") ;;
    distribution) pid=$DIST_PID; target=(--registry "$DIST_URL") ;;
    distribution-auth) pid=$DIST_AUTH_PID; target=(--registry "$DIST_AUTH_URL" --user bench --password "$TOKEN_PASSWORD") ;;
  esac
  local name=${server%-auth}
  local seed=$((round * 2))
  [ "$name" = berth ] || seed=$((seed + 1))
  # Every run starts with the previous runs' pages written back and dropped from the page cache, so their
  # writeback and reclaim (of either server) are not charged to this one (skipped where not permitted).
  sync
  echo 1 2>/dev/null >/proc/sys/vm/drop_caches || true
  echo 5 >"/proc/$pid/clear_refs"
  local cpu_before
  cpu_before=$(cpu_seconds "$pid")
  if out=$(RUST_BACKTRACE=0 "$BENCH" run "${target[@]}" --prefix "r$round" --seed "$seed" $QUICK "$@" 2>"$WORK/bench.err"); then
    sed "s/^{/{\"server\":\"$name\",\"round\":$round,/" <<<"$out" >>"$RESULTS"
  else
    FAILURES=$((FAILURES + 1))
    echo "berth-bench run $* against $server failed: $(tail -n 3 "$WORK/bench.err")" >&2
  fi
  [ -s "$WORK/bench.err" ] && sed "s/^/  [$server] /" "$WORK/bench.err" >&2
  local cpu rss
  cpu=$(awk -v a="$cpu_before" -v b="$(cpu_seconds "$pid")" 'BEGIN {printf "%.2f", b - a}')
  rss=$(peak_rss_mib "$pid")
  echo "{\"server\":\"$name\",\"round\":$round,\"resource\":\"$WORKLOAD\",\"cpu\":$cpu,\"rss\":$rss}" >>"$RESULTS"
  return 0
}
# run_collecting ROUND ARGS...: a Berth run (as server berth-gc) while a full collection of the registry,
# its sweep of the store included, is asked for every second.
run_collecting() {
  (while :; do api -X POST -o /dev/null "$BERTH_URL/api/registries/default/gc" || true; sleep 1; done) &
  local collector=$!
  run berth-gc "$@"
  kill "$collector" 2>/dev/null
  wait "$collector" 2>/dev/null || true
}
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order=(berth distribution); else order=(distribution berth); fi
  setup=
  [ "$round" = 1 ] && setup=--setup
  echo "== round $round/$ROUNDS (${order[*]}), $((SECONDS - SUITE_START)) s so far" >&2
  for WORKLOAD in blobs blobs-gc big chunked manifests head-get head-get-token head-get-dance catalog images tokens; do
    for server in "${order[@]}"; do
      case $WORKLOAD in
        head-get-token)
          [ "$server" = berth ] || server=distribution-auth
          run "$server" "$round" --workload head-get --token-auth-row ;;
        head-get-dance)
          [ "$server" = berth ] || server=distribution-auth
          run "$server" "$round" --workload head-get --dance-every 1 ;;
        catalog) run "$server" "$round" --workload catalog $setup ;;
        blobs-gc) if [ "$server" = berth ]; then run_collecting "$round" --workload blobs; fi ;;
        *) run "$server" "$round" --workload "$WORKLOAD" ;;
      esac
    done
  done
done

# Berth's suite CPU leaves out its extra runs with the collector, which Distribution does not make.
BERTH_CPU=$(python3 -c 'import json,sys
extra = sum(json.loads(l)["cpu"] for l in open(sys.argv[1]) if "\"resource\"" in l and json.loads(l)["server"] == "berth-gc")
print("%.2f" % (float(sys.argv[2]) - extra))' "$RESULTS" "$(cpu_seconds "$BERTH_PID")")
DIST_CPU=$(awk -v a="$(cpu_seconds "$DIST_PID")" -v b="$(cpu_seconds "$DIST_AUTH_PID")" 'BEGIN {printf "%.2f", a + b}')
# Peak RSS over the suite: the largest of the per-run peaks (VmHWM is reset before each run).
suite_peak() { python3 -c 'import json,sys
print(max([json.loads(l)["rss"] for l in open(sys.argv[1]) if "\"resource\"" in l and json.loads(l)["server"] == sys.argv[2]] + [0]))' "$RESULTS" "$1"; }
BERTH_RSS=$(suite_peak berth)
DIST_RSS=$(suite_peak distribution)

[ -n "${BERTH_BENCH_KEEP:-}" ] && cp "$RESULTS" "$BERTH_BENCH_KEEP"
mode=full
[ -n "$QUICK" ] && mode=quick
echo
echo "Berth $(git describe --always --dirty 2>/dev/null || echo '?') vs Distribution $DIST_VERSION, $mode mode," \
  "median of $ROUNDS round(s), $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo))"
echo
"$BENCH" table --input "$RESULTS" --numerator berth --denominator distribution
echo
echo "Berth's blob rows while the collector runs every second (berth-gc) against the same rows without it:"
python3 -c 'import json,sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
keys = {l["key"] for l in lines if l.get("server") == "berth-gc" and "key" in l}
for l in lines:
    if l.get("server") in ("berth", "berth-gc") and l.get("key") in keys:
        print(json.dumps(l))' "$RESULTS" >"$WORK/collecting.jsonl"
"$BENCH" table --input "$WORK/collecting.jsonl" --numerator berth-gc --denominator berth
echo
printf '| %-12s | %16s | %13s |\n' server "CPU s (user+sys)" "peak RSS MiB"
printf '| %-12s | %16s | %13s |\n' ------------ ---------------: ------------:
printf '| %-12s | %16s | %13s |\n' berth "$BERTH_CPU" "$BERTH_RSS"
printf '| %-12s | %16s | %13s |\n' distribution "$DIST_CPU" "$DIST_RSS"
echo
echo "suite: $((SECONDS - SUITE_START)) s; n/a: not measurable there (see bench/compare.sh)"
[ "$FAILURES" -eq 0 ] || die "$FAILURES run(s) failed (their rows are missing or partial)"
