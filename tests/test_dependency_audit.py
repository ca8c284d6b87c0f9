"""The dependency audit (`make audit`): what fails the build and what does not."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.dependency_audit import AuditUnavailableError, audit, main, pypi_fetcher, render


def project(latest: str, *vulns: dict) -> dict:
    return {"info": {"version": latest}, "vulnerabilities": list(vulns)}


def vuln(vuln_id: str, *, aliases=(), fixed_in=(), withdrawn=None) -> dict:
    return {"id": vuln_id, "aliases": list(aliases), "fixed_in": list(fixed_in),
            "withdrawn": withdrawn, "summary": "a flaw", "details": "a flaw"}  # fmt: skip


def test_a_reported_vulnerability_fails_and_names_the_fix():
    documents = {"jinja2": project("3.1.6", vuln("GHSA-x", aliases=["CVE-1"], fixed_in=["3.2"])),
                 "idna": project("3.10")}  # fmt: skip
    report = audit({"jinja2": "3.1.6", "idna": "3.10"}, documents.get)
    assert [(f.package, f.vuln_id, f.fixed_in) for f in report.findings] == [
        ("jinja2", "GHSA-x", ("3.2",))
    ]
    assert "VULNERABLE jinja2 3.1.6: GHSA-x (CVE-1), fixed in 3.2" in render(report, 2)


def test_an_ignored_advisory_by_id_or_alias_and_a_withdrawn_one_do_not_fail():
    documents = {"a": project("1.0", vuln("PYSEC-1", aliases=["CVE-9"])),
                 "b": project("2.0", vuln("GHSA-w", withdrawn="2026-01-01T00:00:00Z"))}  # fmt: skip
    report = audit({"a": "1.0", "b": "2.0"}, documents.get, ignore=["CVE-9"])
    assert not report.findings and [f.vuln_id for f in report.ignored] == ["PYSEC-1"]


def test_a_package_below_its_latest_release_is_listed_and_still_checked():
    documents = {"torch": project("2.15.0", vuln("GHSA-open"))}
    report = audit({"torch": "2.13.0+cpu"}, documents.get)
    assert report.held_back == {"torch": ("2.13.0+cpu", "2.15.0")}
    assert [f.vuln_id for f in report.findings] == ["GHSA-open"]  # open upstream: counted


def test_a_compromised_litellm_release_fails_even_without_an_advisory():
    report = audit({"litellm": "1.82.8"}, {"litellm": project("1.90.0")}.get)
    assert [f.vuln_id for f in report.findings] == ["COMPROMISED-RELEASE"]


def test_a_package_pypi_does_not_know_is_reported_not_hidden():
    report = audit({"private-thing": "0.1"}, {}.get)
    assert report.not_on_pypi == ["private-thing"] and report.audited == 0
    assert "not on PyPI, not audited: private-thing" in render(report, 1)


@pytest.fixture
def stalling_pypi():
    """A loopback 'PyPI' that answers 404 for one name and stalls on every other."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if "/missing/" in self.path or self.server.is_empty:
                self.send_error(404)
                return
            time.sleep(2)
            try:
                self.send_response(200)
                self.end_headers()
                self.wfile.write(json.dumps(project("1.0")).encode())
            except OSError:  # the client gave up first, as it should
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.is_empty = False  # True: a 404 for every name, as a blocked API might answer
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/pypi/{{name}}/json"
    yield server
    server.shutdown()
    server.server_close()


def test_a_slow_pypi_fails_the_audit_within_its_deadline_instead_of_passing(stalling_pypi):
    fetch = pypi_fetcher(timeout_s=0.3, deadline_s=1.5, url=stalling_pypi.url)
    assert fetch("missing") is None
    started = time.monotonic()
    with pytest.raises(AuditUnavailableError, match="did not answer for 'numpy'"):
        fetch("numpy")
    assert time.monotonic() - started < 4


def test_make_audit_exits_2_with_a_message_when_pypi_is_slow(stalling_pypi, capsys):
    status = main(["--timeout-s", "0.3", "--deadline-s", "1", "--url", stalling_pypi.url])
    assert status == 2
    assert "dependency audit FAILED, no result: PyPI's JSON API did not answer" in (
        capsys.readouterr().err
    )


def test_an_api_that_knows_no_package_is_no_audit(stalling_pypi, capsys):
    stalling_pypi.is_empty = True
    assert main(["--url", stalling_pypi.url]) == 2
    assert "PyPI knew only 0 of" in capsys.readouterr().err
