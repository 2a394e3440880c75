"""Training the router (bench/router_fit.py, bench/router_train.py) on a few prompts written
here: deterministic fits, the vocabulary rule, pruning, leave-one-source-out, threshold tuning,
and a weights file the runtime scores exactly as the training did. Needs numpy, which only
training does: skipped without it."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

import pytest

np = pytest.importorskip("numpy")

from bench import router_train  # noqa: E402
from bench.router_fit import Hyper, Operating, choose, loso, predict, train, tune  # noqa: E402
from gateway.routing import heuristic, linear  # noqa: E402
from gateway.routing.features import extract  # noqa: E402
from gateway.routing.vocabulary import UNWEIGHED  # noqa: E402

ACCEPTABLE = {
    "general": ["gpt-4o"],
    "stem": ["gpt-4o", "o1-mini"],
    "hard-stem": ["o1-mini", "o1-preview"],
    "hard-science": ["o1-preview"],
}
PROMPTS = {
    "general": [
        "Write a poem about the sea for my grandmother",
        "Draft a friendly email to my team about the party",
        "Suggest a catchy slogan for a bakery",
        "Summarize this story about a dragon for children",
    ],
    "stem": [
        "Write a python function that reverses a list",
        "Compute the average of these numbers: 3, 5, 7",
        "Fix this python loop that prints a list twice",
        "What is 15 percent of 80 apples?",
    ],
    "hard-stem": [
        "Prove that every integer polynomial with these roots is irreducible",
        "Find all primes p such that p squared plus two is prime, and prove it",
        "Prove the inequality for all positive reals and find when equality holds",
        "Determine all integer solutions of the diophantine equation",
    ],
    "hard-science": [
        "Calculate the photon wavelength emitted by the hydrogen electron transition",
        "Compute the entropy change of an ideal gas in an adiabatic expansion",
        "Find the electric field of a charged sphere and the capacitor energy",
        "Estimate the reaction enthalpy and the equilibrium constant at 300 K",
    ],
}


def rows() -> list[dict[str, Any]]:
    out = []
    for name, prompts in PROMPTS.items():
        for i, prompt in enumerate(prompts):
            out.append(
                {
                    "prompt": prompt,
                    "class": name,
                    "acceptable": ACCEPTABLE[name],
                    "source": f"source-{i % 2}",
                }
            )
    return out


HYPER = Hyper(l2=0.1, min_sources=1)


def fitted(hyper: Hyper = HYPER) -> Any:
    examples = router_train.examples_of(rows(), 4096)
    return train(examples, list(range(len(examples))), 4, hyper), examples


def test_training_is_deterministic_and_fits_its_rows() -> None:
    first, examples = fitted()
    second, _ = fitted()
    assert first.words == second.words
    assert np.array_equal(first.word_weights, second.word_weights)
    assert np.array_equal(first.signal_weights, second.signal_weights)
    probs = predict(first, examples, list(range(len(examples))))
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert (probs.argmax(axis=1) == [e.label for e in examples]).mean() >= 0.9


def test_a_word_needs_two_sources_and_stop_words_never_count() -> None:
    model, examples = fitted(Hyper(l2=0.1, min_sources=2))
    by_source: dict[str, set[str]] = {}
    for example in examples:
        by_source.setdefault(example.source, set()).update(example.words)
    assert set(model.words) == by_source["source-0"] & by_source["source-1"]
    assert "prove" in model.words  # in both sources
    assert "python" not in model.words  # in one
    every = {w for e in examples for w in e.words}
    assert not {w.encode() for w in every} & UNWEIGHED
    assert all(len(w) > 1 or not w.isascii() or not w.isalpha() for w in every)


def test_only_the_strongest_words_are_kept() -> None:
    model, _ = fitted(Hyper(l2=0.1, min_sources=1, max_words=10))
    assert len(model.words) == 10
    assert list(model.words) == sorted(model.words)


def test_leave_one_source_out_scores_each_source_with_a_model_fitted_without_it() -> None:
    examples = router_train.examples_of(rows(), 4096)
    probs, sources = loso(examples, 4, HYPER)
    assert sources == ["source-0", "source-1"]
    assert probs.shape == (len(examples), 4)
    assert np.allclose(probs.sum(axis=1), 1.0)
    held = [i for i, e in enumerate(examples) if e.source == "source-0"]
    rest = [i for i, e in enumerate(examples) if e.source != "source-0"]
    alone = predict(train(examples, rest, 4, HYPER), examples, held)
    assert np.allclose(probs[held], alone)


def test_the_runtime_scores_the_weights_file_as_training_predicted() -> None:
    model, examples = fitted()
    provenance = {key: None for key in linear.PROVENANCE_KEYS}
    tuned = Operating(0.5, 0.4, 1.0, 0.3, 0.0, 0.0)
    runtime = linear.load(router_train.weights_json(model, tuned, provenance).encode())
    assert (runtime.mini_threshold, runtime.preview_threshold) == (0.5, 0.4)
    expected = predict(model, examples, list(range(len(examples))))
    for row, probs in zip(rows(), expected, strict=True):
        got = runtime.score(extract(row["prompt"], 4096)).probabilities
        # Weights are stored in thousandths: the probabilities agree to about that.
        assert list(got.values()) == pytest.approx(list(probs), abs=0.01)


def test_choose_is_the_runtime_policy() -> None:
    texts = [p for prompts in PROMPTS.values() for p in prompts]
    policy, model = heuristic.DEFAULT, heuristic.MODEL
    probs = np.array([list(model.score(extract(t, 4096)).probabilities.values()) for t in texts])
    tiers = choose(probs, 0, 3, model.mini_threshold, model.preview_threshold)
    models = (policy.general_model, policy.mini_model, policy.preview_model)
    assert [models[t] for t in tiers] == [heuristic.route_text(t).model for t in texts]


def test_tuning_keeps_the_cost_cap_and_balances_the_misroutes() -> None:
    # Two rows: a general one (cheap tier 0) and a hard-science one (tier 2).
    probs = np.array([[0.8, 0.1, 0.0, 0.1], [0.3, 0.1, 0.0, 0.6]])
    labels = np.array([0, 3])
    acceptable = np.array([[True, False, False], [False, False, True]])
    costs = np.array([[1.0, 5.0, 25.0], [1.0, 5.0, 25.0]])
    best = tune(probs, labels, acceptable, costs, [2, 3], max_cost=0.6)
    assert best.acceptable == 1.0 and best.cost_ratio <= 0.6
    assert (best.hard_to_general, best.general_to_reasoning) == (0.0, 0.0)
    assert list(choose(probs, 0, 3, best.mini_threshold, best.preview_threshold)) == [0, 2]
    with pytest.raises(ValueError, match=r"no thresholds keep the cost within 0\.01"):
        tune(probs, labels, acceptable, costs, [2, 3], max_cost=0.01)


def test_the_command_line_changes_only_the_hyperparameters_it_names() -> None:
    parser = argparse.ArgumentParser()
    for flag, kind, _ in router_train.HYPER_FLAGS:
        parser.add_argument(flag, type=kind)
    default = Hyper()
    assert router_train.hyper_of(parser.parse_args([]), default) == default
    changed = router_train.hyper_of(parser.parse_args(["--l2", "2", "--min-sources", "3"]), default)
    assert changed == dataclasses.replace(default, l2=2.0, min_sources=3)


def test_the_command_trains_a_weights_file_the_runtime_loads(tmp_path: Any) -> None:
    data = tmp_path / "labeled.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows()))
    out = tmp_path / "weights.json"
    assert router_train.main(["--data", str(data), "--out", str(out), "--min-sources", "1"]) == 0
    model = linear.load(out.read_bytes())
    assert model.provenance["hyperparameters"]["min_sources"] == 1
    assert model.classes == heuristic.CLASSES
