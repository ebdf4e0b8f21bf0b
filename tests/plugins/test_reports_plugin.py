"""The validation-reports plugin, served by uvicorn and fetched over real HTTP.

The app is given a stand-in for Airflow's auth manager that admits one bearer token, so
these tests run without Airflow; tests/plugins/test_reports_auth.py checks the default,
Airflow's own auth manager, in a real API server.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import HTTPException, Request

from plugins import lakehouse_reports
from spark_jobs.catalog import reports_path
from spark_jobs.storage import files
from tests.factories import S3_BUCKET, use_s3_server

RUN = "2026-03-02_2026-03-02"
REPORT = f"gold_user_daily/{RUN}/20260303T010203000000Z/report.html"
RESULT = f"gold_user_daily/{RUN}/20260303T010203000000Z/result.json"
TOKEN = "token-of-a-reader"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def token_holder(request: Request) -> str:
    """Admits requests with TOKEN, refuses others the way Airflow does (401)."""
    if request.headers.get("authorization") != f"Bearer {TOKEN}":
        raise HTTPException(401, "Not authenticated")
    return "reader"


def index_line(**changes: object) -> str:
    entry = {
        "table": "gold.user_daily",
        "suite": "gold_user_daily",
        "run_key": RUN,
        "start": "2026-03-02",
        "end": "2026-03-02",
        "success": False,
        "evaluated": 21,
        "failed": 1,
        "warned": 0,
        "report": REPORT,
        "result": RESULT,
        "validated_at": "2026-03-03T01:02:03+00:00",
    }
    entry.update(changes)
    return json.dumps(entry)


@pytest.fixture(params=["local", "s3"])
def reports(request, tmp_path: Path, monkeypatch) -> str:
    """A lakehouse with two validations and a file outside the reports folder.

    On a folder, and on a real S3 server (s3proxy), where the page reads the same files
    through the object-store API.
    """
    if request.param == "local":
        root = str(tmp_path / "lakehouse")
    else:
        use_s3_server(monkeypatch, request.getfixturevalue("s3_server"))
        root = f"s3a://{S3_BUCKET}/reports-{time.monotonic_ns()}"
    base = reports_path(root)
    files.write_text_atomic(
        f"{base}/{REPORT}", "<html><body>gold.user_daily: gate FAILED</body></html>"
    )
    files.write_text_atomic(f"{base}/{RESULT}", '{"success": false}')
    files.write_text_atomic(f"{root}/secret.txt", "not a report")
    files.write_text_atomic(
        f"{base}/index.jsonl",
        index_line()
        + "\n"
        + index_line(
            table="silver.purchases",
            suite="silver_purchases",
            success=True,
            failed=0,
            warned=2,
            start="2026-03-01",
            end="2026-03-01",
            run_key="2026-03-01_2026-03-01",
            report="silver_purchases/x/report.html",
            result="silver_purchases/x/result.json",
            validated_at="2026-03-02T01:00:00+00:00",
        )
        + "\n",
    )
    return root


@pytest.fixture
def server(reports: str) -> Iterator[str]:
    """The app on 127.0.0.1 at a free port; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        lakehouse_reports.create_app(reports, authorize=token_holder),
        host="127.0.0.1",
        port=port,
        log_level="warning",
    )
    serving = uvicorn.Server(config)
    thread = threading.Thread(target=serving.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not serving.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    serving.should_exit = True
    thread.join(timeout=10)


def test_page_lists_validations_by_table_with_links_to_reports(server: str) -> None:
    page = httpx.get(f"{server}/", headers=AUTH)
    assert page.status_code == 200
    text = page.text
    assert "<h2>gold.user_daily</h2>" in text and "<h2>silver.purchases</h2>" in text
    assert "FAILED" in text and "passed with warnings" in text
    assert f'href="reports/{REPORT}"' in text


def test_page_filters_by_table_and_date(server: str) -> None:
    by_table = httpx.get(f"{server}/", params={"table": "silver.purchases"}, headers=AUTH).text
    assert "<h2>silver.purchases</h2>" in by_table and "gold.user_daily</h2>" not in by_table
    by_date = httpx.get(
        f"{server}/api/validations", params={"date": "2026-03-02"}, headers=AUTH
    ).json()
    assert [e["table"] for e in by_date] == ["gold.user_daily"]


def test_report_link_serves_the_html_and_json(server: str) -> None:
    report = httpx.get(f"{server}/reports/{REPORT}", headers=AUTH)
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/html")
    assert "gate FAILED" in report.text
    assert httpx.get(f"{server}/reports/{RESULT}", headers=AUTH).json() == {"success": False}


@pytest.mark.parametrize(
    "path",
    [
        "/reports/../secret.txt",
        "/reports/%2e%2e/secret.txt",
        "/reports/..%2fsecret.txt",
        "/reports/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/reports//etc/passwd",
        "/reports/gold_user_daily",
        "/reports/missing.html",
    ],
)
def test_paths_outside_the_reports_or_missing_are_404(server: str, path: str) -> None:
    # http.client sends the path as written: no client-side normalisation of "..".
    host, port = server.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", path, headers=AUTH)
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    assert response.status == 404
    assert "not a report" not in body


def test_empty_lakehouse_says_there_is_nothing_yet(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    app = lakehouse_reports.create_app(str(tmp_path), authorize=token_holder)
    page = TestClient(app).get("/", headers=AUTH)
    assert page.status_code == 200
    assert "No validations yet" in page.text


def test_plugin_mounts_the_app_and_adds_a_browse_entry() -> None:
    plugin = lakehouse_reports.LakehouseReportsPlugin
    [app] = plugin.fastapi_apps
    assert app["url_prefix"] == "/lakehouse-reports"
    views = {view["name"]: view for view in plugin.external_views}
    assert sorted(views) == ["Operations", "Validation reports"]
    assert views["Validation reports"]["href"] == "lakehouse-reports/"
    assert views["Operations"]["href"] == "lakehouse-reports/ops"
    for view in views.values():
        assert (view["destination"], view["category"]) == ("nav", "browse")


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/api/validations",
        f"/reports/{REPORT}",
        f"/reports/{RESULT}",
        "/reports/../secret.txt",
        "/no-such-page",
    ],
)
def test_every_path_refuses_requests_the_authorizer_refuses(server: str, path: str) -> None:
    host, port = server.removeprefix("http://").split(":")
    for headers in ({}, {"Authorization": "Bearer someone-else"}):
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read().decode()
        connection.close()
        assert response.status == 401, (path, headers)
        assert json.loads(body) == {"detail": "Not authenticated"}
        assert "gate FAILED" not in body and "gold.user_daily" not in body


