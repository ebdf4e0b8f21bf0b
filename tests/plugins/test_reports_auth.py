"""The reports plugin inside a real Airflow API server: Airflow's login guards it.

One API server (SimpleAuthManager, users ``admin`` and ``viewer``) with this project's
plugins, started once for the module; requests go over real HTTP with and without the
credentials the UI and the REST API use.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import jwt
import pytest

from devtools.airflow_local import AirflowClient, AirflowLocal
from spark_jobs.catalog import reports_path

pytestmark = [
    pytest.mark.airflow,
    # The test signs tokens with the server's key, a 32-byte one from AirflowLocal.
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
]

PREFIX = "/lakehouse-reports"
REPORT = "gold_user_daily/2026-03-02_2026-03-02/20260303T010203000000Z/report.html"
VIEWER = "viewer"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    """The running API server: where it answers, and how to log in to it."""

    local: AirflowLocal
    viewer_password: str

    @property
    def url(self) -> str:
        return self.local.base_url

    def token(self, user: str | None = None) -> str:
        """A JWT from ``POST /auth/token`` (the configured admin unless ``user``)."""
        if user is None:
            return self.local.client().token()
        return AirflowClient(self.url, user, self.viewer_password).token()


def write_reports(root: Path) -> None:
    """One validation in the lakehouse: its page, JSON result and index line."""
    base = Path(reports_path(str(root)))
    (base / REPORT).parent.mkdir(parents=True)
    (base / REPORT).write_text("<html><body>gold.user_daily: gate FAILED</body></html>")
    entry = {
        "table": "gold.user_daily",
        "run_key": "2026-03-02_2026-03-02",
        "start": "2026-03-02",
        "end": "2026-03-02",
        "success": False,
        "failed": 1,
        "warned": 0,
        "report": REPORT,
        "result": REPORT.replace("report.html", "result.json"),
        "validated_at": "2026-03-03T01:02:03+00:00",
    }
    (base / "index.jsonl").write_text(json.dumps(entry) + "\n")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An Airflow API server alone (no scheduler needed), stopped after the module."""
    root = tmp_path_factory.mktemp("lakehouse")
    write_reports(root)
    local = AirflowLocal(
        home=tmp_path_factory.mktemp("airflow-home"), lakehouse_root=str(root), port=free_port()
    )
    local.migrate()
    local.password()
    viewer_password = "viewer-password"
    passwords = json.loads(local.passwords_file.read_text())
    local.passwords_file.write_text(json.dumps({**passwords, VIEWER: viewer_password}))
    env = local.environment()
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = f"{local.user}:admin,{VIEWER}:viewer"
    log_path = local.home / "api-server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1",
             "--port", str(local.port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_for_health(local.base_url, process, log_path)
        yield Server(local, viewer_password)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def wait_for_health(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, f"api-server exited:\n{log_path.read_text()[-3000:]}"
        try:
            if httpx.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise AssertionError(f"api-server not healthy after 300 s:\n{log_path.read_text()[-3000:]}")


def resigned(server: Server, **claims: object) -> str:
    """The admin's token with ``claims`` changed, signed with the server's own key."""
    token = server.token()
    header = jwt.get_unverified_header(token)
    payload = {**jwt.decode(token, options={"verify_signature": False}), **claims}
    secret = server.local.environment()["AIRFLOW__API_AUTH__JWT_SECRET"]
    return jwt.encode(payload, secret, algorithm=header["alg"], headers={"kid": header["kid"]})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_rest_api_itself_refuses_anonymous_requests(server: Server) -> None:
    assert httpx.get(f"{server.url}/api/v2/dags").status_code == 401


@pytest.mark.parametrize("path", ["/api/validations", f"/reports/{REPORT}"])
def test_anonymous_api_and_report_requests_are_401(server: Server, path: str) -> None:
    answer = httpx.get(f"{server.url}{PREFIX}{path}")
    assert answer.status_code == 401
    assert answer.json() == {"detail": "Not authenticated"}
    assert "gate FAILED" not in answer.text


def test_anonymous_browser_is_sent_to_the_login_page_and_back(server: Server) -> None:
    answer = httpx.get(f"{server.url}{PREFIX}/", follow_redirects=False)
    assert answer.status_code in (302, 307)
    login = urlparse(answer.headers["location"])
    assert login.path == "/auth/login"
    assert parse_qs(login.query)["next"] == [f"{server.url}{PREFIX}/"]
    # The login page is there to be followed to.
    assert httpx.get(f"{server.url}/auth/login").status_code == 200


def test_invalid_or_expired_tokens_are_refused(server: Server) -> None:
    url = f"{server.url}{PREFIX}/api/validations"
    assert httpx.get(url, headers=bearer("garbage")).status_code in (401, 403)
    forged = jwt.encode({"sub": "admin", "role": "admin"}, "not-the-key" * 8, algorithm="HS512")
    assert httpx.get(url, headers=bearer(forged)).status_code in (401, 403)
    expired = resigned(server, exp=int(time.time()) - 60)
    assert httpx.get(url, headers=bearer(expired)).status_code == 401
    # A cookie that does not hold is no way in either.
    assert httpx.get(url, cookies={"_token": forged}).status_code in (401, 403)


def test_authenticated_user_without_the_permission_is_403(server: Server) -> None:
    roleless = resigned(server, role=None, exp=int(time.time()) + 600)
    answer = httpx.get(f"{server.url}{PREFIX}/api/validations", headers=bearer(roleless))
    assert answer.status_code == 403
    assert "may not read" in answer.json()["detail"]


def test_rest_api_token_reads_the_index(server: Server) -> None:
    for token in (server.token(), server.token(VIEWER)):
        answer = httpx.get(f"{server.url}{PREFIX}/api/validations", headers=bearer(token))
        assert answer.status_code == 200
        [entry] = answer.json()
        assert (entry["table"], entry["report"]) == ("gold.user_daily", REPORT)


def test_ui_cookie_opens_the_page_and_the_report(server: Server) -> None:
    cookies = {"_token": server.token()}
    page = httpx.get(f"{server.url}{PREFIX}/", cookies=cookies, follow_redirects=False)
    assert page.status_code == 200
    assert "<h2>gold.user_daily</h2>" in page.text
    report = httpx.get(f"{server.url}{PREFIX}/reports/{REPORT}", cookies=cookies)
    assert report.status_code == 200 and "gate FAILED" in report.text
    assert "default-src 'none'" in report.headers["content-security-policy"]
    assert report.headers["x-content-type-options"] == "nosniff"
