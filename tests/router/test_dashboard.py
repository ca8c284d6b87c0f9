"""The dashboard's page and its summary route: real HTTP, real Redis, the simulated upstream."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from router.config import ServerConfig
from router.http.dashboard.figures import percentile, window_figures
from router.upstream.simulator import BackgroundServer
from tests.router.conftest import proxy_config
from tests.router.test_cascade_proxy import NEAR_BELOW, FixedScorer, answers, ask, cascade_config
from tests.router.test_observability import CHAT, OLYMPIAD, PRIMES, post

pytestmark = [
    pytest.mark.redis,
    pytest.mark.filterwarnings(
        "ignore:Accessing the 'model_(computed_)?fields' attribute:DeprecationWarning",
        "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning",
    ),
]

ADMIN_KEY = "sk-admin-dashboard-0123456789"
OPENAI_ERROR_FIELDS = {"message", "type", "param", "code"}


@pytest.fixture
def start(serve_on_redis, clean_upstream, run_id):
    """Start a proxy on Redis with tenants ``{run}-a`` and ``{run}-b`` and the admin key."""

    def make(*, admin_key: str | None = ADMIN_KEY, **server: Any) -> BackgroundServer:
        tenants = [{"name": f"{run_id}-{n}", "api_keys": [f"sk-{run_id}-{n}"]} for n in "ab"]
        config = proxy_config(clean_upstream.base_url, tenants=tenants)
        config = config.model_copy(update={"server": ServerConfig(**server)})
        return serve_on_redis(config, admin_key=admin_key)

    return make


def summary(server: BackgroundServer, key: str | None, **params: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{server.url}/v1/dashboard/summary", headers=headers, params=params,
                     timeout=10)  # fmt: skip


def settled(server: BackgroundServer, key: str, tenant: str, requests: int) -> dict[str, Any]:
    """The summary once ``tenant``'s window holds ``requests`` (the log is written behind)."""
    for _ in range(100):
        body = summary(server, key).json()
        row = next(r for r in body["tenants"] if r["tenant"] == tenant)
        if row["window"]["requests"] >= requests:
            return body
        time.sleep(0.05)
    raise AssertionError(f"{tenant}'s window never reached {requests} requests: {row}")


def send_mixed_traffic(server, upstream, key: str) -> list[httpx.Response]:
    """A fast miss, its cache hit, a reasoning answer, and a reasoning failure served fast."""
    responses = [
        post(server, key, CHAT, temperature=0),
        post(server, key, CHAT, temperature=0),
        post(server, key, OLYMPIAD),
    ]
    upstream.control("reasoning-model", fail_status=500)
    responses.append(post(server, key, PRIMES))
    upstream.reset()
    assert [r.status_code for r in responses] == [200] * 4
    return responses


