"""The ``thinkroute`` commands end to end, on small data and the real embedding model."""

import json
import os
import subprocess
import sys

import pytest

from router.cli import main

CHAT = [
    "Hi! How are you today?",
    "Write a short thank-you note to my neighbour.",
    "What is a good name for a golden retriever puppy?",
    "Suggest three fun things to do in Paris on a rainy day.",
    "Tell me a joke about cats.",
    "Rewrite this sentence to sound friendlier: send the report now.",
]
HARD = [
    "Find all integer solutions of x^3 + y^3 = z^3 + 1 with |x|, |y|, |z| < 100.",
    "Let ABC be a triangle with incenter I. Prove that AI * BI * CI <= 8R^3/27.",
    "Determine the number of 7-digit palindromes divisible by 11 whose digits sum to 35.",
    "Prove that for every prime p > 3, p^2 - 1 is divisible by 24.",
    "Compute the sum of all n < 1000 such that n^2 + 1 has a prime factor greater than 2n.",
    "Find the minimum of (a+b+c)(1/a+1/b+1/c) over positive reals with abc = 1, with proof.",
]


def records():
    rows = []
    for i, text in enumerate(CHAT):
        rows.append({"id": f"chat/{i}", "source": "chat", "prompt": text, "expected_tier": "fast"})
    for i, text in enumerate(HARD):
        rows.append(
            {"id": f"hard/{i}", "source": "olympiad", "prompt": text, "expected_tier": "reasoning"}
        )
    for i, text in enumerate(HARD + CHAT):
        # The reasoning model wins the hard ones, each by its own margin: a tree
        # head gives prompts with one outcome one score, and ties cannot be split.
        fast = i / 10 if i < len(HARD) else 1.0
        rows.append(
            {
                "id": f"outcome/{i}",
                "source": "bench",
                "subset": "mix",
                "prompt": text,
                "fast": {"score": fast},
                "reasoning": {"score": 1.0},
            }
        )
    return rows


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_file):
    out = tmp_path_factory.mktemp("model")
    assert main(["train", "--data", str(data_file), "--out", str(out), "--quiet"]) == 0
    return out


def test_train_writes_artifact_and_card(trained):
    document = json.loads((trained / "head.json").read_text())
    assert set(document["thresholds"]) == {"cheap", "balanced", "quality"}
    card = (trained / "MODEL_CARD.md").read_text()
    assert "all-MiniLM-L6-v2" in card and "Operating points" in card


