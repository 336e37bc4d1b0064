"""Hub models as local snapshots: downloaded once, then loaded from the hub cache.

``download_hub_model`` asks the hub (``HF_ENDPOINT``) for a repository's file
list at a revision and fetches, with ``huggingface_hub.snapshot_download``,
only what ``from_pretrained`` needs (``model_files``): the top-level config,
tokenizer and generation files, remote code, and the weights in one format,
safetensors when the repository has them. The files land in the hub cache
huggingface_hub itself uses (``HF_HUB_CACHE``, else ``HF_HOME/hub``), read
from the environment at each call rather than at import.

``cached_hub_model`` finds such a snapshot without the network, so Ray actors
and workers on a node the driver already filled load it from disk instead of
each asking the hub. ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) means
the cache only. Every failure is one :class:`SarftError` line naming the model.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from sarft_ray.data.hub import _quiet_tqdm, hub_cache, hub_endpoint
from sarft_ray.errors import SarftError

# Top-level files besides weights that from_pretrained may read: config, generation config, tokenizer
# (json, sentencepiece .model, vocab/merges .txt, tiktoken), a chat template file, remote code.
SIDE_FILE_SUFFIXES = (".json", ".model", ".txt", ".tiktoken", ".jinja", ".py")
_TRUE = {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """Whether huggingface_hub's offline switch is on, read now (huggingface_hub reads it once at import)."""
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return flag.upper() in _TRUE or constants.HF_HUB_OFFLINE


def _weights(names: list[str], suffix: str, stem: str) -> list[str]:
    """Files with ``suffix``; those starting with ``stem`` (the ones from_pretrained reads) when there are any."""
    found = [n for n in names if n.endswith(suffix)]
    preferred = [n for n in found if n.startswith(stem)]
    return preferred or found


def model_files(paths: list[str]) -> list[str]:
    """The files of a model repository worth fetching: side files plus one weights format.

    Only top-level files: subfolders hold other formats (onnx, original checkpoints). Safetensors
    are preferred; ``.bin`` files are taken only when the repository has no safetensors, so a
    repository carrying both is not downloaded twice over.
    """
    top = sorted(p for p in paths if "/" not in p)
    side = [p for p in top if p.endswith(SIDE_FILE_SUFFIXES)]
    weights = _weights(top, ".safetensors", "model") or [
        p for p in _weights(top, ".bin", "pytorch_model") if p != "training_args.bin"
    ]
    return side + weights


def _patterns(files: list[str]) -> list[str]:
    """Exact names as ``allow_patterns`` (huggingface_hub matches them with fnmatch, so brackets are escaped)."""
    return [glob.escape(name) for name in files]


def _is_complete(folder: Path) -> bool:
    """A snapshot from_pretrained can load: a config and at least one weights file."""
    return (folder / "config.json").is_file() and any(
        p.suffix in (".safetensors", ".bin") for p in folder.iterdir()
    )


def _not_cached(ref: str, revision: str | None, why: str) -> SarftError:
    at = f" at revision {revision}" if revision else ""
    return SarftError(
        f"{ref}: model{at} is not in the hub cache {hub_cache()} and {why}; run `sarft-ray models pull {ref}` "
        "on a machine with network, or set HF_HOME to a cache that has it"
    )


def _hub_error(ref: str, revision: str | None, exc: Exception) -> SarftError:
    """One line for whatever huggingface_hub raised while fetching ``ref``."""
    import httpx2
    from huggingface_hub import errors

    from sarft_ray.models.loading import alias_suggestion

    detail = " ".join(str(exc).split())[:160] or type(exc).__name__
    endpoint = hub_endpoint()
    if isinstance(exc, errors.GatedRepoError):
        return SarftError(f"{ref}: gated model on {endpoint}: accept its terms on the hub, then set HF_TOKEN to a token with access")
    if isinstance(exc, errors.RepositoryNotFoundError):
        suggestion = alias_suggestion(ref.rsplit("/", 1)[-1])
        hint = f" (did you mean '{suggestion}'?)" if suggestion else " (or it is private: set HF_TOKEN)"
        return SarftError(f"{ref}: no such model repository on {endpoint}{hint}")
    if isinstance(exc, errors.RevisionNotFoundError):
        return SarftError(f"{ref}: revision {revision or 'main'} not found on {endpoint}")
    if isinstance(exc, errors.HfHubHTTPError) and exc.response is not None and exc.response.status_code in (401, 403):
        return SarftError(f"{ref}: {endpoint} refused access (HTTP {exc.response.status_code}); set HF_TOKEN to a token with access")
    if isinstance(exc, (errors.RevisionResolutionError, errors.LocalEntryNotFoundError, errors.CachedRepoTreeNotFoundError)):
        why = "HF_HUB_OFFLINE is set" if hub_offline() else f"{endpoint} cannot be reached ({detail})"
        return _not_cached(ref, revision, why)
    if isinstance(exc, httpx2.TransportError):
        return _not_cached(ref, revision, f"{endpoint} cannot be reached ({type(exc).__name__})")
    return SarftError(f"{ref}: model download failed ({detail})")


