"""The verifier head: its features, training, the safe artifact, and the --cascade commands."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from classifier.cascade_data import read_cascade_records
from classifier.cascade_eval import cascade_report
from classifier.errors import ArtifactError, DataFormatError
from classifier.verifier import FEATURE_NAMES, VerifierHead, answer_features
from classifier.verifier_train import disagreement_scores, fit_verifier, verifier_scores
from router.cli import main

AGREE = FEATURE_NAMES.index("agree")
DISAGREE = FEATURE_NAMES.index("disagree")
UNDECIDED = FEATURE_NAMES.index("undecided")


@pytest.mark.parametrize(
    ("fast", "verifier", "flag"),
    [
        ("The answer is 12.", '{"answer": "12"}', AGREE),
        ("The answer is 12.", "The answer is 13.", DISAGREE),
        ("The answer is 12.", None, UNDECIDED),  # the verifier failed
        ("A lovely poem about rain and the smell of wet stone.", "The answer is 12.", UNDECIDED),
    ],
)
def test_features_say_whether_the_answers_agree(fast: str, verifier: str | None, flag: int) -> None:
    row = answer_features(0.3, fast, verifier)
    assert row.shape == (len(FEATURE_NAMES),)
    assert row[[AGREE, DISAGREE, UNDECIDED]].tolist() == [
        float(i == flag) for i in (AGREE, DISAGREE, UNDECIDED)
    ]
    assert row[FEATURE_NAMES.index("prompt_score")] == 0.3


def write_records(path: Path, n: int = 60) -> Path:
    """Synthetic cascade records: where the verifier disagrees, the fast model was wrong."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        disagree = i % 3 == 0
        fast_key, other_key = 10 + i, (20 + i if disagree else 10 + i)
        lines.append(
            {
                "id": f"synthetic/{i}",
                "source": "synthetic",
                "subset": "sums",
                "prompt": f"What is {i} plus {10}? Show the working.",
                "fast": {"model": "fast-m", "score": 0.0 if disagree else 1.0},
                "reasoning": {"model": "o1-mini-2024-09-12", "score": 1.0, "output_chars": 400},
                "fast_answers": [
                    {
                        "model": "fast-m",
                        "sample": 0,
                        "text": f"Adding up.\nThe answer is {fast_key}.",
                    },
                    {"model": "check-m", "sample": 0, "text": f'{{"answer": "{other_key}"}}'},
                    {"model": "fast-m", "sample": 1, "text": f"<answer>{fast_key}</answer>"},
                ],
                "noise": float(rng.random()),
            }
        )
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def test_a_trained_head_escalates_disagreement_first_and_round_trips(tmp_path: Path) -> None:
    records = read_cascade_records([write_records(tmp_path / "c.jsonl")])
    prompt_scores = np.full(len(records), 0.4)
    head = fit_verifier(records, prompt_scores)
    scores = verifier_scores(head, records, prompt_scores, "check-m")
    disagreeing = np.array([r.fast_score == 0.0 for r in records])
    assert scores[disagreeing].min() > scores[~disagreeing].max()
    saved = VerifierHead.load(head.save(tmp_path / "verifier.json"))
    assert np.allclose(verifier_scores(saved, records, prompt_scores, "check-m"), scores)


def test_the_disagreement_order_puts_differing_answers_first_then_the_prompt_score(
    tmp_path: Path,
) -> None:
    records = read_cascade_records([write_records(tmp_path / "c.jsonl")])
    prompt_scores = np.linspace(0.0, 1.0, len(records))
    scores = disagreement_scores(records, prompt_scores, "check-m")
    disagreeing = np.array([r.fast_score == 0.0 for r in records])
    assert scores[disagreeing].min() > scores[~disagreeing].max()
    # Within each group, the prompt-only order stands.
    for group in (disagreeing, ~disagreeing):
        assert np.all(np.diff(scores[group]) > 0)


def test_the_shipped_head_ranks_disagreement_above_agreement() -> None:
    head = VerifierHead.load()
    agree = answer_features(0.4, "The answer is 12.", '{"answer": "12"}')
    disagree = answer_features(0.4, "The answer is 12.", '{"answer": "7"}')
    assert head.score([disagree])[0] > head.score([agree])[0]
    assert set(head.thresholds_) == {"cheap", "balanced", "quality"}


