"""Local PagerDuty Events API v2 and Jira REST API sinks, served next to the Slack sink (same HTTP server).

The monitor talks to them through the maintained clients (``pagerduty.EventsApiV2Client``, ``jira.JIRA``)
exactly as it would to the real services; only the base URL differs.

PagerDuty, ``POST /pagerduty/v2/enqueue`` (base URL ``http://HOST:PORT/pagerduty``) — validated like the
Events API v2:

- ``routing_key``: required, 32 characters; ``event_action``: ``trigger`` · ``acknowledge`` · ``resolve``;
- ``dedup_key``: at most 255 characters, required for acknowledge/resolve (generated for a trigger without);
- a trigger needs ``payload`` with non-empty ``summary`` (≤ 1024), ``source`` and ``severity``
  (critical · error · warning · info); ``payload.timestamp`` must be ISO 8601; ``custom_details`` an object;
- ``202 {"status": "success", "message": "Event processed", "dedup_key": …}``; anything invalid →
  ``400 {"status": "invalid event", "message": "Event object is invalid", "errors": [...]}``.

Jira (Server / Data Center flavour, REST v2), base URL ``http://HOST:PORT/jira`` — what ``jira.JIRA`` needs to
connect, create and find issues. Every call needs an ``Authorization`` header (401 otherwise):

- ``GET /jira/rest/api/2/serverInfo`` (called by the client's constructor) and ``GET …/field`` (its field cache);
- ``POST …/issue``: ``fields.project.key`` must be a known project, ``summary`` non-empty, one line, ≤ 255,
  ``issuetype.name`` Task · Bug · Story · Incident, ``labels`` strings without spaces → ``201 {id, key, self}``;
  else ``400 {"errorMessages": [], "errors": {field: message}}``;
- ``GET …/issue/{key}``; ``GET …/search?jql=…`` for ``field = value`` clauses joined by ``AND`` over
  ``project``, ``labels``, ``key``, ``summary ~``-less equality (anything else → 400, as Jira's JQL parser).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from rich.table import Table
from rich.text import Text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PD_ACTIONS = ("trigger", "acknowledge", "resolve")
PD_SEVERITIES = ("critical", "error", "warning", "info")
JIRA_ISSUE_TYPES = ("Task", "Bug", "Story", "Incident")
JIRA_PROJECTS = ("OPS",)
SANDBOX_ROUTING_KEY = "payopssandboxroutingkey000000001"  # 32 characters, sandbox only
JIRA_FIELDS = [
    {"id": "summary", "name": "Summary", "custom": False, "clauseNames": ["summary"]},
    {"id": "description", "name": "Description", "custom": False, "clauseNames": ["description"]},
    {"id": "labels", "name": "Labels", "custom": False, "clauseNames": ["labels"]},
    {"id": "project", "name": "Project", "custom": False, "clauseNames": ["project"]},
    {"id": "issuetype", "name": "Issue Type", "custom": False, "clauseNames": ["issuetype", "type"]},
    {"id": "status", "name": "Status", "custom": False, "clauseNames": ["status"]},
]


def _now() -> str:
    return datetime.now(UTC).isoformat()


# --- PagerDuty ----------------------------------------------------------------------------------------
def pagerduty_problems(event: Any) -> list[str]:
    """Why PagerDuty would refuse ``event`` (empty when it is valid)."""
    if not isinstance(event, dict):
        return ["Event must be a JSON object"]
    errors = []
    key = event.get("routing_key")
    if not isinstance(key, str) or not key.strip():
        errors.append("'routing_key' is missing or blank")
    elif len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if action not in PD_ACTIONS:
        errors.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        errors.append(f"'dedup_key' is required for event_action {action}")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return [*errors, "'payload' is missing or not an object"]
        summary = payload.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors.append("'payload.summary' is missing or blank")
        elif len(summary) > 1024:
            errors.append("Length of 'payload.summary' is too long (max 1024 characters)")
        if not isinstance(payload.get("source"), str) or not payload["source"].strip():
            errors.append("'payload.source' is missing or blank")
        if payload.get("severity") not in PD_SEVERITIES:
            errors.append("'payload.severity' is invalid (must be one of: critical, error, warning, info)")
        ts = payload.get("timestamp")
        if ts is not None:
            try:
                datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
            except ValueError:
                errors.append("'payload.timestamp' is not a valid ISO 8601 timestamp")
        if "custom_details" in payload and not isinstance(payload["custom_details"], dict | str):
            errors.append("'payload.custom_details' must be an object")
    return errors


def incidents(events: list[dict[str, Any]]) -> dict[str, str]:
    """dedup key → ``triggered`` · ``acknowledged`` · ``resolved``, as PagerDuty would hold them."""
    state: dict[str, str] = {}
    for e in events:
        body = e.get("event", {})
        key, action = body.get("dedup_key"), body.get("event_action")
        if action == "trigger":
            if state.get(key) != "acknowledged":
                state[key] = "triggered"
        elif action in ("acknowledge", "resolve") and key in state:
            state[key] = "acknowledged" if action == "acknowledge" else "resolved"
    return state


def _invalid(errors: list[str]) -> JSONResponse:
    return JSONResponse({"status": "invalid event", "message": "Event object is invalid", "errors": errors},
                        status_code=400)


def pagerduty_routes(store: Any) -> list[Route]:
    async def enqueue(request: Request) -> Response:
        try:
            event = json.loads((await request.body()).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _invalid(["Event object is not valid JSON"])
        errors = pagerduty_problems(event)
        if errors:
            return _invalid(errors)
        if not event.get("dedup_key"):
            event["dedup_key"] = uuid.uuid4().hex
        store.add("pagerduty", {"event": event, "received_at": _now()})
        return JSONResponse({"status": "success", "message": "Event processed", "dedup_key": event["dedup_key"]},
                            status_code=202)

    return [Route("/pagerduty/v2/enqueue", enqueue, methods=["POST"])]


# --- Jira --------------------------------------------------------------------------------------------
def _jira_error(status: int, errors: dict[str, str] | None = None, messages: list[str] | None = None) -> JSONResponse:
    return JSONResponse({"errorMessages": messages or [], "errors": errors or {}}, status_code=status)


def jira_issue_problems(body: Any, projects: tuple[str, ...]) -> dict[str, str]:
    fields = body.get("fields") if isinstance(body, dict) else None
    if not isinstance(fields, dict):
        return {"fields": "the request needs a 'fields' object"}
    errors: dict[str, str] = {}
    project = fields.get("project")
    if not isinstance(project, dict) or project.get("key") not in projects:
        errors["project"] = "valid project is required"
    summary = fields.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        errors["summary"] = "You must specify a summary of the issue."
    elif "\n" in summary or len(summary) > 255:
        errors["summary"] = "The summary must be one line of at most 255 characters."
    itype = fields.get("issuetype")
    if not isinstance(itype, dict) or itype.get("name") not in JIRA_ISSUE_TYPES:
        errors["issuetype"] = "valid issue type is required"
    labels = fields.get("labels", [])
    if not isinstance(labels, list) or any(not isinstance(x, str) or not x or " " in x for x in labels):
        errors["labels"] = "Labels must be strings and cannot contain spaces."
    return errors


_CLAUSE = re.compile(r'^\s*(\w+)\s*=\s*(?:"([^"]*)"|([^\s"]+))\s*$')


def parse_jql(jql: str) -> list[tuple[str, str]] | str:
    """``field = value`` clauses joined by AND → [(field, value)], or the error Jira would give."""
    out = []
    for part in re.split(r"\s+AND\s+", jql.strip(), flags=re.IGNORECASE):
        m = _CLAUSE.match(part)
        if not m or m.group(1).lower() not in ("project", "labels", "key"):
            return f"Error in the JQL Query: unsupported clause {part.strip()!r} (the sink knows project, labels, key)"
        out.append((m.group(1).lower(), m.group(2) if m.group(2) is not None else m.group(3)))
    return out


def _matches(issue: dict[str, Any], clauses: list[tuple[str, str]]) -> bool:
    f = issue["fields"]
    for name, value in clauses:
        if name == "project" and f["project"]["key"] != value:
            return False
        if name == "labels" and value not in f.get("labels", []):
            return False
        if name == "key" and issue["key"] != value:
            return False
    return True


def jira_routes(store: Any, projects: tuple[str, ...] = JIRA_PROJECTS) -> list[Route]:
    def authed(request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        return auth.startswith(("Basic ", "Bearer ")) and len(auth) > 8

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/") + "/jira"

    def unauthorized() -> JSONResponse:
        return _jira_error(401, messages=["You are not authenticated. Authentication required to perform this "
                                          "operation."])

    async def server_info(request: Request) -> Response:
        if not authed(request):
            return unauthorized()
        return JSONResponse({"baseUrl": base(request), "version": "9.12.0", "versionNumbers": [9, 12, 0],
                             "deploymentType": "Server", "buildNumber": 912000, "serverTitle": "payops sandbox Jira"})

    async def field_list(request: Request) -> Response:
        return JSONResponse(JIRA_FIELDS) if authed(request) else unauthorized()

    def issue_json(request: Request, rec: dict[str, Any]) -> dict[str, Any]:
        return {"id": rec["id"], "key": rec["key"], "self": f"{base(request)}/rest/api/2/issue/{rec['id']}",
                "fields": rec["fields"]}

    async def create(request: Request) -> Response:
        if not authed(request):
            return unauthorized()
        try:
            body = json.loads((await request.body()).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _jira_error(400, messages=["Unexpected character: the body is not JSON"])
        errors = jira_issue_problems(body, projects)
        if errors:
            return _jira_error(400, errors)
        fields = dict(body["fields"])
        project = fields["project"]["key"]

        def make(existing: list[dict[str, Any]]) -> dict[str, Any]:
            n = 1 + sum(1 for r in existing if r["fields"]["project"]["key"] == project)
            fields.setdefault("labels", [])
            fields["status"] = {"name": "Open"}
            fields["created"] = _now()
            return {"id": str(10000 + len(existing) + 1), "key": f"{project}-{n}", "fields": fields,
                    "received_at": _now()}

        rec = store.append_with("jira", make)
        return JSONResponse({"id": rec["id"], "key": rec["key"], "self": issue_json(request, rec)["self"]},
                            status_code=201)

    async def get_issue(request: Request) -> Response:
        if not authed(request):
            return unauthorized()
        ref = request.path_params["ref"]
        for rec in store.snapshot()["jira"]:
            if ref in (rec["key"], rec["id"]):
                return JSONResponse(issue_json(request, rec))
        return _jira_error(404, messages=["Issue does not exist or you do not have permission to see it."])

    async def search(request: Request) -> Response:
        if not authed(request):
            return unauthorized()
        clauses = parse_jql(request.query_params.get("jql", ""))
        if isinstance(clauses, str):
            return _jira_error(400, messages=[clauses])
        found = [r for r in store.snapshot()["jira"] if _matches(r, clauses)]
        start = int(request.query_params.get("startAt", 0) or 0)
        size = int(request.query_params.get("maxResults", 50) or 50)
        page = found[start:start + size]
        return JSONResponse({"expand": "schema,names", "startAt": start, "maxResults": size, "total": len(found),
                             "issues": [issue_json(request, r) for r in page]})

    prefix = "/jira/rest/api/2"
    return [
        Route(f"{prefix}/serverInfo", server_info, methods=["GET"]),
        Route(f"{prefix}/field", field_list, methods=["GET"]),
        Route(f"{prefix}/issue", create, methods=["POST"]),
        Route(f"{prefix}/issue/{{ref}}", get_issue, methods=["GET"]),
        Route(f"{prefix}/search", search, methods=["GET"]),
    ]


# --- the inbox view (``payops sandbox inbox``) ----------------------------------------------------------
def alert_tables(inbox: dict[str, list[dict[str, Any]]]) -> list[Table]:
    """The PagerDuty events (with each incident's state now) and the Jira issues, as Rich tables."""
    pd = Table(title=f"PagerDuty events ({len(inbox.get('pagerduty', []))})")
    for col in ("received", "action", "dedup key", "severity", "summary", "incident now"):
        pd.add_column(col)
    state = incidents(inbox.get("pagerduty", []))
    for m in inbox.get("pagerduty", []):
        ev = m.get("event") or {}
        payload = ev.get("payload") or {}
        pd.add_row(Text(str(m.get("received_at", ""))), Text(str(ev.get("event_action", ""))),
                   Text(str(ev.get("dedup_key", ""))), Text(str(payload.get("severity", ""))),
                   Text(str(payload.get("summary", "")).splitlines()[0][:120] if payload.get("summary") else ""),
                   Text(state.get(ev.get("dedup_key"), "")))
    jira = Table(title=f"Jira issues ({len(inbox.get('jira', []))})")
    for col in ("created", "key", "summary", "labels"):
        jira.add_column(col)
    for m in inbox.get("jira", []):
        f = m.get("fields") or {}
        jira.add_row(Text(str(f.get("created", ""))), Text(str(m.get("key", ""))),
                     Text(str(f.get("summary", ""))[:120]), Text(", ".join(f.get("labels") or [])))
    return [pd, jira]
