"""The docs keep their promises.

- Every shell command in a ```sh block of README.md, docs/*.md and deploy/README.md is
  run here for real (against a live proxy in front of the simulated upstream and the
  test Redis, or on small files made from the docs' own examples), or, where that needs
  a long run, a daemon or a cluster, checked to parse: see ``RUN`` and ``PARSE_ONLY``.
  A command in neither fails.
- ``thinkroute --help`` and every subcommand's help are complete.
- docs/configuration.md is what ``router.config_reference`` renders now.
- docs/metrics.md lists every series the metrics registry holds, with its labels;
  docs/policy.md every reason and the shipped thresholds; docs/data-formats.md's
  examples are records ``classifier.data`` reads.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from classifier.data import read_records
from classifier.train import MODE_PGR_TARGETS
from router import policy
from router.cli import build_parser, main
from router.config import build_config, load_config
from router.config_reference import COMMAND, missing_descriptions, render
from router.http.server import create_app
from router.observe.metrics import Metrics, RequestOutcome
from router.policy import RouteDecision
from router.proxy import Router
from router.state.store import Store
from router.upstream.dispatch import configure_litellm
from router.upstream.simulator import BackgroundServer, SimulatedUpstream

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "deploy" / "README.md"]
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# The docs' local development key, given to the live proxy's tenant so curl lines run as written.
LOCAL_KEY = "sk-thinkroute-local-dev"
ADMIN_KEY = "sk-admin-docs-0123456789"
METRICS_KEY = "sk-metrics-docs-0123456789"
DOC_BASE = "localhost:8000"

# Run for real in this file.
RUN = {
    "thinkroute route", "thinkroute hash-key", "thinkroute score", "thinkroute eval",
    "thinkroute calibrate", "thinkroute export-decisions",
    "curl",  # against a live proxy with an admin key, Redis and the simulated upstream
    "assignment",  # NAME=value lines, kept for the block's later commands
    "python -c",  # executed in this process
}  # fmt: skip
# Checked to parse only, and why they are not run here.
PARSE_ONLY = {
    "make test": "runs the whole suite, this test included; `make -n` must accept it",
    "make serve": "a server that runs until stopped; `make -n` must accept it and CONFIG load",
    "thinkroute serve": "a server that runs until stopped; its --config must load (the "
    "proxy's own tests serve the same app)",
    "thinkroute sim-upstream": "a server that runs until stopped (tests/router/test_simulator.py "
    "runs the simulator)",
    "thinkroute train": "minutes on the full shared data (tests/router/test_cli.py trains on "
    "small data); its --data files must exist",
    "thinkroute explain-index": "a minute on the full shared data, and it rewrites the shipped "
    "index (tests/classifier/test_explain.py builds one on small data); its --data files must "
    "exist",
    "docker": "needs a Docker daemon and the network; the files it names and the Compose "
    "profile must exist (tests/deploy checks the Dockerfile and the Compose file)",
    "helm": "needs a cluster; a local chart must exist and take every --set key (tests/deploy "
    "renders the chart)",
    "kubectl": "needs a cluster",
    "thinkroute heads": "needs a tenant's graded shadow pairs in Redis (tests/router/test_heads.py "
    "runs train, list, rollback and calibrate against them)",
}


# -- reading the docs -----------------------------------------------------------------


@dataclass
class Command:
    """One shell command of a doc, with what its block set before it and printed after it."""

    doc: str
    text: str
    setup: list[str] = field(default_factory=list)  # NAME=value lines earlier in the block
    expected: list[str] = field(default_factory=list)  # a transcript's output lines

    @property
    def words(self) -> list[str]:
        words = shlex.split(self.text, comments=True)
        return words[:-1] if words and words[-1] == "&" else words

    @property
    def kind(self) -> str:
        words = _without_assignments(self.words)
        if not words:
            return "assignment"
        program = Path(words[0]).name
        if program == "thinkroute":
            sub = next((w for w in words[1:] if not w.startswith("-")), None)
            return f"thinkroute {sub}" if sub else "thinkroute --help"
        if program == "make":
            return f"make {next(w for w in words[1:] if '=' not in w)}"
        if program == "python" and words[1:2] == ["-c"]:
            return "python -c"
        return program


def fenced(text: str, language: str) -> list[str]:
    """The bodies of the ```language blocks, also those indented inside a list item."""
    found = re.findall(rf"^([ \t]*)```{language}\n(.*?)^\1```", text, flags=re.M | re.S)
    return [textwrap.dedent(body) for _, body in found]


def shell_commands(doc: Path) -> list[Command]:
    commands: list[Command] = []
    for block in fenced(doc.read_text(encoding="utf-8"), "sh"):
        lines = block.splitlines()
        is_transcript = any(line.startswith("$ ") for line in lines)
        setup: list[str] = []
        pending = ""
        for line in lines:
            if is_transcript and not line.startswith("$ "):
                if commands and line.strip():
                    commands[-1].expected.append(line)
                continue
            pending += line.removeprefix("$ ")
            if pending.endswith("\\"):
                pending = pending[:-1]
                continue
            if pending.strip() and not pending.lstrip().startswith("#"):
                command = Command(doc.name, pending.strip(), setup=list(setup))
                commands.append(command)
                if command.kind == "assignment":
                    setup.append(command.text)
            pending = ""
    return commands


def _without_assignments(words: list[str]) -> list[str]:
    rest = list(words)
    while rest and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", rest[0]):
        rest.pop(0)
    return rest


def _assignments(words: list[str]) -> dict[str, str]:
    names = words[: len(words) - len(_without_assignments(words))]
    return dict(word.split("=", 1) for word in names)


COMMANDS = [command for doc in DOCS for command in shell_commands(doc)]


def ids(commands: list[Command]) -> list[str]:
    return [f"{c.doc}:{c.kind}:{i}" for i, c in enumerate(commands)]


def test_the_docs_have_commands_and_each_is_run_or_parse_checked():
    assert len(COMMANDS) > 10, "no ```sh blocks found: did the docs move?"
    unknown = [f"{c.doc}: {c.text}" for c in COMMANDS if c.kind not in RUN | PARSE_ONLY.keys()]
    assert not unknown, f"add these to RUN (with a runner) or PARSE_ONLY (with why): {unknown}"


