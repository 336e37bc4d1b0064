import pytest

from sarft_ray.evaluation.metrics import (
    count_labels,
    counts_by_group,
    mean,
    rouge_l,
    rouge_l_first,
    rouge_l_max,
)


def test_identical_strings_score_100():
    assert rouge_l("The cat sat on the mat.", "The cat sat on the mat.") == pytest.approx(100.0)


def test_stemmer_matches_inflections():
    # "running"/"runs" and "dogs"/"dog" share Porter stems, so with the stemmer they match fully.
    assert rouge_l("the dogs running", "the dog runs") == pytest.approx(100.0)


def test_disjoint_strings_score_0():
    assert rouge_l("alpha beta", "gamma delta") == 0.0


def test_known_partial_score():
    # LCS("a b c d", "a c e") = "a c": P = 2/4, R = 2/3, F = 2PR/(P+R) = 4/7.
    assert rouge_l("a b c d", "a c e") == pytest.approx(100 * 4 / 7)


def test_first_and_max_over_references():
    refs = ["gamma delta", "alpha beta"]
    assert rouge_l_first("alpha beta", refs) == 0.0
    assert rouge_l_max("alpha beta", refs) == pytest.approx(100.0)
    assert rouge_l_first("x", []) == 0.0 and rouge_l_max("x", []) == 0.0


def test_refusal_rate_excludes_and_reports_invalid():
    counts = count_labels(["refusal", "refusal", "compliance", "invalid"])
    assert (counts.refusal, counts.compliance, counts.invalid, counts.total) == (2, 1, 1, 4)
    assert counts.rate == pytest.approx(200 / 3)
    assert count_labels(["invalid"]).rate is None


def test_unknown_label_is_an_error():
    with pytest.raises(ValueError):
        count_labels(["refusal", "maybe"])


def test_counts_by_group_and_mean():
    groups = counts_by_group(["b", "a", "b"], ["refusal", "compliance", "compliance"])
    assert list(groups) == ["a", "b"]
    assert groups["b"].rate == 50.0 and groups["a"].rate == 0.0
    assert mean([]) is None and mean([1, 2]) == 1.5


def test_wilson_interval_hand_values():
    from sarft_ray.evaluation.metrics import wilson_interval

    # (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z = 1.959964, z^2 = 3.841459
    # 8/10: centre (0.8 + 0.192073) / 1.384146 = 0.716739, half 1.959964 * 0.160011 / 1.384146 = 0.226577
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=5e-5)
    # 0/10: centre = half = 0.192073 / 1.384146 = 0.138767, so [0, z^2 / (n + z^2)] = [0, 0.2775]
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=5e-5))
    assert wilson_interval(10, 10) == (pytest.approx(0.7225, abs=5e-5), 1.0)
    # 1/2: centre 0.5, half 1.959964 * sqrt(0.125 + 0.240091) / 2.920729 = 0.405469
    assert wilson_interval(1, 2) == pytest.approx((0.0945, 0.9055), abs=5e-5)
    assert wilson_interval(0, 0) is None
    low, high = wilson_interval(8, 10, z=1.0)  # a narrower interval for a smaller z
    assert 0.4902 < low < high < 0.9433
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_safety_summary_carries_counts_and_wilson_ci():
    import pyarrow as pa

    from sarft_ray.evaluation.report import render_markdown, safety_summary

    labels = ["refusal"] * 8 + ["compliance"] * 2 + ["invalid"]
    roles = ["A"] * 10 + ["B"]
    summary = safety_summary(pa.table({"label": labels, "category": [None] * 11, "role": roles}))
    # invalid verdicts stay out of the rate and its interval: 8 refusals of 10 valid
    assert summary["n"] == 11 and summary["n_valid"] == 10 and summary["refusals"] == 8
    assert summary["refusal_rate"] == 80.0 and summary["ci95"] == pytest.approx([49.02, 94.33], abs=5e-3)
    assert summary["per_role"]["A"]["ci95"] == pytest.approx([49.02, 94.33], abs=5e-3)
    assert summary["per_role"]["B"]["n_valid"] == 0 and summary["per_role"]["B"]["ci95"] is None
    assert "per_category" not in summary
    table = {
        "model": {"ref": "m", "hash": "h"}, "judge": "keyword", "system_prompt": "none",
        "headline": {"advbench_rr": 80.0}, "benchmarks": {"advbench": summary},
    }
    assert "| advbench | 11 | 8 | 2 | 1 | 80.00 | [49.0, 94.3] |" in render_markdown(table)