def cached_hub_model(ref: str, revision: str | None = None) -> Path | None:
    """The snapshot of ``ref`` at ``revision`` already in the hub cache (no network), or None."""
    from huggingface_hub import HfApi, errors, get_cached_repo_tree, snapshot_download

    cache = hub_cache()
    try:
        resolved = HfApi(endpoint=hub_endpoint()).resolve_revision(
            ref, revision=revision, cache_dir=cache, local_files_only=True
        )
        try:  # the listing a pull stored; a snapshot filled some other way (from_pretrained) has none
            patterns = _patterns(model_files([f.path for f in get_cached_repo_tree(ref, revision=resolved, cache_dir=cache)]))
        except errors.CachedRepoTreeNotFoundError:
            patterns = None
        folder = Path(
            snapshot_download(ref, revision=resolved, cache_dir=cache, allow_patterns=patterns, local_files_only=True)
        )
    except (errors.RevisionResolutionError, errors.LocalEntryNotFoundError, OSError, ValueError):
        return None
    return folder if folder.is_dir() and _is_complete(folder) else None


def download_hub_model(ref: str, revision: str | None = None) -> Path:
    """Fetch what loading ``ref`` at ``revision`` needs into the hub cache; returns the snapshot directory.

    Files already cached are not fetched again (for a commit already listed, nothing is asked of
    the hub but the revision's commit). Offline (``HF_HUB_OFFLINE``), only the cache is looked at.
    """
    import httpx2
    from huggingface_hub import HfApi, errors, get_cached_repo_tree, snapshot_download

    from sarft_ray.progress import bars_enabled

    if hub_offline():
        folder = cached_hub_model(ref, revision)
        if folder is None:
            raise _not_cached(ref, revision, "HF_HUB_OFFLINE is set")
        return folder
    endpoint, cache = hub_endpoint(), hub_cache()
    api = HfApi(endpoint=endpoint)
    try:
        resolved = api.resolve_revision(ref, revision=revision, cache_dir=cache)
        try:
            listed = [f.path for f in get_cached_repo_tree(ref, revision=resolved, cache_dir=cache)]
        except errors.CachedRepoTreeNotFoundError:
            listed = api.list_repo_files(ref, revision=resolved.resolved)
        files = model_files(listed)
        if "config.json" not in files:
            raise SarftError(f"{ref}: repository on {endpoint} has no config.json; not a transformers model")
        folder = snapshot_download(
            ref, revision=resolved, cache_dir=cache, endpoint=endpoint, allow_patterns=_patterns(files),
            tqdm_class=None if bars_enabled() else _quiet_tqdm(),  # bars as the CLI's own: a terminal, or --verbose
        )
    except SarftError:
        raise
    except errors.HFValidationError as exc:
        raise SarftError(f"{ref}: not a valid hub model id ({' '.join(str(exc).split())[:160]})") from None
    except (errors.HfHubHTTPError, errors.RevisionResolutionError, errors.LocalEntryNotFoundError, httpx2.TransportError) as exc:
        raise _hub_error(ref, revision, exc) from None
    except OSError as exc:  # a cut-off body (huggingface_hub checks sizes), a full disk
        raise SarftError(f"{ref}: model download failed ({' '.join(str(exc).split())[:200]})") from None
    return Path(folder)


def hub_model_dir(ref: str, revision: str | None = None, refresh: bool = False) -> Path:
    """The local snapshot of a hub model: the cached one unless ``refresh``, else downloaded now.

    Actors and workers pass ``refresh=False`` (the driver already fetched it on this node; another
    node fetches it once); the driver and ``models pull`` ask the hub for the revision's commit.
    """
    if not refresh:
        folder = cached_hub_model(ref, revision)
        if folder is not None:
            return folder
    return download_hub_model(ref, revision)
