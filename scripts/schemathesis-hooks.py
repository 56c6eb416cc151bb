"""schemathesis hooks for scripts/schemathesis (loaded through SCHEMATHESIS_HOOKS).

FERRY_SCHEMATHESIS_URL and FERRY_SCHEMATHESIS_KEY: the public listener and the admin key.
"""

import json
import os
import urllib.error
import urllib.parse
import urllib.request

import schemathesis

# POST /v1/artifacts takes the .wasm file's bytes as `application/wasm`: sent as they are, like
# `application/octet-stream`.
schemathesis.serializer.alias("application/wasm", "application/octet-stream")

ENDED = {"completed", "failed", "crashed", "cancelled"}


def _get(path):
    """GET `path` of the public API with the admin key: its JSON, or None on any error."""
    request = urllib.request.Request(
        os.environ["FERRY_SCHEMATHESIS_URL"] + path,
        headers={"Authorization": "Bearer " + os.environ["FERRY_SCHEMATHESIS_KEY"]},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)
    except (urllib.error.URLError, ValueError):
        return None


def _run_state(run_id):
    """The run's state; None when there is no such run (or the id is no id)."""
    run = _get("/v1/runs/" + urllib.parse.quote(str(run_id), safe=""))
    return run.get("state") if isinstance(run, dict) else None


_OWN_KEY_ID = []


def _own_key_id():
    """The id of the admin key every request is sent with (its prefix starts the key)."""
    if not _OWN_KEY_ID:
        key = os.environ["FERRY_SCHEMATHESIS_KEY"]
        keys = (_get("/v1/api-keys") or {}).get("items", [])
        _OWN_KEY_ID.extend(k["id"] for k in keys if key.startswith(k["prefix"]))
    return _OWN_KEY_ID[0] if _OWN_KEY_ID else None


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    _keep_own_key(case)
    _keep_own_address(case)
    _follow_only_ended_runs(case)


def _keep_own_key(case):
    """The key every request is sent with is not revoked (schemathesis finds its id in
    `GET /v1/api-keys`): everything after would be a 401, documented but testing nothing. The
    case revokes a key of no one instead (404)."""
    if case.method.upper() != "DELETE" or case.path != "/v1/api-keys/{id}":
        return
    params = case.path_parameters or {}
    if params.get("id") is not None and params.get("id") == _own_key_id():
        params["id"] = "00000000-0000-0000-0000-000000000000"
        case.path_parameters = params


def _keep_own_address(case):
    """`PUT /v1/workspace/ip-allowlist` with `"force": true` may lock the caller out on
    purpose: everything after would be a 403, documented but testing nothing. Such a case keeps
    127.0.0.1 in the list it forces (a list without `force` that leaves it out is answered 409
    `would_lock_out`, and tested as it is)."""
    if case.method.upper() != "PUT" or case.path != "/v1/workspace/ip-allowlist":
        return
    body = case.body
    if isinstance(body, dict) and body.get("force") is True and isinstance(body.get("cidrs"), list):
        if body["cidrs"]:
            body["cidrs"] = list(body["cidrs"]) + ["127.0.0.1"]


def _follow_only_ended_runs(case):
    """`GET /v1/runs/{id}/logs?follow=true` streams until the run has ended, by design: a run
    that will not end soon (scheduled for later, in a paused pool) keeps the stream open past
    any request timeout. Such a case asks for the page of lines instead (`follow=false`). A run
    that has ended is followed (its stream ends with the `end` event, which is checked against
    the document), and so is an id of no run (404)."""
    if case.method.upper() != "GET" or case.path != "/v1/runs/{id}/logs":
        return
    query = case.query or {}
    if str(query.get("follow")).lower() != "true":
        return
    state = _run_state((case.path_parameters or {}).get("id"))
    if state is not None and state not in ENDED:
        query["follow"] = "false"
        case.query = query
