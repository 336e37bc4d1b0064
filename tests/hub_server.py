"""A local stand-in for the Hugging Face hub and raw.githubusercontent.com, serving the lock file's sources.

The upstream bytes are rebuilt from the reference copy in ``../shared/data`` by
undoing each lock entry's transform (AdvBench back to LF line endings,
BeaverTails back to a parquet file), so a pull through this server runs the
real download, transform and checks.

Hub routes answer as huggingface_hub expects (``file_download.py``):
``HEAD/GET /datasets/{repo}/resolve/{revision}/{path}`` with ``X-Repo-Commit``,
a quoted ``ETag`` and ``Content-Length``; parquet files are served like LFS
files, a 302 whose ``Location`` points at another host name (``localhost``
instead of ``127.0.0.1``, as the hub's CDN is another host) with
``X-Linked-Etag`` and ``X-Linked-Size``. An unknown revision or file gets the
hub's 404 with its ``X-Error-Code``. GitHub routes are ``GET /{owner}/{repo}/{revision}/{path}``.

``faults`` maps a lock entry name to how to spoil it: ``corrupt`` (one byte
changed, sizes consistent), ``truncate`` (the second half of the lines
missing, sizes consistent) or ``short`` (the metadata announces the full size,
the body stops half way).
"""

from __future__ import annotations

import csv
import hashlib
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sarft_ray.data.manifest import DataFile, load_manifest


@dataclass
class Served:
    body: bytes
    lfs: bool
    revision: str


def upstream_bytes(entry: DataFile, reference: Path) -> bytes:
    """The upstream file as the lock's source would deliver it, rebuilt from the stored reference copy."""
    data = (reference / entry.path).read_bytes()
    if entry.transform == "crlf":
        return data.replace(b"\r\n", b"\n")
    if entry.transform == "parquet_to_csv":
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
        header, body = rows[0][1:], [r[1:] for r in rows[1:]]
        columns = {name: [r[i] for r in body] for i, name in enumerate(header)}
        columns["category_id"] = [int(v) for v in columns["category_id"]]
        out = io.BytesIO()
        pq.write_table(pa.table(columns), out)
        return out.getvalue()
    return data


def spoil(body: bytes, fault: str | None) -> bytes:
    if fault == "corrupt":
        middle = len(body) // 2
        return body[:middle] + bytes([body[middle] ^ 0x01]) + body[middle + 1 :]
    if fault == "truncate":
        lines = body.splitlines(keepends=True)
        return b"".join(lines[: len(lines) // 2])
    return body


@dataclass
class HubState:
    hub: dict[tuple[str, str], Served] = field(default_factory=dict)  # (repo, path) -> file
    github: dict[str, bytes] = field(default_factory=dict)  # "owner/repo/revision/path" -> bytes
    faults: dict[str, str] = field(default_factory=dict)
    names: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, path) or ("github", key) -> entry name
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class HubHandler(BaseHTTPRequestHandler):
    state: HubState
    cdn_base: str

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_HEAD(self):
        self._answer(head=True)

    def do_GET(self):
        self._answer(head=False)

    def _answer(self, head: bool) -> None:
        with self.state.lock:
            self.state.requests.append(f"{self.command} {self.path}")
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[0] == "datasets" and "resolve" in parts:
            at = parts.index("resolve")
            return self._hub("/".join(parts[1:at]), parts[at + 1], "/".join(parts[at + 2 :]), head)
        if parts[0] == "cdn":
            return self._cdn(parts[1], head)
        return self._github("/".join(parts), head)

    def _fault(self, key) -> str | None:
        return self.state.faults.get(self.state.names.get(key, ""))

    def _hub(self, repo: str, revision: str, path: str, head: bool) -> None:
        served = self.state.hub.get((repo, path))
        if not any(r == repo for r, _ in self.state.hub):
            return self._send(401, b"", {"X-Error-Code": "RepoNotFound"}, head)
        if served is None or revision not in (served.revision, "main"):
            code = "RevisionNotFound" if served is not None else "EntryNotFound"
            return self._send(404, b"", {"X-Error-Code": code, "X-Repo-Commit": served.revision if served else ""}, head)
        fault = self._fault((repo, path))
        body = spoil(served.body, fault)
        announced = len(served.body) if fault == "short" else len(body)
        if fault == "short":
            body = body[: len(body) // 2]
        headers = {"X-Repo-Commit": served.revision}
        if served.lfs:  # the hub redirects LFS files to its CDN, another host; the file's facts ride on the redirect
            digest = hashlib.sha256(body).hexdigest()
            headers |= {"Location": f"{self.cdn_base}/cdn/{repo.replace('/', '--')}--{path.replace('/', '--')}",
                        "X-Linked-Etag": f'"{digest}"', "X-Linked-Size": str(announced), "ETag": '"pointer"'}
            return self._send(302, b"", headers, head)
        headers["ETag"] = '"' + hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest() + '"'
        self._send(200, body, headers, head, announced=announced if head else None)

    def _cdn(self, key: str, head: bool) -> None:
        for (repo, path), served in self.state.hub.items():
            if f"{repo.replace('/', '--')}--{path.replace('/', '--')}" == key:
                fault = self._fault((repo, path))
                body = spoil(served.body, fault)
                return self._send(200, body[: len(body) // 2] if fault == "short" else body, {}, head)
        self._send(404, b"", {}, head)

    def _github(self, key: str, head: bool) -> None:
        body = self.state.github.get(key)
        if body is None:
            return self._send(404, b"404: Not Found", {}, head)
        fault = self._fault(("github", key))
        body = spoil(body, fault)
        if fault == "short":  # announce the whole file, send half of it, then hang up
            return self._send(200, body[: len(body) // 2], {}, head, announced=len(body), close=True)
        self._send(200, body, {}, head)

    def _send(self, status: int, body: bytes, headers: dict, head: bool, announced: int | None = None, close: bool = False):
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(announced if announced is not None else len(body)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(body)
            self.wfile.flush()
        if close:
            self.close_connection = True


def state_from_reference(reference: Path) -> HubState:
    """Every lock entry's upstream file, served at its pinned revision."""
    state = HubState()
    for entry in load_manifest():
        src, body = entry.source, upstream_bytes(entry, reference)
        if src.kind == "hub":
            state.hub[(src.repo, src.path)] = Served(body, lfs=src.path.endswith(".parquet"), revision=src.revision)
            state.names[(src.repo, src.path)] = entry.name
        else:
            key = f"{src.repo}/{src.revision}/{src.path}"
            state.github[key] = body
            state.names[("github", key)] = entry.name
    return state


@contextmanager
def serve_hub(reference: Path) -> Iterator[tuple[str, HubState]]:
    """``(endpoint, state)``: a server on 127.0.0.1 whose CDN redirects go to localhost on the same port."""
    state = state_from_reference(reference)
    handler = type("Handler", (HubHandler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    handler.cdn_base = f"http://localhost:{port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", state
    finally:
        server.shutdown()
        server.server_close()