def test_responses_forbid_scripts_and_sniffing(server: str) -> None:
    for path in ("/", "/api/validations", f"/reports/{REPORT}", "/reports/missing.html"):
        for headers in (AUTH, {}):
            answer = httpx.get(f"{server}{path}", headers=headers)
            policy = answer.headers["content-security-policy"]
            assert "default-src 'none'" in policy and "script-src" not in policy, path
            assert "frame-ancestors 'self'" in policy, path
            assert answer.headers["x-content-type-options"] == "nosniff", path


def test_default_app_checks_with_airflow_and_cannot_be_switched_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.api_fastapi import app as airflow_app
    from fastapi.testclient import TestClient

    # No Airflow API server in this process, so no auth manager: the default check
    # refuses everyone, with or without a token, and says where the reports are served.
    # An earlier test in this worker may have started one (dag.test runs Airflow's
    # in-process API), so the test removes it for its own duration.
    monkeypatch.setattr(airflow_app._AuthManagerState, "instance", None)
    client = TestClient(lakehouse_reports.create_app(str(tmp_path)))
    for path, headers in (("/", {}), ("/api/validations", {}), ("/api/validations", AUTH)):
        refused = client.get(path, headers=headers, follow_redirects=False)
        assert refused.status_code == 503, (path, headers)
        assert "Airflow API server" in refused.json()["detail"]
    with pytest.raises(TypeError, match="never served without one"):
        lakehouse_reports.create_app(str(tmp_path), authorize=None)  # type: ignore[arg-type]
