"""Schemathesis hooks for tests/e2e/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

1. A sandbox for storage locations. Whether a location works depends on the installation (credentials of
   the cloud stores, the host's file system), and deleting a registry removes every file of its location:
   a fuzzer running as root must never point a registry at `file:///`. Every generated location that the
   schema allows is replaced by a fresh folder under $BERTH_ST_SANDBOX; locations the schema forbids are
   sent as generated, for the server to refuse.

2. Patterns: whether a regex (purge filters, retention rules) or a glob (immutability rules) compiles, or
   a duration (a purge's age) parses, is more than a schema's pattern can say. Generated ones of cases meant to be accepted are replaced by valid
   patterns naming a repository nothing else uses (so a fuzzed purge or rule never touches the fixtures);
   cases meant to be refused are sent as generated.

3. When $BERTH_ST_FOREIGN_REGISTRY is set (the run as an Owner of $BERTH_ST_OWN_REGISTRY), some requests
   are steered at the foreign registry (its name in paths and scopes, its role assignments' ids), and the
   check `foreign_registry_untouched` fails the run if any of them, or any other request, gets a 2xx
   answer that concerns the foreign registry, except reads of the repositories below
   $BERTH_ST_FOREIGN_READABLE, where the Owner also holds a Reader role (every principal with a role
   reads what it may pull). Others are steered at the Owner's own registry and its image, which random
   names would never hit. Path parameters a stateful link filled in (the id of an assignment a POST just
   created) are real and stay as they are: steering them would turn a link schemathesis follows into a
   request for something else, which its checks would rightly report as a missing resource.
"""

import json
import os
import random
import re
import threading
from urllib.parse import unquote, urlsplit

import schemathesis

SANDBOX = os.environ.get("BERTH_ST_SANDBOX", "")
FOREIGN = os.environ.get("BERTH_ST_FOREIGN_REGISTRY", "")
OWN = os.environ.get("BERTH_ST_OWN_REGISTRY", "")
FOREIGN_IDS = [i for i in os.environ.get("BERTH_ST_FOREIGN_ASSIGNMENTS", "").split(",") if i]
# The caller's own Owner assignment: deleting it would leave the rest of the run without rights.
OWN_ID = os.environ.get("BERTH_ST_OWN_ASSIGNMENT", "")
PRINCIPALS = [p for p in os.environ.get("BERTH_ST_PRINCIPALS", "").split(",") if p]
# The caller (the Owner of $BERTH_ST_OWN_REGISTRY): the first of $BERTH_ST_PRINCIPALS.
CALLER = PRINCIPALS[0] if PRINCIPALS else ""
# The repository prefix of the foreign registry the Owner may pull (a Reader role there).
FOREIGN_READABLE = os.environ.get("BERTH_ST_FOREIGN_READABLE", "")
# The schema's pattern of CreateRegistry.storageLocation (src/http/api/openapi.json).
LOCATION = re.compile(r"^(memory://|file://.+|(s3|azure|az|gs)://[^/]+(/.*)?)$")
# Shares of the Owner's requests steered at the foreign registry and at its own; the rest go as generated.
FOREIGN_SHARE = 0.3
OWN_SHARE = 0.4
# What exists in both registries (pushed by the script), by method of /repositories/{rest}.
REPOSITORY_PATHS = {
    "GET": ["st/app", "st/app/_tags", "st/app/_manifests"],
    "DELETE": ["st/app/_tags/v1", "st/app"],
}

_rng = random.Random(os.environ.get("BERTH_ST_SEED", "0"))
_lock = threading.Lock()
_sandboxed = 0


def _sandbox_location(body):
    global _sandboxed
    location = body.get("storageLocation")
    if not isinstance(location, str) or not LOCATION.search(location) or location == "memory://":
        return
    if not SANDBOX:
        raise RuntimeError("BERTH_ST_SANDBOX is not set: refusing to send a storage location")
    with _lock:
        _sandboxed += 1
        body["storageLocation"] = f"file://{SANDBOX}/location-{_sandboxed}"


# Valid patterns for what the hook replaces: regex filters and globs of a repository no fixture uses.
FILTER = "st-fuzz/.*:.*"
GLOBS = {"repositories": "st-fuzz/*", "tags": "v*", "except": ["v*-rc*"]}


def _valid_patterns(case):
    body = case.body if isinstance(case.body, dict) else None
    if body is None or _negative(case):
        return
    if isinstance(body.get("filters"), list):
        body["filters"] = [FILTER for _ in body["filters"]] or [FILTER]
    if isinstance(body.get("ago"), str):
        body["ago"] = "30d"
    if isinstance(body.get("rules"), list):
        for rule in body["rules"]:
            if isinstance(rule, dict) and "filter" in rule:
                rule["filter"] = FILTER
    if case.path.endswith("/immutability-rules"):
        for key, value in GLOBS.items():
            if key in body:
                body[key] = value


