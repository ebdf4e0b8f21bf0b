"""Airflow plugin: the validation reports of the lakehouse gates, in the Airflow UI.

A small FastAPI app, mounted by the Airflow API server at ``/lakehouse-reports/``, lists
recent validations from ``<LAKEHOUSE_ROOT>/_reports/index.jsonl`` (newest first, by table
and date) and serves each validation's HTML page and GX JSON result. A "Validation
reports" entry under Browse shows the page inside the UI. On an ``s3a://`` root it reads
the same files through the object store (``spark_jobs.storage.files``, with the API
server's ``AWS_*`` and ``LAKEHOUSE_S3_ENDPOINT``).

Airflow mounts plugin apps without authentication, so the app checks every request
itself, with Airflow's auth manager: the same JWT as the REST API (``Authorization:
Bearer``) or the UI's ``_token`` cookie, and the auth manager's permission for the
custom view ``Lakehouse validation reports``. Every response carries a
Content-Security-Policy that allows no scripts, as a second line of defence for report
pages that show values from the data.

``create_app(root)`` needs no running Airflow to be built; tests give it their own
``authorize`` to serve it over real HTTP.
"""

from __future__ import annotations

import html
import json
import mimetypes
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, HTTPException, Query, Request, Response, status
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from spark_jobs.catalog import reports_path
from spark_jobs.config import DEFAULT_LAKEHOUSE_ROOT
from spark_jobs.ops import charts as ops_page
from spark_jobs.quality.reports import INDEX_FILE
from spark_jobs.storage import files

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

URL_PREFIX = "/lakehouse-reports"
DEFAULT_LIMIT = 200
# The custom view the auth manager is asked about (SimpleAuthManager: viewers and up).
RESOURCE_NAME = "Lakehouse validation reports"
SECURITY_HEADERS = {
    # Report pages are static HTML with inline CSS: no script may run, whatever the data
    # put into a page, and only the Airflow UI (same origin) may frame them.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
}