def test_a_tenant_sees_the_traffic_it_sent_and_nothing_else(start, run_id, clean_upstream):
    server = start()
    a, b = f"{run_id}-a", f"{run_id}-b"
    sent = send_mixed_traffic(server, clean_upstream, f"sk-{a}")
    other = post(server, f"sk-{b}", OLYMPIAD)
    assert other.status_code == 200

    body = settled(server, f"sk-{a}", a, len(sent))
    assert body["viewer"] == "tenant" and body["scope"] == "fleet"
    assert [row["tenant"] for row in body["tenants"]] == [a]
    (row,) = body["tenants"]
    window = row["window"]
    tiers = [r.headers["x-thinkroute-tier"] for r in sent]
    assert sent[1].headers["x-thinkroute-cache"] == "hit"
    assert "x-thinkroute-fallback" in sent[3].headers
    # What the client saw, request by request, is what the dashboard counts.
    assert window["requests"] == 4
    assert (window["fast"], window["reasoning"]) == (tiers.count("fast"), tiers.count("reasoning"))
    assert (window["fast"], window["reasoning"]) == (3, 1)
    assert window["reasoning_share"] == pytest.approx(0.25)
    assert (window["cache_hits"], window["cache_lookups"], window["cache_hit_rate"]) == (1, 2, 0.5)
    assert window["fallbacks"] == 1 and window["errors"] == 0
    charged = sum(float(r.headers["x-thinkroute-cost-usd"]) for r in sent)
    assert window["spend_usd"] == pytest.approx(charged, abs=1e-6)
    assert row["today"]["spend_usd"] == pytest.approx(charged, abs=1e-6)
    assert row["today"]["cache_hits"] == 1
    # Fast answers cost less than the same usage on the reasoning tier.
    assert window["baseline_usd"] > window["spend_usd"] > 0
    assert window["savings_usd"] == pytest.approx(window["baseline_usd"] - window["spend_usd"])
    assert row["today"]["estimated_savings_usd"] == pytest.approx(window["savings_usd"], abs=4e-6)
    latency = window["latency_ms"]
    assert 0 < latency["total"]["p50"] <= latency["total"]["p90"] <= latency["total"]["p99"]
    assert latency["upstream"]["p99"] <= latency["total"]["p99"]
    # The time series holds the same requests; a tenant's total is its own row.
    series = body["series"]
    assert len(series) == 30 and body["bucket_s"] == 30
    assert sum(b["fast"] for b in series) == 3 and sum(b["reasoning"] for b in series) == 1
    assert sum(b["cache_hits"] for b in series) == 1 and sum(b["fallbacks"] for b in series) == 1
    assert body["total"]["window"] == window
    assert body["total"]["today"]["spend_usd"] == pytest.approx(charged, abs=1e-6)

    # The other tenant's key shows the other tenant only: one reasoning request.
    theirs = settled(server, f"sk-{b}", b, 1)
    assert [row["tenant"] for row in theirs["tenants"]] == [b]
    assert theirs["total"]["window"]["requests"] == 1
    assert theirs["total"]["window"]["reasoning"] == 1
    assert theirs["total"]["today"]["spend_usd"] == pytest.approx(
        float(other.headers["x-thinkroute-cost-usd"]), abs=1e-6
    )
    text = summary(server, f"sk-{b}").text
    assert a not in text and f"sk-{b}" not in text


def test_the_admin_key_sees_every_tenant(start, run_id, clean_upstream):
    server = start()
    a, b = f"{run_id}-a", f"{run_id}-b"
    sent = send_mixed_traffic(server, clean_upstream, f"sk-{a}")
    post(server, f"sk-{b}", CHAT)

    settled(server, ADMIN_KEY, b, 1)
    body = settled(server, ADMIN_KEY, a, len(sent))
    assert body["viewer"] == "admin"
    rows = {row["tenant"]: row for row in body["tenants"]}
    assert {a, b, "acme", "beta"} <= rows.keys()
    assert rows[a]["window"]["requests"] == 4 and rows[b]["window"]["requests"] == 1
    # Totals add up every tenant (acme and beta may hold other tests' traffic).
    total = body["total"]["window"]
    assert total["requests"] == sum(row["window"]["requests"] for row in rows.values())
    assert total["spend_usd"] == pytest.approx(
        sum(row["window"]["spend_usd"] for row in rows.values()), abs=1e-5
    )
    assert sum(b["fast"] + b["reasoning"] for b in body["series"]) == total["requests"]


def test_the_summary_needs_a_key_and_refuses_in_openai_shape(start, run_id):
    server = start()
    for key in (None, "sk-nobody-0123456789"):
        response = summary(server, key)
        assert response.status_code == 401
        assert response.json()["error"].keys() == OPENAI_ERROR_FIELDS
        assert response.json()["error"]["type"] == "authentication_error"
    assert summary(server, "").status_code == 401
    bad = summary(server, ADMIN_KEY, window_s="forever")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "window_s"
    assert summary(server, ADMIN_KEY, window_s=10).status_code == 400
    assert summary(server, ADMIN_KEY, window_s=3600).json()["bucket_s"] == 120
    # With the admin API off, a tenant key still sees its own figures, and the admin's no one's.
    closed = start(admin_key=None)
    assert summary(closed, f"sk-{run_id}-a").status_code == 200
    assert summary(closed, ADMIN_KEY).status_code == 401


