"""Audit the installed packages against PyPI's vulnerability reports: ``make audit``.

``python -m tests.dependency_audit [--ignore-vuln ID ...]`` run by the venv's Python.

Why not pip-audit itself: it asks PyPI about each installed *version*
(``/pypi/NAME/VERSION/json``) or asks OSV, and from this project's machines
neither answers, only PyPI's project endpoint (``/pypi/NAME/json``) does.
pip-audit then skips every package and still prints "No known vulnerabilities
found" with exit 0 (``--strict`` fails every run instead). The project endpoint
carries the same reports (the PyPA advisory database, pip-audit's default
source) for the project's *latest* release. So:

- a package at its latest release is audited exactly as pip-audit would;
- a package held below its latest release (a pin, or another package's cap) is
  checked against the latest release's reports, since a flaw still open upstream
  most likely affects older releases too, and is listed as held back: reports
  fixed between the two releases cannot be seen from here.

Exit status: 0 clean, 1 a known vulnerability or a compromised release, 2 PyPI
could not be asked in time (never a pass).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from packaging.version import InvalidVersion, Version

PROJECT_URL = "https://pypi.org/pypi/{name}/json"
# Releases pulled for malware; pyproject excludes them, and this catches one installed anyway.
COMPROMISED = {"litellm": frozenset({"1.82.7", "1.82.8"})}
SELF = "thinkroute"  # the project itself: installed editable, not on PyPI

Fetch = Callable[[str], "dict[str, Any] | None"]


class AuditUnavailableError(Exception):
    """PyPI could not be asked: the audit has no result, which is not a pass."""


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    vuln_id: str
    aliases: tuple[str, ...]
    fixed_in: tuple[str, ...]
    summary: str


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    ignored: list[Finding] = field(default_factory=list)
    held_back: dict[str, tuple[str, str]] = field(default_factory=dict)  # name: (have, latest)
    not_on_pypi: list[str] = field(default_factory=list)
    audited: int = 0


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, str]:
    """Every distribution in the running interpreter's environment, by canonical name."""
    found = {
        canonical(d.metadata["Name"]): d.version
        for d in metadata.distributions()
        if d.metadata["Name"]  # a broken install can leave a distribution without metadata
    }
    found.pop(SELF, None)
    return dict(sorted(found.items()))


def audit(packages: Mapping[str, str], fetch: Fetch, ignore: Iterable[str] = ()) -> Report:
    """Check ``packages`` (name: version) with ``fetch(name)``, a PyPI project document."""
    ignored_ids = set(ignore)
    report = Report()
    for name, version in packages.items():
        if version in COMPROMISED.get(name, ()):
            report.findings.append(Finding(name, version, "COMPROMISED-RELEASE", (), (),
                                           "a release pulled for malware"))  # fmt: skip
        project = fetch(name)
        if project is None:
            report.not_on_pypi.append(name)
            continue
        report.audited += 1
        latest = project["info"]["version"]
        if _is_older(version, latest):
            report.held_back[name] = (version, latest)
        for vuln in project.get("vulnerabilities") or []:
            if vuln.get("withdrawn"):
                continue
            finding = Finding(
                package=name,
                version=version,
                vuln_id=vuln["id"],
                aliases=tuple(vuln.get("aliases") or ()),
                fixed_in=tuple(vuln.get("fixed_in") or ()),
                summary=(vuln.get("summary") or vuln.get("details") or "").split("\n")[0][:100],
            )
            is_ignored = ignored_ids & {finding.vuln_id, *finding.aliases}
            (report.ignored if is_ignored else report.findings).append(finding)
    return report


