"""The metric catalogue: every headline key has one entry, and tables, plots and the sweep read their names from it."""

from __future__ import annotations

import pytest

from sarft_ray.evaluation.catalogue import CATALOGUE, headline_keys, metric
from sarft_ray.evaluation.report import headline, headline_markdown

EVERY_BENCHMARK = {
    "rolebench_spe": {"rouge_l_first": 10.0, "rouge_l_max": 12.0},
    "rolebench_raw": {"rouge_l_first": 9.0, "rouge_l_max": 11.0},
    "rolebench_val": {"rouge_l_first": 8.0, "rouge_l_max": 10.0},
    "benign": {"refusal_rate": 5.0},
    "advbench": {"refusal_rate": 50.0},
    "beavertails": {"refusal_rate": 70.0},
    "jailbreak_caesar": {"refusal_rate": 20.0},
}


def test_every_headline_key_is_in_the_catalogue_and_the_sweep_lists_the_same_keys():
    row = headline(EVERY_BENCHMARK)
    assert all(key in CATALOGUE for key in row if key != "jailbreak_caesar_rr")
    swept = headline_keys(
        ["benign", "beavertails", "rolebench_val", "rolebench_raw", "rolebench_spe", "advbench"], ["caesar"]
    )
    assert sorted(swept) == sorted(row)
    # the sweep's column order: ROUGE-L, AdvBench, BeaverTails, benign, jailbreaks, averages
    assert swept[6:] == ["advbench_rr", "beavertails_rr", "benign_rr", "jailbreak_caesar_rr", "safety_avg", "jailbreak_avg"]
    assert headline_keys(["advbench"], []) == ["advbench_rr", "safety_avg", "jailbreak_avg"]


@pytest.mark.parametrize(
    ("key", "header", "label", "higher_is_better"),
    [
        ("rolebench_spe_rouge_l_first", "SPE R-L", "RoleBench SPE ROUGE-L (x100)", True),
        ("rolebench_raw_rouge_l_max", "RAW R-L max", "RoleBench RAW ROUGE-L, max over refs (x100)", True),
        ("benign_rr", "Benign RR (lower is better)", "Benign over-refusal rate (%)", False),
        ("advbench_rr", "AdvBench RR", "AdvBench refusal rate (%)", True),
        ("safety_avg", "Safety avg", "Safety avg refusal rate (%)", True),
        ("jailbreak_morse_rr", "morse RR", "morse jailbreak refusal rate (%)", True),
        ("train_rows", "train_rows", "train_rows", True),  # not an evaluation metric: named by its key
    ],
)
def test_names_labels_and_directions(key, header, label, higher_is_better):
    entry = metric(key)
    assert (entry.key, entry.header, entry.label, entry.higher_is_better) == (key, header, label, higher_is_better)


def test_formats_rates_beside_their_interval_with_one_decimal_and_rouge_with_two():
    assert metric("advbench_rr").text(49.0196) == "49.0" and metric("advbench_rr").text(50.0, signed=True) == "+50.0"
    assert metric("rolebench_spe_rouge_l_first").text(-2.0, signed=True) == "-2.00"


def test_tables_and_plots_take_their_names_from_the_catalogue():
    from sarft_ray.orchestration import comparison

    for column in comparison.QUALITY_COLUMNS + comparison.RATE_COLUMNS:
        assert comparison.HEADERS[column] == metric(column).header
    table = {"model": {"ref": "/m/base"}, "headline": headline(EVERY_BENCHMARK)}
    header = headline_markdown([table]).splitlines()[0]
    assert header == (
        "| model | SPE R-L | SPE R-L max | RAW R-L | RAW R-L max | VAL R-L | VAL R-L max | Benign RR (lower is better) "
        "| AdvBench RR | BeaverTails RR | caesar RR | Safety avg | Jailbreak avg |"
    )
