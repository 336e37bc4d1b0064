"""Keeping credentials out of everything the pipeline prints or writes.

Two kinds of secret reach this package:

- credentials inside a URL: the user info of ``http://user:pass@host`` and
  secret-named query parameters (``?api_key=...``), in
  ``tracking.mlflow_uri``, ``ray.address``, ``evaluation.judge.base_url`` or
  any text that quotes them;
- the values of environment variables that hold a key: the one the config
  names (``evaluation.judge.api_key_env``) and a few well-known credential
  variables. They are registered here when read (:func:`secret_from_env`,
  :func:`register_config_secrets`) and replaced wherever they appear.

:func:`redact_url`, :func:`redact_text` and :func:`redact_tree` replace both
with ``***``. The writers use them: atomic text files (``sarft_ray.atomic``),
MLflow params, tags and text artefacts (``orchestration.tracking``), judge
verdicts and the verdict cache (``evaluation.judges``), the CLI's error line,
and every log record once :func:`install_log_redaction` ran.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

REDACTED = "***"
# Shorter values are not registered: replacing every "abc" in a report would garble it,
# and a key that short is not worth hiding.
MIN_SECRET_LENGTH = 6
# Credential variables some library may read (MLflow, Hugging Face) whatever the config says.
WELL_KNOWN_ENV = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")

# A config or query key is secret when one of its words (split on _ . - and camelCase) is one of these.
_SECRET_WORDS = {"key", "apikey", "token", "secret", "password", "passwd", "credential", "credentials"}
# scheme://userinfo@ -- greedy up to the last "@" before the path, so "p@ss" in a password is covered.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#\s@]*(?:@[^/?#\s@]*)*)@")
_QUERY_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&#;\s]+)=(?P<value>[^&#;\s]*)")
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")

_known: set[str] = set()
_lock = threading.Lock()
_installed = False


# ---------------------------------------------------------------------------- what is secret


def is_secret_key(key: str) -> bool:
    """``api_key``, ``hf_token``, ``db.password`` are secret; ``max_new_tokens``, ``keep`` and ``api_key_env`` are not.

    A key ending in ``env`` holds the *name* of an environment variable, which is no secret.
    """
    words = [w.lower() for w in re.split(r"[_.\-\s]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key)) if w]
    if words and words[-1] == "env":
        return False
    return any(w in _SECRET_WORDS for w in words)


def register_secret(value: str | None) -> None:
    """Remember a secret value so :func:`redact_text` replaces it wherever it shows up."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _known.add(value)


def known_secrets() -> frozenset[str]:
    with _lock:
        return frozenset(_known)


def secret_from_env(name: str) -> str | None:
    """The value of environment variable ``name`` (None when unset or empty), registered as a secret."""
    value = os.environ.get(name) or None
    register_secret(value)
    return value


def url_credentials(url: str | None) -> list[str]:
    """The secrets inside a URL: its user info (whole, and the password alone) and secret query values."""
    if not url:
        return []
    found = []
    for match in _USERINFO.finditer(url):
        userinfo = match["userinfo"]
        found += [userinfo, unquote(userinfo)]
        if ":" in userinfo:
            password = userinfo.split(":", 1)[1]
            found += [password, unquote(password)]
    found += [m["value"] for m in _QUERY_PARAM.finditer(url) if is_secret_key(m["name"]) and m["value"]]
    return [value for value in found if value]


def register_config_secrets(cfg) -> None:
    """Register the secrets an experiment config points at, and scrub log records from now on.

    URL credentials of ``tracking.mlflow_uri``, ``ray.address`` and the judge's
    ``base_url`` (and of MLFLOW_TRACKING_URI / RAY_ADDRESS), the value of the
    judge's ``api_key_env`` variable and of :data:`WELL_KNOWN_ENV`.
    """
    install_log_redaction()
    urls = [os.environ.get("MLFLOW_TRACKING_URI"), os.environ.get("RAY_ADDRESS")]
    tracking, ray_cfg = getattr(cfg, "tracking", None), getattr(cfg, "ray", None)
    urls += [getattr(tracking, "mlflow_uri", None), getattr(ray_cfg, "address", None)]
    judge = getattr(getattr(cfg, "evaluation", None), "judge", None)
    urls.append(getattr(judge, "base_url", None))
    for url in urls:
        for value in url_credentials(url):
            register_secret(value)
    for name in (getattr(judge, "api_key_env", None), *WELL_KNOWN_ENV):
        if name:
            secret_from_env(name)


# ---------------------------------------------------------------------------- redaction


def _redact_userinfo(match: re.Match) -> str:
    userinfo = match["userinfo"]
    user, has_password, _ = userinfo.partition(":")
    # Keep a user name next to a password (it helps to see who logged in); a lone user info may be a token.
    kept = f"{user}:{REDACTED}" if has_password and user else REDACTED
    return f"{match['scheme']}{kept}@"


def _redact_query(match: re.Match) -> str:
    if not is_secret_key(match["name"]) or not match["value"]:
        return match[0]
    return f"{match['lead']}{match['name']}={REDACTED}"


def redact_url(value: str) -> str:
    """A URL without credentials: ``https://user:pw@host`` -> ``https://user:***@host``,
    ``https://token@host`` -> ``https://***@host``, ``?api_key=sk`` -> ``?api_key=***``."""
    if "://" not in value:
        return value
    value = _USERINFO.sub(_redact_userinfo, value)
    return _QUERY_PARAM.sub(_redact_query, value) if "?" in value else value


def has_url_credentials(url: str) -> bool:
    """Whether a URL carries user info or a secret query parameter."""
    return redact_url(url) != url


def redact_text(text: str) -> str:
    """``text`` with URL credentials and every registered secret value replaced by ``***``."""
    if not text:
        return text
    if "://" in text:
        text = _URL.sub(lambda m: redact_url(m[0]), text)
    for secret in sorted(known_secrets(), key=lambda s: (-len(s), s)):  # longest first: one may contain another
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_tree(tree: Any) -> Any:
    """A copy of a config-like tree with secret-named values and secrets inside strings replaced."""
    if isinstance(tree, Mapping):
        return {
            key: REDACTED if is_secret_key(str(key)) and value is not None else redact_tree(value)
            for key, value in tree.items()
        }
    if isinstance(tree, (list, tuple)):
        return [redact_tree(value) for value in tree]
    if isinstance(tree, str):
        return redact_text(tree)
    return tree


# ---------------------------------------------------------------------------- logs


def install_log_redaction() -> None:
    """Scrub every log record of this process from now on (idempotent).

    The record factory, not a handler filter, does it: records reach whatever
    handlers exist (the CLI's, pytest's, Ray's), and a filter on one of them
    would miss the others.
    """
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        make_record = logging.getLogRecordFactory()

    def redacting_factory(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logging's problem to report, not ours
            return record
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(redacting_factory)