def pypi_fetcher(
    *, timeout_s: float, deadline_s: float, attempts: int = 3, url: str = PROJECT_URL
) -> Fetch:
    """``fetch(name)`` over PyPI's JSON API; ``None`` for a 404, else retried, then an error.

    Every call shares one deadline, so a slow PyPI ends the audit in about
    ``deadline_s`` with :class:`AuditUnavailableError`, however many packages remain.
    """
    deadline = time.monotonic() + deadline_s

    def fetch(name: str) -> dict[str, Any] | None:
        error: Exception | None = None
        for attempt in range(attempts):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                address = url.format(name=name)
                with urllib.request.urlopen(address, timeout=min(timeout_s, remaining)) as answer:
                    document = json.load(answer)
                # Only what the audit reads: some documents list every file of every release.
                return {"info": {"version": document["info"]["version"]},
                        "vulnerabilities": document.get("vulnerabilities") or []}  # fmt: skip
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return None
                error = exc  # 429 and 5xx: worth another try
            except (OSError, ValueError, KeyError) as exc:  # timeouts, resets, a cut body
                error = exc
            time.sleep(min(2.0**attempt, max(deadline - time.monotonic(), 0)))
        raise AuditUnavailableError(
            f"PyPI's JSON API did not answer for {name!r} within {deadline_s:.0f} s "
            f"({error or 'deadline passed'})"
        )

    return fetch


def render(report: Report, total: int) -> str:
    lines = []
    for f in report.findings:
        fix = f"fixed in {', '.join(f.fixed_in)}" if f.fixed_in else "no fixed release"
        aliases = f" ({', '.join(f.aliases)})" if f.aliases else ""
        lines.append(f"VULNERABLE {f.package} {f.version}: {f.vuln_id}{aliases}, {fix}: "
                     f"{f.summary}")  # fmt: skip
    for f in report.ignored:
        lines.append(f"ignored    {f.package} {f.version}: {f.vuln_id} (--ignore-vuln)")
    if report.held_back:
        held = ", ".join(f"{n} {have} (latest {new})" for n, (have, new) in
                         report.held_back.items())  # fmt: skip
        lines.append(f"held back below their latest release, so reports fixed since cannot "
                     f"be seen here: {held}")  # fmt: skip
    if report.not_on_pypi:
        lines.append(f"not on PyPI, not audited: {', '.join(report.not_on_pypi)}")
    verdict = f"known vulnerabilities: {len(report.findings)}" if report.findings else "clean"
    lines.append(f"dependency audit: {report.audited} of {total} installed packages checked "
                 f"against PyPI's advisories: {verdict}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ignore-vuln", action="append", default=[], metavar="ID",
                        help="an advisory id or alias judged not to apply (say why where "
                        "it is passed)")  # fmt: skip
    parser.add_argument("--timeout-s", type=float, default=15.0, help="per request")
    parser.add_argument("--deadline-s", type=float, default=120.0, help="for the whole audit")
    parser.add_argument("--url", default=PROJECT_URL, help="a mirror of PyPI's JSON API")
    args = parser.parse_args(argv)
    packages = installed()
    fetch = pypi_fetcher(timeout_s=args.timeout_s, deadline_s=args.deadline_s, url=args.url)
    # Fetched in parallel (the documents are read-only); audited in order.
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            documents = dict(zip(packages, pool.map(fetch, packages), strict=True))
    except AuditUnavailableError as exc:
        print(f"dependency audit FAILED, no result: {exc}", file=sys.stderr)
        return 2
    report = audit(packages, documents.__getitem__, args.ignore_vuln)
    print(render(report, len(packages)))
    if report.audited < len(packages) / 2:
        # A blocked or moved API can answer 404 for everything: that is no audit at all.
        print(f"dependency audit FAILED, no result: PyPI knew only {report.audited} of "
              f"{len(packages)} installed packages", file=sys.stderr)  # fmt: skip
        return 2
    return 1 if report.findings else 0


def _is_older(version: str, latest: str) -> bool:
    try:
        return Version(version) < Version(latest)  # a local build (2.13.0+cpu) counts as 2.13.0
    except InvalidVersion:
        return version != latest


if __name__ == "__main__":
    raise SystemExit(main())