# -- thinkroute commands parse, and their help is complete --------------------------------


def parse(argv: list[str]) -> argparse.Namespace | None:
    """The real CLI's parse of ``argv``; None for --help (argparse exits 0 after printing)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return build_parser().parse_args(argv)
    except SystemExit as exc:
        if exc.code == 0:
            return None
        raise AssertionError(f"thinkroute rejects {argv}") from exc


THINKROUTE = [c for c in COMMANDS if c.kind.startswith("thinkroute")]


@pytest.mark.parametrize("command", THINKROUTE, ids=ids(THINKROUTE))
def test_thinkroute_commands_in_the_docs_parse(command):
    parse(thinkroute_argv(command)[0])


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_thinkroute_help_lists_every_subcommand_with_a_summary(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summaries = {choice.dest: choice.help for choice in action._choices_actions}
    for name in subcommands():
        assert re.search(rf"^\s+{re.escape(name)}\b", out, flags=re.MULTILINE), name
        assert summaries.get(name), f"`thinkroute --help` has no summary for {name}"


@pytest.mark.parametrize("name", list(subcommands()))
def test_every_option_of_every_subcommand_has_help(name, capsys):
    parser = subcommands()[name]
    assert parser.description, f"thinkroute {name} has no description"
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and action.help != argparse.SUPPRESS, (
            f"thinkroute {name}: {'/'.join(action.option_strings) or action.dest} has no help"
        )
    with pytest.raises(SystemExit):
        main([name, "--help"])
    assert "usage: thinkroute " + name in capsys.readouterr().out


# -- commands checked to parse only -----------------------------------------------------------

PARSED = [c for c in COMMANDS if c.kind in PARSE_ONLY]


@pytest.mark.parametrize("command", PARSED, ids=ids(PARSED))
def test_long_running_commands_parse_and_their_inputs_exist(command):
    words = _without_assignments(command.words)
    env = {"THINKROUTE_API_KEY": LOCAL_KEY, **os.environ}
    if command.kind in ("docker", "helm", "kubectl"):
        check_deploy_command(command)
        return
    if command.kind.startswith("make "):
        done = subprocess.run(["make", "-n", "-C", str(ROOT), *words[1:]], capture_output=True,
                              text=True, timeout=60, env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        config = _assignments(words[1:]).get("CONFIG")
        if config:
            load_config(ROOT / config, env)
        return
    args = parse(thinkroute_argv(command)[0])
    assert args is not None
    if getattr(args, "config", None):
        load_config(ROOT / args.config, env)
    for path in getattr(args, "data", None) or []:
        if (ROOT.parent / "shared").is_dir():
            assert (ROOT / path).is_file(), f"{command.doc}: {path} does not exist"


def check_deploy_command(command: Command) -> None:
    """The files a docker or helm line names exist, and a local chart takes its --set keys."""
    words = command.words
    for name, value in _assignments(words).items():
        if name == "THINKROUTE_CONFIG":  # a path beside the Compose file
            assert (ROOT / "deploy" / value).is_file(), f"{command.doc}: no deploy/{value}"
    for i, word in enumerate(words[:-1]):
        if word == "-f":
            assert (ROOT / words[i + 1]).is_file(), f"{command.doc}: no {words[i + 1]}"
        if word == "--profile":
            compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
            profiles = {p for s in compose["services"].values() for p in s.get("profiles", [])}
            assert words[i + 1] in profiles, f"{command.doc}: no Compose profile {words[i + 1]}"
    plain = _without_assignments(words)
    if plain[:2] == ["helm", "install"] and not plain[3].startswith("oci://"):
        chart = ROOT / plain[3]
        values = yaml.safe_load((chart / "values.yaml").read_text())
        for i, word in enumerate(plain[:-1]):
            if word == "--set":
                key = plain[i + 1].split("=", 1)[0]
                assert takes_key(values, key.split(".")), f"{chart.name} has no value {key}"


def takes_key(values: Any, path: list[str]) -> bool:
    """Whether ``--set a.b.c=...`` names a value of the chart (``env`` maps are open)."""
    node = values
    for depth, part in enumerate(path):
        if not isinstance(node, dict):
            return False
        if part not in node:
            return path[depth - 1 : depth] == ["env"]
        node = node[part]
    return True


# -- commands run for real ----------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Where the docs' commands run: the files they name, made from the docs' own examples.

    records.jsonl, held-out.jsonl, traffic.jsonl, outcomes.jsonl: every JSON Lines example
    of docs/data-formats.md; my-head: a copy of the shipped head; acme.key: a key for
    hash-key; deploy/: the project's.
    """
    path = tmp_path_factory.mktemp("docs")
    examples = "".join(fenced((ROOT / "docs" / "data-formats.md").read_text(), "jsonl"))
    for name in ("records.jsonl", "held-out.jsonl", "traffic.jsonl", "outcomes.jsonl"):
        (path / name).write_text(examples, encoding="utf-8")
    shutil.copytree(ROOT / "classifier" / "default", path / "my-head")
    (path / "acme.key").write_text("sk-acme-docs-0123456789\n")
    (path / "deploy").symlink_to(ROOT / "deploy")
    return path