def test_the_page_is_a_shell_without_data_served_from_the_package(start, run_id):
    server = start()
    post(server, f"sk-{run_id}-a", CHAT)
    page = httpx.get(f"{server.url}/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert run_id not in page.text  # no figure, no tenant name
    # Every asset the page names is served by the proxy itself: nothing from another host.
    assert "http://" not in page.text and "https://" not in page.text
    for asset, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        assert f"/dashboard/{asset}" in page.text
        response = httpx.get(f"{server.url}/dashboard/{asset}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
        assert "https://" not in response.text and "@import" not in response.text
    # Only those files: no path reaches another file of the package.
    for path in ("/dashboard/__init__.py", "/dashboard/..%2F__init__.py", "/dashboard/static"):
        assert httpx.get(f"{server.url}{path}").status_code == 404


def test_without_the_decision_log_only_todays_usage_is_shown(start, run_id):
    server = start(decision_log=False)
    response = post(server, f"sk-{run_id}-a", CHAT)
    body = summary(server, f"sk-{run_id}-a").json()
    assert body["decision_log"] is False and body["series"] == []
    (row,) = body["tenants"]
    assert row["window"] is None
    assert row["today"]["spend_usd"] == pytest.approx(
        float(response.headers["x-thinkroute-cost-usd"]), abs=1e-6
    )


def test_figures_of_entries():
    entries = [
        (1_000, {"served_tier": "fast", "cache": "hit", "total_ms": 2.0, "cost_usd": 0.0}),
        (2_000, {"served_tier": "fast", "cache": "miss", "total_ms": 40.0, "upstream_ms": 35.0,
                 "cost_usd": 0.001, "baseline_usd": 0.004}),
        (3_000, {"served_tier": "reasoning", "cache": "bypass", "total_ms": 900.0,
                 "upstream_ms": 880.0, "cost_usd": 0.01, "baseline_usd": 0.01, "status": 499,
                 "session_switch": True, "session_cache_cost_usd": 0.002}),
    ]  # fmt: skip
    figures = window_figures(entries)
    assert figures["session_switches"] == 1 and figures["session_cache_cost_usd"] == 0.002
    assert (figures["requests"], figures["fast"], figures["reasoning"]) == (3, 2, 1)
    assert figures["cache_hit_rate"] == 0.5 and figures["errors"] == 1
    assert figures["savings_usd"] == pytest.approx(0.003)
    assert figures["savings_share"] == pytest.approx(0.003 / 0.014)
    assert figures["latency_ms"]["total"] == {"p50": 40.0, "p90": 900.0, "p99": 900.0}
    assert figures["latency_ms"]["upstream"]["p50"] == 35.0  # the hit never reached a model
    assert window_figures([])["cache_hit_rate"] is None
    assert percentile([], 50) is None and percentile([3, 1, 2], 50) == 2


def cascade_server(serve_on_redis, upstream, classifier, run_id: str) -> BackgroundServer:
    """A proxy whose tenants ``{run}-a`` and ``{run}-b`` score within the cascade's band."""
    config = cascade_config(upstream.base_url, f"{run_id}-a", others=[f"{run_id}-b"])
    return serve_on_redis(config, scorer=FixedScorer(classifier, NEAR_BELOW), admin_key=ADMIN_KEY)


def send_cascaded(server, upstream, tenant: str, *, agree: int, disagree: int) -> None:
    """``agree`` requests whose fast and verifier answers match, ``disagree`` that differ."""
    for fast, count, outcome in (("300", agree, "agreed"), ("290", disagree, "escalated")):
        answers(upstream, fast=f"The total is {fast}.", flash="Answer: 300")
        for _ in range(count):
            assert ask(server, tenant).headers["x-thinkroute-cascade"] == outcome


def test_todays_escalation_rate_is_each_tenants_own(
    serve_on_redis, clean_upstream, classifier, run_id
):
    server = cascade_server(serve_on_redis, clean_upstream, classifier, run_id)
    a, b = f"{run_id}-a", f"{run_id}-b"
    send_cascaded(server, clean_upstream, a, agree=3, disagree=1)
    send_cascaded(server, clean_upstream, b, agree=0, disagree=2)

    (row,) = summary(server, f"sk-{a}-key").json()["tenants"]
    assert row["tenant"] == a
    assert row["today"]["cascade"] == {"runs": 4, "agreed": 3, "kept": 0, "escalated": 1,
                                       "no_answer": 0, "fast_failed": 0,
                                       "escalation_rate": 0.25}  # fmt: skip
    body = summary(server, ADMIN_KEY).json()
    rows = {row["tenant"]: row for row in body["tenants"]}
    assert rows[b]["today"]["cascade"]["escalation_rate"] == 1.0
    total = body["total"]["today"]["cascade"]
    # Other tenants of the shared Redis ran no cascade: the total is these two.
    assert (total["runs"], total["escalated"]) == (6, 3) and total["escalation_rate"] == 0.5


# -- the page in a real browser ---------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1360,1320",
)  # fmt: skip
# A path to copy the admin view's screenshot to, to look at it (the README's
# docs/dashboard.png shows a longer run of traffic than this test sends).
SCREENSHOT_ENV = "THINKROUTE_DASHBOARD_SCREENSHOT"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Debian's headless chromium with a fresh profile; never a downloaded browser."""
    # Fails, never skips: CI installs chromium (.ci/run), and a missing browser is a bug there.
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), (
        "install Debian's chromium and chromium-driver: apt-get install chromium chromium-driver"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=ChromeService(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def rendered(driver: webdriver.Chrome, state: str = "ready") -> None:
    WebDriverWait(driver, 20).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == state
    )


# The page redraws every few seconds: each read is one script, so no element it reads
# is replaced halfway through.
def values(driver: webdriver.Chrome, selector: str) -> list[float]:
    """The ``data-value`` of every SVG element ``selector`` matches."""
    found = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.dataset.value);", selector
    )
    return [float(value) for value in found]


