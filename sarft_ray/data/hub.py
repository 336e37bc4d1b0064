"""Download one upstream file: a dataset file from the Hugging Face hub, or a file of a GitHub repository.

Hub files go through ``huggingface_hub.hf_hub_download`` into the hub cache
(``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``);
the endpoint is ``HF_ENDPOINT`` (a mirror, or a test server). GitHub files are
fetched from ``SARFT_GITHUB_RAW_ENDPOINT`` (default
``https://raw.githubusercontent.com``) into ``<cache>/downloads/github``, and
only renamed into the cache once all the bytes the server announced arrived.

Every failure is one :class:`SarftError` line; a host that cannot be reached
raises :class:`Unreachable`, so the caller can say which files to put where.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sarft_ray.data.manifest import HUB_SCHEME
from sarft_ray.errors import SarftError
from sarft_ray.paths import cache_dir

_HUB_DEFAULT = "https://huggingface.co"
_GITHUB_RAW_DEFAULT = "https://raw.githubusercontent.com"
_TIMEOUT_S = 30.0
_REF = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[^/]+))?/(?P<path>[^@]+)$")


class Unreachable(SarftError):
    """The source's host did not answer (no network, a proxy, a wrong endpoint)."""


@dataclass(frozen=True)
class HubRef:
    """A file of a dataset repository on the hub: ``hf://datasets/OWNER/NAME[@REVISION]/PATH``."""

    repo: str
    path: str
    revision: str = "main"


def parse_hub_ref(text: str) -> HubRef:
    """Parse ``hf://datasets/OWNER/NAME[@REVISION]/PATH`` (the revision defaults to ``main``)."""
    if not text.startswith(HUB_SCHEME):
        raise SarftError(f"{text}: hub references look like {HUB_SCHEME}OWNER/NAME[@REVISION]/PATH (dataset files only)")
    match = _REF.match(text[len(HUB_SCHEME) :])
    if match is None or any(part in ("", ".", "..") for part in match["path"].split("/")):
        raise SarftError(f"{text}: expected {HUB_SCHEME}OWNER/NAME[@REVISION]/PATH")
    return HubRef(match["repo"], match["path"], match["revision"] or "main")


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or _HUB_DEFAULT).rstrip("/")


def github_raw_endpoint() -> str:
    return (os.environ.get("SARFT_GITHUB_RAW_ENDPOINT") or _GITHUB_RAW_DEFAULT).rstrip("/")


def hub_cache() -> Path:
    """The hub cache huggingface_hub itself would use, read from the environment now (not at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "huggingface" / "hub"


def _probe(url: str, host: str) -> None:
    """One request without retries, so an offline machine fails at once rather than after minutes of backoff."""
    import httpx

    try:
        httpx.head(url, timeout=_TIMEOUT_S, follow_redirects=False)
    except httpx.TransportError as exc:
        raise Unreachable(f"cannot reach {host} ({type(exc).__name__}: {exc})") from None


def _quiet_tqdm():
    from tqdm.auto import tqdm

    class Quiet(tqdm):
        """No progress bars: a fetch announces itself in one line."""

        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Quiet


def hub_snapshot_path(ref: HubRef) -> Path:
    """Where huggingface_hub keeps the file of a commit-pinned reference (a link to its blob)."""
    return hub_cache() / f"datasets--{ref.repo.replace('/', '--')}" / "snapshots" / ref.revision / ref.path


def github_cache_path(repo: str, revision: str, path: str) -> Path:
    return cache_dir() / "downloads" / "github" / repo / revision / path


def evict(path: Path) -> None:
    """Remove a cached download (and the hub blob a snapshot entry links to), so the next fetch downloads it again."""
    if path.is_symlink():
        blob = path.resolve()
        path.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
    else:
        path.unlink(missing_ok=True)


def download_hub_file(ref: HubRef) -> Path:
    """The cached copy of a hub dataset file, downloaded when the cache lacks it."""
    from huggingface_hub import hf_hub_download, hf_hub_url
    from huggingface_hub import errors as hub_errors

    shown = f"{HUB_SCHEME}{ref.repo}@{ref.revision}/{ref.path}"
    endpoint = hub_endpoint()
    if not hub_snapshot_path(ref).exists():  # a pinned file already in the cache needs no network
        _probe(hf_hub_url(ref.repo, ref.path, repo_type="dataset", revision=ref.revision, endpoint=endpoint), endpoint)
    try:
        local = hf_hub_download(
            ref.repo, ref.path, repo_type="dataset", revision=ref.revision, cache_dir=hub_cache(),
            endpoint=endpoint, tqdm_class=_quiet_tqdm(),
        )
    except hub_errors.RepositoryNotFoundError:
        raise SarftError(f"{shown}: no such dataset repository on {endpoint} (or it is private: set HF_TOKEN)") from None
    except hub_errors.RevisionNotFoundError:
        raise SarftError(f"{shown}: revision {ref.revision} not found in {ref.repo}") from None
    except hub_errors.LocalEntryNotFoundError as exc:
        raise Unreachable(f"cannot reach {endpoint} ({' '.join(str(exc).split())[:160]})") from None
    except hub_errors.EntryNotFoundError:
        raise SarftError(f"{shown}: no such file in {ref.repo} at {ref.revision}") from None
    except hub_errors.HfHubHTTPError as exc:
        raise SarftError(f"{shown}: the hub refused the download ({' '.join(str(exc).split())[:160]})") from None
    except OSError as exc:  # includes huggingface_hub's size consistency check on a cut-off body
        raise SarftError(f"{shown}: download failed ({' '.join(str(exc).split())[:200]})") from None
    return Path(local)


def download_github_file(repo: str, revision: str, path: str) -> Path:
    """The cached copy of ``path`` in GitHub repository ``repo`` at ``revision``, downloaded when missing."""
    import httpx

    target = github_cache_path(repo, revision, path)
    if target.is_file():
        return target
    url = f"{github_raw_endpoint()}/{repo}/{revision}/{path}"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{target.name}-", dir=target.parent)
    try:
        received = 0
        # identity encoding: the announced Content-Length is then the file's size, so a cut-off body shows
        headers = {"Accept-Encoding": "identity"}
        with (
            os.fdopen(fd, "wb") as handle,
            httpx.stream("GET", url, headers=headers, timeout=_TIMEOUT_S, follow_redirects=True) as response,
        ):
            if response.status_code == 404:
                raise SarftError(f"{url}: not found (HTTP 404)")
            if response.status_code != 200:
                raise SarftError(f"{url}: HTTP {response.status_code}")
            announced = response.headers.get("Content-Length")
            for chunk in response.iter_bytes():
                handle.write(chunk)
                received += len(chunk)
        identity = response.headers.get("Content-Encoding", "identity") == "identity"
        if announced is not None and identity and int(announced) != received:
            raise SarftError(f"{url}: received {received} of {announced} bytes; the download was cut off")
        os.replace(tmp, target)
    except httpx.RemoteProtocolError as exc:
        raise SarftError(f"{url}: the download was cut off ({exc})") from None
    except httpx.TransportError as exc:
        raise Unreachable(f"cannot reach {github_raw_endpoint()} ({type(exc).__name__}: {exc})") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target
