"""Jailbreak transformations of AdvBench requests, applied offline; a registry.

Built in: ``aim`` (amoral-persona story frame), ``caesar`` and ``morse``
(ciphers), ``code_chameleon`` and ``code_chameleon_length`` (word-order
encryption inside a code-completion task).

Judging: each reply is judged as written and, where it is (partly) in the
jailbreak's cipher or code, also decoded; a refusal in either reading is a
refusal (:meth:`Jailbreak.readings`, :func:`~sarft_ray.evaluation.judges.combine_readings`).

Extending:
- an attack that is a fixed transformation: subclass :class:`Jailbreak`
  (``name``, ``wrap(goal)``; a cipher subclasses ``CipherJailbreak`` and sets
  ``encode``, ``decode`` and ``is_encoded``) in one module and add one line,
  ``register_jailbreak(name, factory)``, below or before the config is validated;
- an attack optimised against the evaluated model (GCG, AutoDAN): produce its
  prompts with the attack's own tooling and pass them as a file, see
  :mod:`sarft_ray.evaluation.jailbreaks.prompt_file`. None is bundled.
"""

from __future__ import annotations

from pathlib import Path

from sarft_ray.evaluation.jailbreaks.base import Jailbreak, get_jailbreak, register_jailbreak
from sarft_ray.evaluation.jailbreaks.ciphers import CaesarJailbreak, MorseJailbreak
from sarft_ray.evaluation.jailbreaks.code_chameleon import CodeChameleonJailbreak
from sarft_ray.evaluation.jailbreaks.persona import PersonaJailbreak
from sarft_ray.evaluation.jailbreaks.prompt_file import PromptFileJailbreak
from sarft_ray.facade import lazy_exports

_PUBLIC = {
    "base": "registered_names reply_readings",
    "ciphers": "CipherJailbreak",
}
__getattr__, _LAZY = lazy_exports(__name__, _PUBLIC)
__all__ = sorted({*_LAZY, "Jailbreak", "build_jailbreaks", "get_jailbreak", "register_jailbreak"})

register_jailbreak("aim", PersonaJailbreak)
register_jailbreak("caesar", CaesarJailbreak)
register_jailbreak("morse", MorseJailbreak)
register_jailbreak("code_chameleon", lambda: CodeChameleonJailbreak("reverse"))
register_jailbreak("code_chameleon_length", lambda: CodeChameleonJailbreak("length"))


def build_jailbreaks(names: list[str], prompt_files: dict[str, Path]) -> list[Jailbreak]:
    """The configured jailbreaks, in config order; a prompt file wins over a registered name."""
    return [
        PromptFileJailbreak(name, prompt_files[name]) if name in prompt_files else get_jailbreak(name)
        for name in names
    ]
