"""Stage 3: generate answers, score role quality (ROUGE-L) and safety (refusal rates).

Modules: ``generation`` (pure batched decoding), ``ray_generation`` (Ray Data
actor pool), ``metrics``, ``judges/``, ``jailbreaks/``, ``benchmarks`` (the
items to answer), ``report`` (tables), ``runner`` (``evaluate_model``).
"""
