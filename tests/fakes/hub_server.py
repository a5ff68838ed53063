"""A stand-in for the Hugging Face hub (the real one is the internet): a real HTTP server on 127.0.0.1.

It serves tiny repositories through the endpoints ``huggingface_hub`` 2.4 calls, with the hub's headers:

- ``GET /api/models/{repo}[/revision/{rev}]`` (``?blobs=true`` adds each sibling's ``size``, ``blobId`` and,
  for LFS files, ``lfs: {size, sha256, pointerSize}``), with ``X-Error-Code: RepoNotFound`` /
  ``RevisionNotFound`` on 404 like the hub;
- ``HEAD``/``GET /{repo}/resolve/{rev}/{file}`` with ``X-Repo-Commit``, ``ETag`` (the SHA-256 for LFS files,
  the git blob id otherwise), ``X-Linked-Etag``/``X-Linked-Size`` for LFS files, ``Content-Length``,
  ``Accept-Ranges: bytes``, and ``Range: bytes=N-`` answered with 206 and ``Content-Range``.

Tests script faults per file: cut the connection after N bytes, send corrupt bytes of the right length, or
ignore Range. Every request is recorded (method, path, Range header). It is not the hub: no auth, no xet,
no redirects to a CDN, and which files count as LFS is decided by size (``lfs_threshold``).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass
class Recorded:
    method: str
    path: str
    range: str | None


@dataclass
class FakeRepo:
    """A repository: commits (sha → {filename: bytes}) and the commit ``main`` points at."""

    commits: dict[str, dict[str, bytes]]
    main: str


@dataclass
class FakeHub:
    """The stand-in server. Use as a context manager; ``url`` is its address (set it as ``HF_ENDPOINT``).

    Attributes:
        repos: repo id → :class:`FakeRepo`.
        lfs_threshold: files at least this big are listed as LFS files (with a SHA-256).
        cut_after: file name → bytes after which the next GET of it drops the connection (once).
        corrupt: file name → how many GETs of it still send flipped bytes.
        ignore_range: answer Range requests with the whole file (200), like some proxies.
        requests: everything asked, in order.
    """

    repos: dict[str, FakeRepo] = field(default_factory=dict)
    lfs_threshold: int = 1024
    cut_after: dict[str, int] = field(default_factory=dict)
    corrupt: dict[str, int] = field(default_factory=dict)
    ignore_range: bool = False
    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add_repo(self, repo_id: str, files: dict[str, bytes], commit: str = "a" * 40) -> str:
        """Add (or move ``main`` of) a repository to a new commit holding ``files``; returns the commit."""
        repo = self.repos.setdefault(repo_id, FakeRepo(commits={}, main=commit))
        repo.commits[commit] = dict(files)
        repo.main = commit
        return commit

    def start(self) -> FakeHub:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.hub = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="fake-hub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake hub first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def gets(self, filename: str) -> list[Recorded]:
        """The GET requests for ``filename`` (any revision)."""
        return [r for r in self.requests if r.method == "GET" and r.path.endswith(f"/{filename}")
                and "/resolve/" in r.path]

    def _record(self, method: str, path: str, range_header: str | None) -> None:
        with self._lock:
            self.requests.append(Recorded(method, path, range_header))

    def _take(self, table: dict[str, int], name: str) -> int | None:
        with self._lock:
            value = table.get(name)
            if value is None:
                return None
            if table is self.cut_after:
                del table[name]
            else:
                table[name] = value - 1
                if table[name] <= 0:
                    del table[name]
            return value

    def _commit(self, repo_id: str, revision: str) -> tuple[str, dict[str, bytes]] | None:
        repo = self.repos.get(repo_id)
        if repo is None:
            return None
        sha = repo.main if revision == "main" else revision
        files = repo.commits.get(sha)
        return (sha, files) if files is not None else None

    def sibling(self, name: str, data: bytes, blobs: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"rfilename": name}
        if not blobs:
            return entry
        entry["size"] = len(data)
        entry["blobId"] = git_blob_id(data)
        if len(data) >= self.lfs_threshold:
            entry["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": 134}
        return entry


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeHub/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    @property
    def hub(self) -> FakeHub:
        return self.server.hub  # type: ignore[attr-defined]

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"", head: bool = False) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _not_found(self, code: str, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), "X-Error-Code": code,
                   "X-Error-Message": message}
        self._send(404, headers, body)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def _dispatch(self, head: bool) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        self.hub._record("HEAD" if head else "GET", path, self.headers.get("Range"))
        if path.startswith("/api/models/"):
            self._model_info(path.removeprefix("/api/models/"), parse_qs(parts.query))
        elif "/resolve/" in path:
            self._resolve(path.lstrip("/"), head)
        else:
            self._not_found("EntryNotFound", f"no route for {path}")

    def _model_info(self, rest: str, query: dict[str, list[str]]) -> None:
        repo_id, _, revision = rest.partition("/revision/")
        found = self.hub._commit(repo_id, revision or "main")
        if found is None:
            if repo_id not in self.hub.repos:
                self._not_found("RepoNotFound", f"Repository {repo_id} not found")
            else:
                self._not_found("RevisionNotFound", f"Invalid rev id: {revision}")
            return
        sha, files = found
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        payload = {
            "id": repo_id,
            "modelId": repo_id,
            "sha": sha,
            "private": False,
            "siblings": [self.hub.sibling(name, data, blobs) for name, data in sorted(files.items())],
        }
        body = json.dumps(payload).encode()
        self._send(200, {"Content-Type": "application/json", "Content-Length": str(len(body))}, body)

    def _resolve(self, rest: str, head: bool) -> None:
        repo_part, _, tail = rest.partition("/resolve/")
        revision, _, filename = tail.partition("/")
        found = self.hub._commit(repo_part, revision)
        if found is None:
            code = "RepoNotFound" if repo_part not in self.hub.repos else "RevisionNotFound"
            self._not_found(code, f"{repo_part}@{revision} not found")
            return
        sha, files = found
        if filename not in files:
            self._not_found("EntryNotFound", f"{filename} does not exist at {sha}")
            return
        data = files[filename]
        lfs = len(data) >= self.hub.lfs_threshold
        etag = hashlib.sha256(data).hexdigest() if lfs else git_blob_id(data)
        headers = {"X-Repo-Commit": sha, "ETag": f'"{etag}"', "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        if lfs:
            headers |= {"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))}
        start = 0
        range_header = self.headers.get("Range")
        if range_header and not self.hub.ignore_range and not head:
            start = int(range_header.removeprefix("bytes=").split("-", 1)[0])
            if start >= len(data):
                self._send(416, {"Content-Range": f"bytes */{len(data)}", "Content-Length": "0"})
                return
        if head:
            self._send(200, headers | {"Content-Length": str(len(data))}, head=True)
            return
        body = data[start:]
        if self.hub._take(self.hub.corrupt, filename):
            body = bytes(byte ^ 0xFF for byte in body)
        status = 206 if start else 200
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        headers["Content-Length"] = str(len(body))
        cut = self.hub._take(self.hub.cut_after, filename)
        if cut is not None:
            # Promise the whole body, send part of it, then drop the connection like a broken network.
            self._send(status, headers, body[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self._send(status, headers, body)
