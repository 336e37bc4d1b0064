"""A local stand-in for the Hugging Face hub's model repositories, for `sarft-ray models pull` and hub model loading.

Routes answer as huggingface_hub 2.x expects (``hf_api.py``, ``_snapshot_download.py``,
``file_download.py``):

- ``GET /api/models/{repo}[/revision/{rev}]``: ``{"id", "sha", "siblings"}`` (the revision's commit);
- ``GET /api/models/{repo}/tree/{rev}``: the file list, ``[{"type": "file", "path", "size", "oid"}]``;
- ``HEAD/GET /{repo}/resolve/{rev}/{path}``: the file, with ``X-Repo-Commit``, a quoted ``ETag`` and
  ``Content-Length`` (files are served directly, no LFS redirect).

An unknown repository gets the hub's 401 ``RepoNotFound``, an unknown revision 404 ``RevisionNotFound``,
a gated repository 401 ``GatedRepo`` (each in ``X-Error-Code``). Every request is recorded in
``state.requests`` as ``"METHOD /path"``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote


@dataclass
class ModelRepo:
    files: dict[str, bytes]
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    gated: bool = False

    def revision_ok(self, revision: str) -> bool:
        return revision in ("main", self.commit)


def repo_from_dir(directory: Path, **kwargs) -> ModelRepo:
    """A repository holding every file of a checkpoint directory (a ``save_pretrained`` output)."""
    return ModelRepo({p.name: p.read_bytes() for p in sorted(Path(directory).iterdir()) if p.is_file()}, **kwargs)


@dataclass
class ModelHubState:
    repos: dict[str, ModelRepo] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def file_gets(self, suffix: str = "") -> list[str]:
        """The file downloads (GET of a ``resolve`` URL) so far, those of names ending in ``suffix``."""
        return [r for r in self.requests if r.startswith("GET ") and "/resolve/" in r and r.split("?")[0].endswith(suffix)]


def _git_oid(body: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()


class ModelHubHandler(BaseHTTPRequestHandler):
    state: ModelHubState

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_HEAD(self):
        self._answer(head=True)

    def do_GET(self):
        self._answer(head=False)

    def _answer(self, head: bool) -> None:
        with self.state.lock:
            self.state.requests.append(f"{self.command} {self.path}")
        parts = [unquote(p) for p in self.path.split("?")[0].strip("/").split("/")]
        if parts[:2] == ["api", "models"] and len(parts) == 4:  # the default branch's info
            return self._api("/".join(parts[2:4]), "revision", "main", head)
        if parts[:2] == ["api", "models"] and len(parts) >= 6:
            repo, kind, revision = "/".join(parts[2:4]), parts[4], parts[5]
            return self._api(repo, kind, revision, head)
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._file("/".join(parts[:2]), parts[3], "/".join(parts[4:]), head)
        self._send(404, b"", {}, head)

    def _repo(self, name: str, revision: str, head: bool) -> ModelRepo | None:
        """The repository, or None once the hub's error for it has been sent."""
        repo = self.state.repos.get(name)
        if repo is None:
            self._send(401, b"", {"X-Error-Code": "RepoNotFound"}, head)
        elif repo.gated:
            self._send(401, b"", {"X-Error-Code": "GatedRepo"}, head)
        elif not repo.revision_ok(revision):
            self._send(404, b"", {"X-Error-Code": "RevisionNotFound"}, head)
        else:
            return repo
        return None

    def _api(self, name: str, kind: str, revision: str, head: bool) -> None:
        repo = self._repo(name, revision, head)
        if repo is None:
            return
        if kind == "revision":
            body = {"id": name, "sha": repo.commit, "siblings": [{"rfilename": p} for p in repo.files]}
        elif kind == "tree":
            body = [{"type": "file", "path": p, "size": len(b), "oid": _git_oid(b)} for p, b in repo.files.items()]
        else:
            return self._send(404, b"", {}, head)
        self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"}, head)

    def _file(self, name: str, revision: str, path: str, head: bool) -> None:
        repo = self._repo(name, revision, head)
        if repo is None:
            return
        body = repo.files.get(path)
        if body is None:
            return self._send(404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": repo.commit}, head)
        self._send(200, body, {"X-Repo-Commit": repo.commit, "ETag": f'"{_git_oid(body)}"'}, head)

    def _send(self, status: int, body: bytes, headers: dict, head: bool) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


@contextmanager
def serve_models(repos: dict[str, ModelRepo]) -> Iterator[tuple[str, ModelHubState]]:
    """``(endpoint, state)``: a model hub on 127.0.0.1 serving ``repos``."""
    state = ModelHubState(repos=dict(repos))
    handler = type("Handler", (ModelHubHandler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