def cells(driver: webdriver.Chrome, tenant: str) -> list[str]:
    """The text of the tenant's row in the table ([] while it has none)."""
    return driver.execute_script(
        "const row = [...document.querySelectorAll('#tenants tbody tr')]"
        "  .find(r => r.dataset.tenant === arguments[0]);"
        "return row ? [...row.cells].map(c => c.textContent) : [];",
        tenant,
    )


def texts(
    driver: webdriver.Chrome, selector: str, attribute: str, part: str | None = None
) -> dict[str, str]:
    """``{data-<attribute>: its text}`` of every element ``selector`` matches (the text of
    its descendant ``part``, if given)."""
    return driver.execute_script(
        "return Object.fromEntries([...document.querySelectorAll(arguments[0])]"
        "  .map(e => [e.dataset[arguments[1]],"
        "    (arguments[2] ? e.querySelector(arguments[2]) : e).textContent]));",
        selector,
        attribute,
        part,
    )


def test_the_page_draws_live_figures_in_a_real_browser(
    start, run_id, clean_upstream, browser, tmp_path
):
    server = start()
    a, b = f"{run_id}-a", f"{run_id}-b"
    sent = send_mixed_traffic(server, clean_upstream, f"sk-{a}")
    post(server, f"sk-{b}", OLYMPIAD)
    settled(server, ADMIN_KEY, b, 1)
    today = settled(server, f"sk-{a}", a, len(sent))["tenants"][0]["today"]

    # A tenant types its key: its own figures, drawn.
    browser.get(f"{server.url}/dashboard")
    rendered(browser, "locked")
    browser.find_element(By.ID, "key").send_keys(f"sk-{a}")
    browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
    rendered(browser)
    assert browser.find_element(By.ID, "scope").text == f"tenant {a}"
    assert list(texts(browser, "#tenants tbody tr", "tenant")) == [a]
    assert cells(browser, a)[:3] == [a, "4", "3 / 1"]
    assert sum(values(browser, "#chart-split rect.bar.fast")) == 3
    assert sum(values(browser, "#chart-split rect.bar.reasoning")) == 1
    assert sum(values(browser, "#chart-cache rect.bar.hit")) == 1
    assert sum(values(browser, "#chart-cache rect.bar.fallback")) == 1
    assert values(browser, '#chart-spend rect[data-series="spend"]') == [
        pytest.approx(today["spend_usd"], abs=1e-6)
    ]
    baseline = today["spend_usd"] + today["estimated_savings_usd"]
    assert values(browser, '#chart-spend rect[data-series="baseline"]') == [
        pytest.approx(baseline, abs=1e-6)
    ]
    assert len(values(browser, "#chart-latency circle.point")) >= 2  # p50 and p95
    tiles = texts(browser, "#tiles .tile", "tile", ".value")
    assert tiles["requests"] == "4" and tiles["reasoning-share"] == "25.0%"
    assert tiles["cache"] == "50.0%" and tiles["fallbacks"] == "1"
    assert b not in browser.find_element(By.TAG_NAME, "body").text

    # Live: a new request shows up on the next refresh, without reloading the page.
    assert post(server, f"sk-{a}", "name three rivers in Europe").status_code == 200
    WebDriverWait(browser, 20).until(lambda d: cells(d, a)[1:2] == ["5"])
    browser.save_screenshot(str(tmp_path / "dashboard-tenant.png"))

    # The admin key in the URL fragment: every tenant, and the key leaves the address bar.
    browser.find_element(By.ID, "forget").click()
    rendered(browser, "locked")
    stored = "return [sessionStorage.length, localStorage.length, document.cookie]"
    assert browser.execute_script(stored) == [0, 0, ""]  # forgotten, and never kept elsewhere
    browser.get("about:blank")
    browser.get(f"{server.url}/dashboard#key={ADMIN_KEY}")
    rendered(browser)
    assert ADMIN_KEY not in browser.current_url and browser.current_url.endswith("/dashboard")
    assert browser.find_element(By.ID, "scope").text.startswith("all tenants")
    assert cells(browser, a)[1] == "5" and cells(browser, b)[:3] == [b, "1", "0 / 1"]
    assert {a, b} <= set(texts(browser, '#chart-spend rect[data-series="spend"]', "tenant"))
    # The page broke no rule of its Content-Security-Policy and hit no error.
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    shot = tmp_path / "dashboard-admin.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(shot, os.environ[SCREENSHOT_ENV])