@dataclass
class LiveProxy:
    url: str
    tenant: str  # stands in for the docs' "globex", unique to this run
    issued: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def live_proxy() -> Iterator[LiveProxy]:
    """A proxy with the docs' local key and an admin key, on Redis, before a simulated upstream."""
    configure_litellm()
    with SimulatedUpstream() as upstream:
        models = [
            {"model_name": name, "litellm_params": {"model": f"openai/{name}-model",
             "api_base": upstream.base_url, "api_key": "sim"}}
            for name in ("fast", "reasoning")
        ]  # fmt: skip
        config = build_config({
            "model_list": models,
            "tiers": {"fast": {"model": "fast"},
                      "reasoning": {"model": "reasoning", "reasoning_effort": "medium"}},
            "tenants": [{"name": "docs-local", "api_keys": [LOCAL_KEY]}],
            "dispatch": {"num_retries": 0, "timeout_s": 10},
        })  # fmt: skip
        store = Store.from_url(REDIS_URL, timeout_s=5.0)
        router = Router(config=config, store=store)
        app = create_app(router, admin_key=ADMIN_KEY, metrics_key=METRICS_KEY)
        with BackgroundServer(app) as server:
            proxy = LiveProxy(server.url, tenant=f"docs{uuid.uuid4().hex[:8]}")
            # One answered request, so every per-request series has a sample to look at.
            httpx.post(f"{server.url}/v1/chat/completions", headers=bearer(LOCAL_KEY),
                       json={"model": "auto", "messages": [{"role": "user", "content": "Hi"}]},
                       timeout=30).raise_for_status()  # fmt: skip
            yield proxy
            httpx.delete(f"{server.url}/v1/tenants/{proxy.tenant}", headers=bearer(ADMIN_KEY))


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def thinkroute_argv(command: Command) -> tuple[list[str], str | None]:
    """The arguments after ``thinkroute``, and a file redirected to stdin (``< FILE``)."""
    words = _without_assignments(command.words)
    stdin = None
    if "<" in words:
        at = words.index("<")
        stdin, words = words[at + 1], words[:at] + words[at + 2 :]
    return words[1:], stdin