# Resolves the user of a request or raises HTTPException (401, 403, or a redirect).
Authorize = Callable[[Request], Awaitable[object]]

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Validation reports</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: .3rem .8rem; border-bottom: 1px solid #ddd; text-align: left; }}
.failed {{ color: #b00020; font-weight: bold; }} .warned {{ color: #a15c00; }}
.passed {{ color: #1b5e20; }}
</style></head>
<body><h1>Validation reports</h1>
<p>Lakehouse {root}: the {count} most recent gate validations{filters}.
Filter: <form style="display:inline" method="get">
<input name="table" placeholder="table, e.g. gold.user_daily" value="{table}">
<input name="date" placeholder="date, YYYY-MM-DD" value="{date}">
<button>show</button></form> <a href="./">all</a></p>
{body}
</body></html>
"""


def lakehouse_root() -> str:
    """The lakehouse root the API server sees: ``LAKEHOUSE_ROOT``, else ``<project>/lakehouse``."""
    return os.environ.get("LAKEHOUSE_ROOT") or str(DEFAULT_LAKEHOUSE_ROOT)


def read_index(root: str) -> list[dict]:
    """Index lines of every validation under ``root``, newest first; [] before the first."""
    text = files.read_text(f"{reports_path(root).rstrip('/')}/{INDEX_FILE}")
    if text is None:
        return []
    entries = []
    for line in text.splitlines():
        if line.strip():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a crash mid-write says nothing usable
    return sorted(entries, key=lambda e: e.get("validated_at", ""), reverse=True)


def select(entries: list[dict], table: str | None, date: str | None, limit: int) -> list[dict]:
    """Entries of one table and/or covering one date (start <= date <= end), at most ``limit``."""
    chosen = [
        e
        for e in entries
        if (not table or e.get("table") == table)
        and (not date or (e.get("start") or "") <= date <= (e.get("end") or ""))
    ]
    return chosen[:limit]


async def airflow_user(request: Request) -> BaseUser:
    """The Airflow user of a request, if Airflow's auth manager lets them read the reports.

    Credentials and their checks are Airflow's own (``get_user``): a bearer token, else
    the UI's ``_token`` cookie. No or an expired credential is 401, an invalid one 403,
    a user without the permission 403. A browser opening a page without a credential
    is sent to the auth manager's login page instead, and back afterwards.
    """
    # Imported here: every Airflow component loads the plugin, only the API server
    # checks requests, and these modules pull in much of Airflow's API.
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    try:
        auth_manager = get_auth_manager()
    except RuntimeError:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "Airflow's auth manager is not running in this process; "
            "open the reports through the Airflow API server",
        ) from None
    credentials = await bearer_scheme(request)
    try:
        user = await get_user(request, None, credentials)
    except HTTPException:
        if credentials is None and _is_page_navigation(request):
            login = auth_manager.get_url_login(next_url=str(request.url))
            raise HTTPException(
                status.HTTP_307_TEMPORARY_REDIRECT, "log in first", headers={"Location": login}
            ) from None
        raise
    if not auth_manager.is_authorized_custom_view(
        method="GET", resource_name=RESOURCE_NAME, user=user
    ):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"user {user.get_name()!r} may not read {RESOURCE_NAME}; "
            "ask an Airflow admin for access",
        )
    return user


def _is_page_navigation(request: Request) -> bool:
    """A browser asking for a page: the index, or any GET (or HEAD) that wants HTML."""
    path = request.url.path.removeprefix(request.scope.get("root_path", ""))
    return request.method in ("GET", "HEAD") and (
        path in ("", "/") or "text/html" in request.headers.get("accept", "")
    )


def create_app(root: str | None = None, *, authorize: Authorize = airflow_user) -> FastAPI:
    """The reports app for a lakehouse root (default: ``lakehouse_root()`` at each request).

    Every request, to any path, must first pass ``authorize``: by default Airflow's auth
    manager (``airflow_user``). Tests pass their own to serve the app without Airflow.
    """
    if not callable(authorize):
        raise TypeError(
            f"authorize must be a callable that checks each request, not {authorize!r}; "
            "the reports are never served without one"
        )
    app = FastAPI(title="Lakehouse validation reports", docs_url=None, redoc_url=None)

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # A middleware, not per-route dependencies: no route, present or future, and no
        # 404 can answer before the check.
        try:
            await authorize(request)
        except HTTPException as refused:
            response: Response = JSONResponse(
                {"detail": refused.detail}, refused.status_code, headers=refused.headers
            )
        else:
            response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    def current_root() -> str:
        # A folder or an object store (s3a://): both are read through spark_jobs.storage.
        return (root or lakehouse_root()).removeprefix("file://")

    @app.get("/api/validations")
    def validations(
        table: str | None = None,
        date: str | None = None,
        limit: int = Query(DEFAULT_LIMIT, ge=1, le=5000),
    ) -> list[dict]:
        return select(read_index(current_root()), table, date, limit)

    @app.get("/", response_class=HTMLResponse)
    def index(
        table: str | None = None,
        date: str | None = None,
        limit: int = Query(DEFAULT_LIMIT, ge=1, le=5000),
    ) -> str:
        chosen_root = current_root()
        entries = select(read_index(chosen_root), table, date, limit)
        filters = "".join(
            f", {name} {html.escape(value)}"
            for name, value in (("table", table), ("date", date))
            if value
        )
        return _PAGE.format(
            root=html.escape(chosen_root),
            count=len(entries),
            filters=filters,
            table=html.escape(table or ""),
            date=html.escape(date or ""),
            body=_listing(entries),
        )

    @app.get("/api/stage-runs")
    def stage_runs(days: int = Query(30, ge=1, le=3660)) -> list[dict]:
        return jsonable(ops_page.runs_of(current_root(), days))

    @app.get("/ops", response_class=HTMLResponse)
    def operations(days: int = Query(30, ge=1, le=3660)) -> str:
        return ops_page.render(current_root(), days)

    @app.get("/reports/{relative:path}")
    def report(relative: str) -> Response:
        folder = reports_path(current_root())
        if not files.is_local(folder):
            return _stored_report(folder, relative)
        base = Path(folder.removeprefix("file:")).resolve()
        target = (base / relative).resolve()
        # Only files inside the reports folder: "..", absolute paths and symlinks out 404.
        if not target.is_relative_to(base) or not target.is_file():
            raise HTTPException(404, "no such report")
        return FileResponse(target)

    return app


def jsonable(rows: list[dict]) -> list[dict]:
    """Rows with dates, times and maps as JSON values."""
    return json.loads(json.dumps(rows, default=str))


def _stored_report(folder: str, relative: str) -> Response:
    """A report file from an object store; a key outside the reports folder is a 404."""
    parts = relative.split("/")
    if not relative or relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise HTTPException(404, "no such report")
    data = files.read_bytes(f"{folder.rstrip('/')}/{relative}")
    if data is None:
        raise HTTPException(404, "no such report")
    kind = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
    return Response(content=data, media_type=kind)


def _listing(entries: list[dict]) -> str:
    if not entries:
        return "<p>No validations yet: the gates write one entry per validated stage.</p>"
    tables: dict[str, list[dict]] = {}
    for entry in entries:
        tables.setdefault(entry.get("table", "?"), []).append(entry)
    parts = []
    for table in sorted(tables):
        rows = "".join(_row(e) for e in tables[table])
        parts.append(
            f"<h2>{html.escape(table)}</h2><table><tr><th>dates</th><th>run</th>"
            f"<th>result</th><th>failed</th><th>warnings</th><th>validated at</th>"
            f"<th>report</th></tr>{rows}</table>"
        )
    return "\n".join(parts)


def _row(entry: dict) -> str:
    if not entry.get("success"):
        status, css = "FAILED", "failed"
    elif entry.get("warned"):
        status, css = "passed with warnings", "warned"
    else:
        status, css = "passed", "passed"
    dates = entry.get("start") or ""
    if entry.get("end") and entry.get("end") != dates:
        dates += f" to {entry['end']}"
    # Relative links: the page works under any mount point and Airflow base URL.
    report = quote(f"reports/{entry.get('report', '')}")
    result = quote(f"reports/{entry.get('result', '')}")
    cells = [
        html.escape(dates),
        html.escape(str(entry.get("run_key", ""))),
        f'<span class="{css}">{status}</span>',
        str(entry.get("failed", 0)),
        str(entry.get("warned", 0)),
        html.escape(str(entry.get("validated_at", ""))),
        f'<a href="{report}">report</a> <a href="{result}">json</a>',
    ]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


class LakehouseReportsPlugin(AirflowPlugin):
    """Mounts the reports app and adds "Validation reports" under Browse in the UI."""

    name = "lakehouse_reports"
    fastapi_apps = [  # noqa: RUF012 (Airflow reads these class attributes)
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "Lakehouse validation reports"}
    ]
    external_views = [  # noqa: RUF012
        {
            "name": "Validation reports",
            # Relative to the UI's base URL, so it also works behind a path prefix.
            "href": URL_PREFIX.lstrip("/") + "/",
            "destination": "nav",
            "category": "browse",
            "url_route": "validation-reports",
        },
        {
            "name": "Operations",
            "href": URL_PREFIX.lstrip("/") + "/ops",
            "destination": "nav",
            "category": "browse",
            "url_route": "lakehouse-operations",
        },
    ]
