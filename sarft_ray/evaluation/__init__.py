"""Stage 3: generate answers, score role quality (ROUGE-L) and safety (refusal rates).

Modules: ``config`` (the ``evaluation`` section), ``generation`` (pure batched
decoding), ``ray_generation`` (Ray Data actor pool), ``metrics``,
``catalogue`` (every headline figure's name, label and direction), ``report``
(tables), ``runner`` (``evaluate_model``), and three registries:
``benchmarks/`` (what is asked), ``judges/`` (who says refusal or
compliance), ``jailbreaks/`` (how requests are disguised).
"""

from __future__ import annotations

from sarft_ray.facade import lazy_exports

_PUBLIC = {
    "config": "EvaluationConfig GenerationConfig",
    "catalogue": "Metric metric",
    "runner": "EvalResult evaluate_model",
}

__getattr__, __all__ = lazy_exports(__name__, _PUBLIC)