RAN = [c for c in COMMANDS if c.kind in RUN and c.kind != "assignment"]


@pytest.mark.parametrize("command", RAN, ids=ids(RAN))
def test_commands_in_the_docs_run(command, workdir, live_proxy, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    if command.kind == "curl":
        output = run_curl(command, live_proxy, workdir)
    elif command.kind == "python -c":
        for name, value in _assignments(command.words).items():
            monkeypatch.setenv(name, value)
        exec(compile(_without_assignments(command.words)[2], command.doc, "exec"), {})
        return
    else:
        for name, value in _assignments(command.words).items():
            monkeypatch.setenv(name, REDIS_URL if name == "REDIS_URL" else value)
        argv, stdin = thinkroute_argv(command)
        if stdin:
            monkeypatch.setattr(sys, "stdin", io.StringIO((workdir / stdin).read_text()))
        assert main(argv) == 0, capsys.readouterr().err
        output = capsys.readouterr().out
        check_output(command, argv, output)
    # A transcript's shown tier is the one the command gives now.
    for shown in command.expected:
        tier = re.search(r'^tier: (\w+)|"tier": "(\w+)"', shown)
        if tier:
            assert re.search(rf'^tier: {tier[1] or tier[2]}$|"tier": "{tier[1] or tier[2]}"',
                             output, flags=re.MULTILINE), (command.text, output)  # fmt: skip


def check_output(command: Command, argv: list[str], output: str) -> None:
    """What each command promises to print."""
    sub = argv[0]
    if sub == "hash-key":
        assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", output)
    elif sub == "score":
        rows = [json.loads(line) for line in output.splitlines()]
        assert rows and all(set(row) == {"id", "score", "tier"} for row in rows)
    elif sub in ("calibrate",) or (sub == "eval" and "--json" in argv):
        assert "threshold" in output and json.loads(output)
    elif sub == "route":
        assert "tier" in output
    elif sub == "export-decisions":
        assert output.startswith("thinkroute: wrote ")


def run_curl(command: Command, proxy: LiveProxy, workdir: Path) -> str:
    """Run a curl line as written, against the live proxy, after its block's assignments."""
    text = command.text.replace(DOC_BASE, proxy.url.removeprefix("http://"))
    text = text.replace("globex", proxy.tenant)
    if "<key id>" in text:
        text = text.replace("<key id>", issued_key_id(proxy))
    script = "\n".join([*command.setup, text])
    env = {**os.environ, "THINKROUTE_ADMIN_KEY": ADMIN_KEY, "THINKROUTE_METRICS_KEY": METRICS_KEY}
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=workdir, env=env)  # fmt: skip
    assert done.returncode == 0, (command.text, done.stderr)
    output = done.stdout
    status = re.match(r"HTTP/[\d.]+ (\d+)", output)
    assert status is None or status[1].startswith("2"), output[:500]
    assert '"error"' not in output, (command.text, output[:500])
    if "/keys" in text and "-X POST" in text:
        proxy.issued["id"] = json.loads(output)["id"]
    return output


