"""Role identity: one canonical name per role across spellings, and safe slugs for file names."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from sarft_ray.errors import SarftError
from sarft_ray.hashing import text_digest


def role_key(name: str) -> str:
    """Spelling-insensitive key: ``Dr._Hannibal_Lecter`` and ``dr. hannibal  lecter`` agree."""
    return " ".join(name.replace("_", " ").split()).casefold()


def match_role(name: str, known: Iterable[str], source: str) -> str:
    """Return the member of ``known`` that ``name`` spells, or fail naming ``source``."""
    by_key = {role_key(k): k for k in known}
    hit = by_key.get(role_key(name))
    if hit is not None:
        return hit
    close = difflib.get_close_matches(role_key(name), list(by_key), n=1)
    hint = f"; did you mean '{by_key[close[0]]}'?" if close else ""
    raise SarftError(f"{source}: unknown role '{name}'{hint}")


def role_slug(name: str) -> str:
    """A file-name-safe slug: readable ASCII plus a short hash of the canonical key.

    The hash keeps names that differ only in punctuation apart (``Dr. X`` vs
    ``Dr X``) and the character set rules out path traversal.
    """
    readable = re.sub(r"[^a-z0-9]+", "-", role_key(name).encode("ascii", "ignore").decode()).strip("-")[:48]
    digest = text_digest(role_key(name), 6)
    return f"{readable or 'role'}-{digest}"