def damaged(path: Path, change: object) -> Path:
    document = json.loads(VerifierHead.load().save(path).read_text())
    change(document)  # type: ignore[operator]
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d["numbers"]["coef"].__setitem__(0, 5.0), "checksum"),
        (lambda d: d.__setitem__("format", "thinkroute.gated-head/2"), "not a verifier head"),
        (lambda d: d["feature_names"].reverse(), "other features"),
        (lambda d: d["thresholds"].__setitem__("balanced", 7), "thresholds"),
    ],
)
def test_loading_refuses_a_damaged_head(tmp_path: Path, change: object, problem: str) -> None:
    with pytest.raises(ArtifactError, match=problem):
        VerifierHead.load(damaged(tmp_path / "v.json", change))


def test_loading_refuses_a_wrong_shape_even_with_a_matching_checksum(tmp_path: Path) -> None:
    from classifier.verifier import _checksum

    def shorten(document: dict) -> None:
        document["numbers"]["coef"] = document["numbers"]["coef"][:-1]
        document["checksum"] = _checksum(document["numbers"])

    with pytest.raises(ArtifactError, match="coef must hold"):
        VerifierHead.load(damaged(tmp_path / "v.json", shorten))


def test_loading_never_runs_a_pickle(tmp_path: Path) -> None:
    path = tmp_path / "v.json"
    path.write_bytes(pickle.dumps({"format": "thinkroute.verifier-head/1"}))
    with pytest.raises(ArtifactError, match="cannot read"):
        VerifierHead.load(path)


def test_a_record_without_answers_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "x", "prompt": "hi", "fast": {"model": "m", "score": 1}}\n')
    with pytest.raises(DataFormatError, match="bad.jsonl:1"):
        read_cascade_records([path])


def test_costs_cross_at_the_reported_break_even(tmp_path: Path) -> None:
    records = read_cascade_records([write_records(tmp_path / "c.jsonl")])
    order = np.array([1.0 - r.fast_score for r in records])
    # The prompt-only router knows half the prompts; a costly verifier makes the cascade
    # dearer while reasoning is cheap (few hidden tokens) and cheaper once it is not.
    prompt_scores = np.where(np.arange(len(records)) % 2 == 1, order, 0.5)
    given = {"fast-m": (0.15, 0.6), "check-m": (10.0, 40.0)}
    report = cascade_report(records, prompt_scores, order, verifier="check-m", given_prices=given)
    point = report["at_pgr"]["0.9"]
    assert point["cascade_share"] < point["prompt_only_share"]
    even = point["break_even_hidden_tokens"]
    assert even is not None and even > 0
    at_even = cascade_report(
        records, prompt_scores, order, verifier="check-m", given_prices=given, hidden_tokens=even
    )
    assert at_even["at_pgr"]["0.9"]["cost_ratio"] == pytest.approx(1.0, abs=0.01)
    cheaper = cascade_report(
        records,
        prompt_scores,
        order,
        verifier="check-m",
        given_prices=given,
        hidden_tokens=2 * even,
    )
    assert cheaper["at_pgr"]["0.9"]["cost_ratio"] < 1.0


