#!/usr/bin/env bash
# End to end with the ORAS Python client (PyPI oras, in a venv of its own): a Contributor service
# principal logs in, pushes an artifact with its own artifactType, attaches a signature as a referrer,
# lists the referrers and pulls both back (tests/e2e/oras_client.py). oras-py reuses the token of its
# first request (a pull-only blob HEAD) for the upload and fetches a new one only after a 403, which Berth
# answers to a token lacking a scope the caller could get.
#
# Usage: tests/e2e/oras.sh   (as root, like the other end-to-end scripts)
# Needs: python3 with venv, network access to PyPI the first time.  Env: BERTH_BIN (default: the debug build)
set -euo pipefail
cd "$(dirname "$0")/../.."

E2E=/tmp/berth-e2e-oras
PASS_MESSAGE="the ORAS Python client pushes an artifact and a referrer, lists and pulls them"
source tests/e2e/lib.sh
ORAS_VENV=${XDG_CACHE_HOME:-$HOME/.cache}/berth-e2e/oras-venv

step "checking prerequisites"
e2e_prerequisites python3 curl
if ! "$ORAS_VENV/bin/python" -c 'import oras' 2>/dev/null; then
  run python3 -m venv "$ORAS_VENV"
  run "$ORAS_VENV/bin/pip" install -q oras
fi
say "oras $("$ORAS_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("oras"))')"

step "starting berth"
start_berth
BASE=http://$ADDR
principal CI Contributor /registries/default

step "oras-py: push an artifact and a referrer as the Contributor, list the referrers, pull both"
mkdir -p "$E2E/oras"
run "$ORAS_VENV/bin/python" tests/e2e/oras_client.py "$ADDR" "$CI_ID" "$CI_PASSWORD" artifacts/report "$E2E/oras"