def test_eval_json_reports_metrics_baselines_and_tiers(trained, data_file, capsys, tmp_path):
    plot = tmp_path / "curve.png"
    assert (
        main(
            [
                "eval",
                "--data",
                str(data_file),
                "--model",
                str(trained),
                "--json",
                "--plot",
                str(plot),
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 24
    assert 0.0 <= report["apgr"] <= 1.5 and report["cpt50"] is not None
    assert report["baselines"]["random"]["apgr"] == 0.5
    assert report["by_source"]["bench"]["n"] == 12
    assert report["tiers"]["fast"]["n"] == 6 and report["tiers"]["reasoning"]["n"] == 6
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_without_outcomes_reports_null_metrics(trained, tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "p", "prompt": "Hello", "expected_tier": "fast"}) + "\n")
    assert main(["eval", "--data", str(prompts), "--model", str(trained), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["apgr"], report["cpt50"], report["cpt80"]) == (None, None, None)
    assert report["tiers"]["fast"]["n"] == 1


def test_score_prints_one_line_per_record(trained, data_file, capsys):
    assert (
        main(["score", "--data", str(data_file), "--model", str(trained), "--mode", "quality"]) == 0
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["id"] for line in lines] == [r["id"] for r in records()]
    assert all(
        0.0 <= line["score"] <= 1.0 and line["tier"] in ("fast", "reasoning") for line in lines
    )


def test_calibrate_hits_the_requested_share(trained, data_file, capsys):
    assert (
        main(
            [
                "calibrate",
                "--data",
                str(data_file),
                "--model",
                str(trained),
                "--target-reasoning-share",
                "0.25",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["reasoning_share"] == pytest.approx(0.25)
    assert result["always_fast_usd_per_1k_requests"] < result["usd_per_1k_requests"]
    assert result["usd_per_1k_requests"] < result["always_reasoning_usd_per_1k_requests"]


def test_route_with_a_trained_model(trained, capsys):
    assert main(["route", "--json", "--model", str(trained), "Tell me a joke about dogs."]) == 0
    decision = json.loads(capsys.readouterr().out)
    assert decision["mode"] == "balanced" and 0.0 <= decision["score"] <= 1.0


def test_shipped_head_separates_chit_chat_from_an_olympiad_problem(capsys):
    olympiad = (
        "Let n be a positive integer. Find all functions f from the integers to the "
        "integers such that f(m + f(n)) = f(m) + n for all integers m and n."
    )
    tiers = []
    for question in ("hey! what's up? hope your weekend was fun", olympiad):
        assert main(["route", "--json", question]) == 0
        tiers.append(json.loads(capsys.readouterr().out)["tier"])
    assert tiers == ["fast", "reasoning"]


def test_route_shows_the_tier_model_and_effort_a_configured_proxy_would_use(tmp_path, capsys):
    def model(name: str, upstream: str) -> dict:
        params = {"model": upstream, "api_base": "http://127.0.0.1:9/v1", "api_key": "sk-none"}
        return {"model_name": name, "litellm_params": params}

    config = tmp_path / "thinkroute.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "model_list": [model("small", "openai/gpt-4o-mini"), model("big", "openai/o4-mini")],
        "tiers": {"fast": {"model": "small"},
                  "reasoning": {"model": "big", "reasoning_effort": "high"}},
    }))  # fmt: skip
    olympiad = "Prove that there are infinitely many primes p such that p + 2 is also prime."
    assert main(["route", "--config", str(config), "--mode", "quality", olympiad]) == 0
    shown = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert (shown["tier"], shown["model"]) == ("reasoning", "big")
    assert shown["effort"] in ("medium", "high")  # the tier's, one step down near the threshold
    assert main(["route", "--config", str(config), "--json", "hi there!"]) == 0
    fast = json.loads(capsys.readouterr().out)
    assert (fast["tier"], fast["model"], fast["reasoning_effort"]) == ("fast", "small", None)


def test_route_explain_names_the_nearest_training_kinds_never_their_text(
    capsys, tmp_path, monkeypatch
):
    # From an empty directory: the index's "../shared/data" paths lead nowhere, so an
    # answer here comes from the committed artifacts alone.
    monkeypatch.chdir(tmp_path)
    olympiad = "Prove that there are infinitely many primes p such that p + 2 is also prime."
    assert main(["route", "--explain", olympiad]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["tier"] and answer["explanation"]
    evidence = answer["score_evidence"]
    assert evidence["score"] == pytest.approx(answer["score"], abs=1e-6)
    nearest = evidence["nearest_kinds"]
    assert len(nearest) == 3 and all("/" in kind["kind"] for kind in nearest)
    assert "proof_request" in evidence["cues"]
    assert main(["route", "--json", olympiad]) == 0
    assert "score_evidence" not in json.loads(capsys.readouterr().out)  # only when asked


def test_bad_data_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "prompt": "hi"}\n')
    assert main(["train", "--data", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert f"{bad}:1: no outcome" in capsys.readouterr().err


def test_damaged_model_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "head.json").write_text("{")
    assert main(["route", "--model", str(tmp_path), "hello"]) == 2
    assert "damaged" in capsys.readouterr().err


def test_hash_key_prints_a_digest_a_config_accepts(capsys, monkeypatch):
    from router.config import build_config

    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("sk-hashed-0123456789\n"))
    assert main(["hash-key"]) == 0
    digest = capsys.readouterr().out.strip()
    assert digest.startswith("sha256:") and "sk-hashed" not in digest
    config = build_config({"tenants": [{"name": "acme", "api_key_hashes": [digest]}]})
    from router.config import hash_api_key

    assert config.tenants[0].key_digests == [hash_api_key("sk-hashed-0123456789")]


@pytest.mark.parametrize(("setting", "expected"), [(None, "True"), ("False", "False")])
def test_litellm_uses_its_bundled_prices_unless_told_otherwise(setting, expected):
    """Importing thinkroute must not send LiteLLM to GitHub for prices (seconds offline)."""
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    if setting is not None:
        env["LITELLM_LOCAL_MODEL_COST_MAP"] = setting
    code = "import os, router.upstream; print(os.environ['LITELLM_LOCAL_MODEL_COST_MAP'])"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == expected
