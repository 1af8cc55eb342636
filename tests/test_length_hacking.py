"""The length-hacking detector on synthetic metric series: fires on hacking, quiet on healthy runs."""

from __future__ import annotations

import json
import random

import pytest

from slowthink.monitors.length_hacking import (
    HackingSettings,
    LengthHackingMonitor,
    detect_length_hacking,
    fitted_rise,
    hacking_episodes,
    hacking_steps,
)


def noisy(values, scale, seed=0):
    rng = random.Random(seed)
    return [v + rng.uniform(-scale, scale) for v in values]


# 30 steps: length 40 -> 98 tokens; accuracy flat around 0.5 (hacking) or rising to 0.8 (healthy).
LENGTHS = noisy([40 + 2 * i for i in range(30)], 3)
FLAT_ACC = noisy([0.5] * 30, 0.03, seed=1)
FALLING_ACC = noisy([0.6 - 0.005 * i for i in range(30)], 0.02, seed=2)
RISING_ACC = noisy([0.3 + 0.017 * i for i in range(30)], 0.02, seed=3)


def test_fitted_rise_is_slope_times_span():
    assert fitted_rise([1, 2, 3, 4]) == pytest.approx(3.0)
    assert fitted_rise([5, 5, 5]) == 0.0
    assert fitted_rise([2]) == 0.0


@pytest.mark.parametrize("accuracy", [FLAT_ACC, FALLING_ACC], ids=["flat", "falling"])
def test_fires_when_length_rises_and_accuracy_does_not(accuracy):
    signal = detect_length_hacking(LENGTHS, accuracy)
    assert signal is not None and signal.hacking
    assert signal.length_rise > 0.2 and signal.accuracy_rise <= 0.02


def test_quiet_on_healthy_runs():
    # Length rising with accuracy (what the paper wants), and flat length with flat accuracy.
    assert not detect_length_hacking(LENGTHS, RISING_ACC).hacking
    assert not detect_length_hacking(noisy([60] * 30, 3), FLAT_ACC).hacking
    # A falling length never counts, whatever accuracy does.
    assert not detect_length_hacking(LENGTHS[::-1], FLAT_ACC).hacking


AT_ONCE = HackingSettings(follow=0)


def test_one_spike_is_not_a_trend():
    lengths = [50.0] * 9 + [200.0]
    signal = detect_length_hacking(lengths, [0.5] * 10, AT_ONCE)
    # The fitted rise is large, but only the last step is longer: no trend.
    assert signal.length_rise > 0.2 and not signal.hacking
    lengths = [10.0] + [50.0] * 9  # a short first step then flat: a rising fit, not a rising length
    signal = detect_length_hacking(lengths, [0.5] * 10, AT_ONCE)
    assert signal.length_rise > 0.2 and not signal.hacking


def test_silent_until_window_and_follow_steps_and_nan_steps_skipped():
    assert detect_length_hacking(LENGTHS[:19], FLAT_ACC[:19]) is None
    assert detect_length_hacking(LENGTHS[:20], FLAT_ACC[:20]) is not None
    with_gaps = LENGTHS[:12] + [float("nan")]
    assert detect_length_hacking(with_gaps, FLAT_ACC[:13], HackingSettings(window=12, follow=0)).hacking


# Healthy RL as the tiny demo shows it: length rises first (steps 5-15, the model learns to
# think) and accuracy follows some steps later (steps 15-25).
LAG_LENGTHS = noisy([20.0] * 5 + [20 + 1.8 * i for i in range(10)] + [38.0] * 15, 1, seed=4)
LAG_ACC = noisy([0.15] * 15 + [0.15 + 0.02 * i for i in range(10)] + [0.35] * 5, 0.02, seed=5)


def test_quiet_when_accuracy_follows_the_length_rise_a_few_steps_later():
    monitor = LengthHackingMonitor(echo=False)
    flags = [monitor.update({"response_length": length, "accuracy": acc}).get("length_hacking") for length, acc in zip(LAG_LENGTHS, LAG_ACC)]
    assert flags[19:] and not any(flags[19:])
    # Judged at once, the same run is flagged while it learns to think (the false alarm `follow` removes).
    at_once = LengthHackingMonitor(AT_ONCE, echo=False)
    assert any(at_once.update({"response_length": length, "accuracy": acc}).get("length_hacking") for length, acc in zip(LAG_LENGTHS, LAG_ACC))


def test_settings_are_checked():
    with pytest.raises(ValueError, match="follow"):
        HackingSettings(follow=-1)


def test_monitor_logs_fields_and_warns_once_per_episode(capsys):
    monitor = LengthHackingMonitor()
    logged = [monitor.update({"response_length": length, "accuracy": acc}, step=i + 1) for i, (length, acc) in enumerate(zip(LENGTHS, FLAT_ACC))]
    assert logged[0] == {} and "length_hacking" in logged[-1]
    flags = [row.get("length_hacking") for row in logged]
    assert flags[-1] == 1.0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "possible length hacking" in line]
    assert len(warnings) == 1 and "step 20:" in warnings[0]
    # A healthy run: fields logged, no warning.
    healthy = LengthHackingMonitor()
    rows = [healthy.update({"response_length": length, "accuracy": acc}) for length, acc in zip(LENGTHS, RISING_ACC)]
    assert rows[19:] and all(r.get("length_hacking") == 0.0 for r in rows[19:])
    assert "length hacking" not in capsys.readouterr().err


def test_monitor_for_run_keeps_its_window_over_a_resume(tmp_path, capsys):
    rows = []
    monitor = LengthHackingMonitor(echo=False)
    for step, (length, acc) in enumerate(zip(LENGTHS, FLAT_ACC), start=1):
        rows.append({"step": step, "response_length": length, "accuracy": acc, **monitor.update({"response_length": length, "accuracy": acc})})
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:20]))
    resumed = LengthHackingMonitor.for_run(tmp_path, up_to_step=20)
    # Primed with 20 steps: the next step is judged at once, and the ongoing episode is not re-announced.
    assert resumed.update({"response_length": LENGTHS[20], "accuracy": FLAT_ACC[20]}) == {
        k: v for k, v in rows[20].items() if k.startswith("length_hacking")
    }
    assert "length hacking" not in capsys.readouterr().err


def test_hacking_steps_are_recomputed_by_the_current_rule():
    rows = [{"step": i + 1, "response_length": length, "accuracy": acc} for i, (length, acc) in enumerate(zip(LENGTHS, FLAT_ACC))]
    recomputed = hacking_steps(rows)
    assert recomputed and recomputed[0] >= 20 and recomputed[-1] == 30
    # A field logged by an older detector (here: step 5 only) does not override today's rule.
    assert hacking_steps([{**r, "length_hacking": float(r["step"] == 5)} for r in rows]) == recomputed
    assert hacking_episodes([3, 4, 5, 9, 11, 12]) == [(3, 5), (9, 9), (11, 12)]
