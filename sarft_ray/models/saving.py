"""Saving a trained model or adapter so that the same weights give the same bytes.

PEFT keeps ``target_modules`` (and other module lists) as Python sets and writes them to
``adapter_config.json`` in set order, which follows the process's string-hash seed. The adapter's
content hash names its evaluation directory (``identity.adapter_fingerprint``), so a resumed run
would otherwise evaluate identical weights again under a new name. Such lists are written sorted.
"""

from __future__ import annotations

import json
from pathlib import Path

ADAPTER_CONFIG = "adapter_config.json"


def save_pretrained(model, tokenizer, target: Path) -> None:
    """``model`` (plain or PEFT) and ``tokenizer`` saved as safetensors into ``target``, byte-reproducibly."""
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    for config_file in Path(target).rglob(ADAPTER_CONFIG):  # one per adapter; a named adapter has a folder
        sort_set_valued_lists(config_file, getattr(model, "peft_config", {}))


def sort_set_valued_lists(config_file: Path, peft_configs: dict) -> None:
    """Rewrite ``config_file`` with every field that the PEFT config holds as a set sorted."""
    set_fields = {name for config in peft_configs.values() for name, value in vars(config).items() if isinstance(value, (set, frozenset))}
    data = json.loads(config_file.read_text())
    changed = {key: sorted(data[key]) for key in set_fields if isinstance(data.get(key), list)}
    if changed:
        # the layout PEFT writes (indent 2, sorted keys), so only the order inside those lists changes
        config_file.write_text(json.dumps(data | changed, indent=2, sort_keys=True))
