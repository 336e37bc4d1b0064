"""One rule for which device a model runs on, in scoring, evaluation, judges and training."""

from __future__ import annotations

import torch

from sarft_ray.devices import device_kind, pick_device
from sarft_ray.scoring.config import ScoringConfig

VISIBLE = "cuda" if torch.cuda.is_available() else "cpu"


def test_the_resources_name_the_device_kind_without_torch():
    assert device_kind(0) == "cpu" and device_kind(0.25) == "cuda" and device_kind(1) == "cuda"
    # the scores' hash names the precision by it, before any actor starts
    assert ScoringConfig().device == "cpu" and ScoringConfig(num_gpus_per_actor=0.5).device == "cuda"


def test_auto_is_cuda_only_for_a_worker_given_a_gpu_that_sees_one():
    assert pick_device("auto", 0) == "cpu"
    assert pick_device("auto", 1) == pick_device() == VISIBLE
    assert pick_device("cpu", 1) == "cpu" and pick_device("cuda:1", 0) == "cuda:1"  # a named device is kept
