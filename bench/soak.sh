#!/usr/bin/env bash
# The collector's soak (tests/http/gc_soak.rs) for longer than CI's 20 s: clients push images sharing
# base layers, mount them, re-point tags, delete what they replaced and pull, while the collector runs
# every second with a 3 s grace period; it fails on any BLOB_UNKNOWN or MANIFEST_BLOB_UNKNOWN, and at the
# end every live tag must copy out with skopeo and the store must hold exactly the referenced bytes.
#
# Usage: bench/soak.sh [SECONDS]   (default 600; at least 15, or nothing is old enough to collect)
# Env:   TEST_POSTGRES_URL   run it on Postgres (a URL whose user may create databases), as CI's second pass
# Needs: skopeo.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v skopeo >/dev/null || { echo "skopeo is required: apt-get install skopeo" >&2; exit 1; }
SECS=${1:-600}
[ "$SECS" -ge 15 ] || { echo "soak for at least 15 s: the collector needs blobs older than its 3 s grace" >&2; exit 2; }
BERTH_SOAK_SECS=$SECS exec cargo test --release --test http -- gc_soak --nocapture
