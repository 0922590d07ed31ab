"""lit_ner.calibration on synthetic scores whose calibration is known by construction."""

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from lit_ner.calibration import (
    TEMPERATURES,
    best_threshold,
    expected_calibration_error,
    fit_temperature,
    plot_pr_curves,
    pr_curve,
    reliability_diagram,
)


def calibrated(n: int, seed: int = 0, power: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Scores and outcomes right with probability score**power: calibrated at power 1, over-confident above."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.2, 1.0, n)
    return scores, rng.uniform(0, 1, n) < scores**power


def logits_at(temperature: float, n: int = 20_000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels drawn from softmax(logits / temperature): the logits are right at that temperature."""
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, 5, generator=generator)
    labels = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator).squeeze(1)
    return logits, labels


def confidence(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The top class's probability and whether the top class is the label."""
    top = torch.softmax(logits / temperature, -1).max(-1)
    return top.values.numpy(), (top.indices == labels).numpy()


def test_expected_calibration_error_is_near_zero_when_scores_are_right_and_large_when_over_confident() -> None:
    assert expected_calibration_error(*calibrated(100_000)) < 0.01
    assert expected_calibration_error(*calibrated(100_000, power=4)) > 0.2
    # one bin with mean score 0.9 and half right, one at 0.1 all right: weights 2/3 and 1/3
    assert expected_calibration_error([0.9, 0.9, 0.1], [1, 0, 1]) == pytest.approx(2 / 3 * 0.4 + 1 / 3 * 0.9)
    with pytest.raises(ValueError, match="non-empty"):
        expected_calibration_error([], [])


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_the_temperature_the_labels_were_drawn_at(temperature: float) -> None:
    logits, labels = logits_at(temperature)
    assert fit_temperature(logits, labels) == pytest.approx(temperature, rel=0.05)


def test_fit_temperature_ignores_unscored_positions_and_stays_in_bounds() -> None:
    logits, labels = logits_at(2.0, n=5000)
    padded = torch.cat([logits, 50 * torch.randn(1000, 5)]), torch.cat([labels, torch.full((1000,), -100)])
    assert fit_temperature(*padded) == pytest.approx(fit_temperature(logits, labels))
    always_right = logits.argmax(-1)  # the NLL keeps falling as T goes to 0
    assert fit_temperature(logits, always_right) == TEMPERATURES[0]


def test_temperature_scaling_lowers_the_calibration_error_of_an_over_confident_model() -> None:
    logits, labels = logits_at(2.5)  # the logits themselves are too sharp
    before = expected_calibration_error(*confidence(logits, labels))
    after = expected_calibration_error(*confidence(logits, labels, fit_temperature(logits, labels)))
    assert after <= before and before > 0.05 and after < 0.02


def test_pr_curve_runs_from_every_entity_kept_to_only_the_best_scored() -> None:
    scores, correct = [0.9, 0.8, 0.8, 0.3, 0.6], [True, False, True, False, True]
    curve = pr_curve(scores, correct, n_gold=4)
    assert curve["threshold"] == [0.3, 0.6, 0.8, 0.9]  # distinct scores, ascending; a tie is kept together
    assert (curve["precision"][0], curve["recall"][0]) == (3 / 5, 3 / 4)  # everything kept
    assert (curve["precision"][-1], curve["recall"][-1]) == (1.0, 1 / 4)  # only the 0.9
    assert (curve["precision"][2], curve["recall"][2]) == (2 / 3, 2 / 4)  # both 0.8s
    assert all(a >= b for a, b in zip(curve["recall"], curve["recall"][1:]))
    f1 = [2 * p * r / (p + r) for p, r in zip(curve["precision"], curve["recall"])]
    assert curve["f1"] == pytest.approx(f1)
    assert best_threshold(curve) == pytest.approx({"threshold": 0.6, "precision": 0.75, "recall": 0.75, "f1": 0.75})
    assert pr_curve([], [], n_gold=3) == {"threshold": [], "precision": [], "recall": [], "f1": []}


def test_figures_draw(tmp_path) -> None:
    scores, correct = calibrated(2000, power=3)
    single = reliability_diagram(scores, correct, bins=10, title="scores")
    both = reliability_diagram(scores, correct, bins=10, title="temperature", calibrated=scores**3)
    assert isinstance(both, Figure) and (len(single.axes), len(both.axes)) == (1, 2)
    curves = {"PER": pr_curve(scores, correct, 1500), "LOC": pr_curve(scores[:50], correct[:50], 40)}
    for name, figure in {"reliability": both, "pr": plot_pr_curves(curves, "per type")}.items():
        figure.savefig(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
