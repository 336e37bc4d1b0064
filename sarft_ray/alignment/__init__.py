"""Safety alignment of the starting model: refusals to harmful requests plus self-distilled benign answers.

``config`` is the ``alignment`` section; ``data`` builds the training rows
(pure, no model) and ``inputs`` reads the files they come from;
``stage.align_model`` runs distillation, full fine-tuning and the held-out
check, cached by content hash; ``stage.starting_config`` swaps the aligned
model in as every stage's ``model.ref``.
"""

from __future__ import annotations

from sarft_ray.facade import lazy_exports

_PUBLIC = {
    "config": "AlignmentCheck AlignmentConfig",
    "stage": "AlignResult align_model starting_config",
}

__getattr__, __all__ = lazy_exports(__name__, _PUBLIC)
