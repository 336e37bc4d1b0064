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
