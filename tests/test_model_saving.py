"""A saved adapter's bytes, and so its fingerprint, do not depend on the process's string-hash seed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

_SAVE = """
import sys, torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer
from sarft_ray.models import adapter_fingerprint, save_pretrained

torch.manual_seed(0)
base = AutoModelForCausalLM.from_pretrained(sys.argv[1])
model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
save_pretrained(model, AutoTokenizer.from_pretrained(sys.argv[1]), sys.argv[2])
print(adapter_fingerprint(sys.argv[2]))
"""


def test_adapter_bytes_do_not_follow_the_hash_seed(tiny_model_dir, tmp_path):
    fingerprints = []
    for seed in ("1", "2", "3", "4"):  # four orders of a 4-element set: equal by chance with odds 1 in 13,824
        env = os.environ | {"PYTHONHASHSEED": seed}
        target = tmp_path / f"adapter-{seed}"
        done = subprocess.run([sys.executable, "-c", _SAVE, str(tiny_model_dir), str(target)], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        fingerprints.append(done.stdout.split()[-1])
        config = json.loads((target / "adapter_config.json").read_text())
        assert config["target_modules"] == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert len(set(fingerprints)) == 1


def test_a_plain_model_saves_as_before(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sarft_ray.models import save_pretrained

    save_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir), tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file() and not (tmp_path / "m" / "adapter_config.json").exists()