def _negative(case):
    """Whether schemathesis generated the case to be refused: steering must not make it acceptable."""
    meta = getattr(case, "meta", None)
    return meta is not None and meta.generation.mode.is_negative


def _linked(case):
    """The path parameters a stateful link set: schemathesis records them as the case's changes since it
    was generated (a private attribute of the pinned version; nothing else tells)."""
    override = getattr(case, "_override", None)
    return set(getattr(override, "path_parameters", None) or {})


def _keep_own_assignment(body):
    """A POST of the caller's own Owner assignment answers with that assignment (assigning is idempotent),
    and a link would pass its id to a DELETE: the caller's rights must survive the run."""
    if (
        body.get("assignee") == CALLER
        and body.get("scope") == f"/registries/{OWN}"
        and body.get("role") == "Owner"
    ):
        body["role"] = "Contributor"


def _steer(case):
    path = case.path_parameters if isinstance(case.path_parameters, dict) else None
    query = case.query if isinstance(case.query, dict) else None
    body = case.body if isinstance(case.body, dict) else None
    with _lock:
        draw = _rng.random()
        foreign_id = _rng.choice(FOREIGN_IDS) if FOREIGN_IDS else None
        principal = _rng.choice(PRINCIPALS) if PRINCIPALS else None
        repository = _rng.choice(REPOSITORY_PATHS.get(case.method.upper(), [""]))
    linked = _linked(case)
    if path is not None and "id" not in linked and path.get("id") == OWN_ID and foreign_id:
        path["id"] = foreign_id
    if body is not None:
        _keep_own_assignment(body)
    if _negative(case):
        return
    if draw < FOREIGN_SHARE:
        target = FOREIGN
    elif draw < FOREIGN_SHARE + OWN_SHARE and OWN:
        target = OWN
    else:
        return
    if path is not None:
        if "name" in path and "name" not in linked:
            path["name"] = target
        if "rest" in path and "rest" not in linked and repository:
            path["rest"] = repository
        if "id" in path and "id" not in linked and foreign_id and target == FOREIGN:
            path["id"] = foreign_id
    if query is not None and "scope" in query:
        query["scope"] = f"/registries/{target}"
    if body is not None:
        if "scope" in body:
            body["scope"] = f"/registries/{target}"
        if "scopes" in body:
            body["scopes"] = [f"/registries/{target}"]
        if "assignee" in body and principal:
            body["assignee"] = principal
        _keep_own_assignment(body)


@schemathesis.hook
def before_call(context, case, **kwargs):
    if isinstance(case.body, dict):
        _sandbox_location(case.body)
    _valid_patterns(case)
    if FOREIGN:
        _steer(case)


def _below_readable(repository):
    return repository == FOREIGN_READABLE or repository.startswith(FOREIGN_READABLE + "/")


def _readable_in_foreign(method, path, answer):
    """Whether the request is a read of the foreign registry's repositories that the Owner's Reader role
    there allows: the listing (which must then name only those repositories) or one of them."""
    if method != "GET" or not FOREIGN_READABLE:
        return False
    listing = f"/api/registries/{FOREIGN}/repositories".lower()
    path = path.lower()
    if path == listing:
        listed = json.loads(answer)
        if not all(_below_readable(r) for r in listed):
            raise AssertionError(f"GET {path} listed repositories the Owner may not pull: {answer[:300]}")
        return True
    if not path.startswith(listing + "/"):
        return False
    rest = path[len(listing) + 1 :]
    repository = rest.split("/_", 1)[0]
    return _below_readable(repository)


@schemathesis.check
def foreign_registry_untouched(ctx, response, case):
    """The Owner of one registry never gets a 2xx for anything of another registry, beyond reading the
    repositories it may pull there."""
    if not FOREIGN or not 200 <= response.status_code < 300:
        return None
    request = response.request
    body = request.body or b""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    url = unquote(request.url or "")
    answer = response.content.decode("utf-8", "replace")
    if _readable_in_foreign(request.method, urlsplit(url).path, answer):
        return None
    name = FOREIGN.lower()
    for where, text in (("URL", url), ("request body", body), ("response body", answer)):
        if name in text.lower():
            raise AssertionError(
                f"{request.method} {url} got {response.status_code} and names the foreign registry {FOREIGN} "
                f"in its {where}: {json.dumps(text[:300])}"
            )
    path = urlsplit(url).path
    if request.method == "DELETE" and path.rsplit("/", 1)[-1] in FOREIGN_IDS and "/role-assignments/" in path:
        raise AssertionError(f"DELETE {path} deleted a role assignment of the foreign registry {FOREIGN}")
    return None