def issued_key_id(proxy: LiveProxy) -> str:
    """The id of a key issued by an earlier doc command (one is issued here if none was)."""
    if "id" not in proxy.issued:
        response = httpx.post(f"{proxy.url}/v1/tenants/{proxy.tenant}/keys",
                              headers=bearer(ADMIN_KEY))  # fmt: skip
        response.raise_for_status()
        proxy.issued["id"] = response.json()["id"]
    return proxy.issued["id"]


# -- generated and checked pages ---------------------------------------------------------------


def test_configuration_reference_is_current():
    current = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert current == render(), f"docs/configuration.md is out of date: run `.venv/bin/{COMMAND}`"


def test_every_config_key_has_a_description():
    assert missing_descriptions() == [], (
        "add Field(description=...) in router/config.py (or router/state/cache.py), then run "
        f"`.venv/bin/{COMMAND}`"
    )


def documented_series() -> dict[str, tuple[str, set[str]]]:
    """docs/metrics.md's table: series name -> (type, labels)."""
    rows = re.findall(r"^\| `(thinkroute_\w+)` \| (\w+) \|([^|]*)\|",
                      (ROOT / "docs" / "metrics.md").read_text(), flags=re.MULTILINE)  # fmt: skip
    return {name: (kind, set(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


def test_metrics_page_lists_every_series_with_its_type_and_labels():
    metrics = Metrics()
    # A request that touches every series: routed, cache miss, fallback, and a refusal code.
    decision = RouteDecision("reasoning", 0.9, 0.4, "balanced", policy.ABOVE_THRESHOLD, "r")
    metrics.observe(RequestOutcome("r1", 0.0, tenant="t", decision=decision, served_model="f",
                                   is_fallback=True, cache="miss", error_code="rate_limited",
                                   status=429, cost_usd=0.1, baseline_usd=0.2,
                                   cascade="escalated"))  # fmt: skip
    metrics.set_quality("t", {"compared": 3, "agreement": 0.5, "quality_kept": 0.9,
                              "quality_kept_95": [0.8, 1.0], "shadow_spend_usd": 0.01})  # fmt: skip
    exported = {}
    for family in metrics.registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {key for sample in family.samples for key in sample.labels} - {"le"}
        assert family.samples, f"{name}: observe it in this test so its labels can be checked"
        exported[name] = (family.type, labels)
    assert documented_series() == exported


def test_policy_page_lists_every_reason_and_the_shipped_thresholds():
    text = (ROOT / "docs" / "policy.md").read_text()
    reasons = {v for k, v in vars(policy).items() if k.isupper() and isinstance(v, str)}
    table = set(re.findall(r"^\| `(\w+)` \|", text.split("## Reasons", 1)[1], flags=re.M))
    assert table == reasons
    head = json.loads((ROOT / "classifier" / "default" / "head.json").read_text())
    for mode, threshold in head["thresholds"].items():
        share = f"{MODE_PGR_TARGETS[mode]:.0%}"
        assert f"| `{mode}` | {share} | {threshold:.4f} |" in text, (mode, share, threshold)


def test_data_format_examples_are_records_the_classifier_reads(tmp_path):
    text = (ROOT / "docs" / "data-formats.md").read_text()
    records = []
    for i, block in enumerate(fenced(text, "jsonl")):
        (tmp_path / f"{i}.jsonl").write_text(block)
        records += read_records(tmp_path / f"{i}.jsonl")
    for i, block in enumerate(fenced(text, "csv")):
        (tmp_path / f"{i}.csv").write_text(block)
        records += read_records(tmp_path / f"{i}.csv")
    kinds = {r.pair or f"prompt:{r.expected_tier}" for r in records}
    assert kinds == {"fast/reasoning", "weak/strong", "prompt:fast", "prompt:reasoning"}
    assert len({r.id for r in records}) == len(records)
    # The chat example is scored on its follow-up plus the question it follows.
    chat = next(r for r in records if r.id == "demo/chat/13")
    assert "and 97?" in chat.text and "Is 91 prime?" in chat.text
    (score_line,) = [json.loads(line) for line in fenced(text, "json")[0].splitlines()]
    assert set(score_line) == {"id", "score", "tier"}
