"""Safety alignment of the starting model: refusals to harmful requests plus self-distilled benign answers.

``data`` builds the training rows (pure, no model); ``stage.align_model`` runs
distillation, full fine-tuning and the held-out check, cached by content hash;
``stage.starting_config`` swaps the aligned model in as every stage's ``model.ref``.
"""

from sarft_ray.alignment.config import AlignmentCheck, AlignmentConfig

__all__ = ["AlignmentCheck", "AlignmentConfig"]