def test_the_page_shows_each_tenants_session_switches(start, run_id, clean_upstream, browser):
    server = start()
    a = f"{run_id}-a"
    session = {"x-session-id": "dash-1"}
    first = post(server, f"sk-{a}", CHAT, headers=session)
    assert first.headers["x-thinkroute-tier"] == "fast"
    follow_up = {"model": "auto", "messages": [
        {"role": "user", "content": CHAT}, {"role": "assistant", "content": "Sure."},
        {"role": "user", "content": OLYMPIAD}]}  # fmt: skip
    second = httpx.post(f"{server.url}/v1/chat/completions", json=follow_up, timeout=30,
                        headers={"authorization": f"Bearer sk-{a}", **session})  # fmt: skip
    # The test prices name no cache price: nothing is lost, and the score moves it.
    assert second.headers["x-thinkroute-reason"] == "session_switch_pays"
    settled(server, ADMIN_KEY, a, 2)

    browser.get(f"{server.url}/dashboard#key={ADMIN_KEY}")
    rendered(browser)
    column = browser.execute_script(
        "return [...document.querySelectorAll('#tenants thead th')].map(c => c.textContent)"
    ).index("session switches (cache lost)")
    switches, lost = cells(browser, a)[column].split(" ", 1)
    assert switches == "1" and lost.startswith("($0.0") and float(lost[2:-1]) == 0


def test_the_page_shows_each_tenants_escalation_rate(
    serve_on_redis, clean_upstream, classifier, run_id, browser
):
    server = cascade_server(serve_on_redis, clean_upstream, classifier, run_id)
    a, b = f"{run_id}-a", f"{run_id}-b"
    send_cascaded(server, clean_upstream, a, agree=3, disagree=1)
    send_cascaded(server, clean_upstream, b, agree=1, disagree=0)

    browser.get(f"{server.url}/dashboard#key={ADMIN_KEY}")
    rendered(browser)
    column = browser.execute_script(
        "return [...document.querySelectorAll('#tenants thead th')].map(c => c.textContent)"
    ).index("cascade escalated today")
    assert cells(browser, a)[column] == "25.0% (1 of 4)"
    assert cells(browser, b)[column] == "0.0% (0 of 1)"
    tiles = texts(browser, "#tiles .tile", "tile", ".value")
    assert tiles["cascade"] == "20.0%"  # 1 of the 5 runs, every tenant
    # A tenant's key shows its own rate only.
    browser.find_element(By.ID, "forget").click()
    rendered(browser, "locked")
    browser.get("about:blank")
    browser.get(f"{server.url}/dashboard#key=sk-{b}-key")
    rendered(browser)
    assert texts(browser, "#tiles .tile", "tile", ".value")["cascade"] == "0.0%"
    assert a not in browser.find_element(By.TAG_NAME, "body").text
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