def test_score_and_eval_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_records(tmp_path / "c.jsonl")
    head = VerifierHead.load()
    assert main(["score", "--cascade", "--verifier", "check-m", "--data", str(data)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["id"] for line in lines] == [f"synthetic/{i}" for i in range(60)]
    disagreeing = [line["score"] for i, line in enumerate(lines) if i % 3 == 0]
    agreeing = [line["score"] for i, line in enumerate(lines) if i % 3 != 0]
    assert min(disagreeing) > max(agreeing)
    assert all(
        (line["tier"] == "reasoning") == (line["score"] >= head.thresholds_["balanced"])
        for line in lines
    )
    price = ["--price", "fast-m=0.15/0.6", "--price", "check-m=0.075/0.3"]
    argv = ["eval", "--cascade", "--verifier", "self", "--data", str(data), "--json", *price]
    assert main([*argv, "--hidden-tokens", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verifier"] == "self" and report["hidden_tokens_per_visible"] == 2
    assert report["prices_usd_per_mtok"]["fast-m"]["source"] == "given"
    assert len(report["curve"]) == 11 and set(report["at_pgr"]) == {"0.5", "0.8", "0.9", "0.95"}
    with pytest.raises(SystemExit, match="--verifier"):
        main(["eval", "--cascade", "--data", str(data)])


def test_eval_plots_quality_against_cost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    data = write_records(tmp_path / "c.jsonl")
    price = ["--price", "fast-m=0.15/0.6", "--price", "check-m=0.075/0.3"]
    argv = ["eval", "--cascade", "--verifier", "check-m", "--data", str(data), "--json", *price]
    plot = tmp_path / "cost.png"
    assert (
        main([*argv, "--hidden-tokens", "3", "--order", "disagreement", "--plot", str(plot)]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    # Synthetic data where a differing verifier means a wrong fast answer: that order is
    # the oracle's, all of the gap recovered at the share of disagreements.
    assert report["order"] == "disagreement"
    assert report["cascade"]["cpt90"] <= 1 / 3 + 1e-9
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.size[0] > 400 and image.size[1] > 300
        image.verify()  # the whole file decodes
    # The curves drawn: random spends linearly from all-fast to all-reasoning.
    first, last = report["curve"][0], report["curve"][-1]
    assert first["random_usd_per_1k"] == pytest.approx(first["prompt_only_usd_per_1k"], rel=1e-3)
    assert last["random_usd_per_1k"] == pytest.approx(last["prompt_only_usd_per_1k"], rel=1e-3)
    assert first["random_quality"] < last["random_quality"]
    # The cascade pays its verifier on every prompt: dearer than fast alone at share 0.
    assert first["cascade_usd_per_1k"] > first["prompt_only_usd_per_1k"]
    with pytest.raises(SystemExit, match="cannot write"):
        main([*argv, "--plot", str(tmp_path / "no-such-dir" / "cost.png")])


def test_eval_prices_the_calls_as_the_configs_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_records(tmp_path / "c.jsonl")

    def config(reasoning_per_token: float) -> Path:
        def model(name: str, per_token: float) -> dict[str, object]:
            return {
                "model_name": name,
                "litellm_params": {"model": f"openai/{name}-model"},
                "model_info": {
                    "input_cost_per_token": per_token,
                    "output_cost_per_token": 4 * per_token,
                },
            }

        path = tmp_path / f"config-{reasoning_per_token}.yaml"
        document = {
            "model_list": [
                model("small", 1e-7),
                model("check", 5e-8),
                model("big", reasoning_per_token),
            ],  # fmt: skip
            "tiers": {"fast": {"model": "small"}, "reasoning": {"model": "big"}},
            "cascade": {"verifier": "check"},
        }
        path.write_text(json.dumps(document))  # YAML reads JSON
        return path

    argv = ["eval", "--cascade", "--verifier", "check-m", "--data", str(data), "--json"]
    reports = []
    for per_token in (1e-6, 2e-6):
        assert main([*argv, "--config", str(config(per_token))]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    prices = reports[0]["prices_usd_per_mtok"]
    assert prices == {
        "fast": {"input": 0.1, "output": 0.4, "source": "config:small"},
        "verifier": {"input": 0.05, "output": 0.2, "source": "config:check"},
        "reasoning": {"input": 1.0, "output": 4.0, "source": "config:big"},
    }
    # Everything to reasoning costs twice as much at twice the reasoning model's price;
    # all-fast is priced by the fast tier alone.
    cheap, dear = (report["curve"] for report in reports)
    assert dear[-1]["prompt_only_usd_per_1k"] == pytest.approx(
        2 * cheap[-1]["prompt_only_usd_per_1k"], rel=1e-3
    )
    assert dear[0]["prompt_only_usd_per_1k"] == cheap[0]["prompt_only_usd_per_1k"]
    with pytest.raises(SystemExit, match="--cascade"):
        main(["eval", "--data", str(data), "--config", str(config(1e-6))])
