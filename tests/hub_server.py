"""A loopback Hugging Face Hub for tests: the HTTP endpoints huggingface_hub's own client calls, on 127.0.0.1.

Point ``HF_ENDPOINT`` at ``server.url`` (in a subprocess: huggingface_hub reads it at import) and the real
client runs unpatched: ``create_repo``, ``list_repo_files``, ``create_commit`` (preupload + the ndjson commit,
README front matter checked by ``/api/validate-yaml``), ``repo_info``/``model_info`` by revision, the tree
listing, and file downloads (HEAD + GET on ``/resolve/`` with ``X-Repo-Commit`` and ``ETag``), which is all
that ``snapshot_download`` and ``HfApi.upload`` need when every file is a regular (non-LFS) git file.

Repositories live in memory; each commit gets a new 40-hex id and the branch ``main`` moves to it. Private
repositories answer only requests with a bearer token (others get the Hub's 404 ``RepoNotFound``). Every
request is recorded (method, path, whether it carried a token) so tests can see what the client did. The
server runs on daemon threads, refuses bodies over ``max_body`` bytes and shuts itself down after
``lifetime_s`` seconds if a test forgets to.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

import yaml


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    private: bool = False
    commits: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)  # (commit id, files) oldest first

    def files_at(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        if not self.commits:
            return None
        if revision == "main":
            return self.commits[-1]
        return next((c for c in self.commits if c[0] == revision), None)


class HubServer:
    """``with HubServer() as hub: ... hub.url ...``; ``hub.repos``, ``hub.requests`` for assertions."""

    def __init__(self, max_body: int = 64 << 20, lifetime_s: float = 600.0):
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str, bool]] = []
        self.max_body = max_body
        self.lock = threading.Lock()
        server = self

        class Handler(_Handler):
            hub = server

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.timer = threading.Timer(lifetime_s, self.stop)
        self.timer.daemon = True

    def start(self) -> "HubServer":
        self.thread.start()
        self.timer.start()
        return self

    def stop(self) -> None:
        self.timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def commit(self, repo_id: str, files: dict[str, bytes], deleted: set[str] = frozenset()) -> str:
        repo = self.repos[repo_id]
        current = dict(repo.commits[-1][1]) if repo.commits else {}
        for path in deleted:
            current.pop(path, None)
        current.update(files)
        digest = hashlib.sha1(f"{repo_id}:{len(repo.commits)}".encode())
        for path in sorted(current):
            digest.update(path.encode() + b"\0" + git_blob_sha1(current[path]).encode())
        oid = digest.hexdigest()
        repo.commits.append((oid, current))
        return oid


REPO = r"(?P<repo>[^/]+/[^/]+)"


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    # ------------------------------------------------------------------ plumbing
    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _error(self, status: int, code: str | None, message: str) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._json({"error": message}, status, headers)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.hub.max_body:
            raise ValueError("body too large")
        return self.rfile.read(length)

    def _repo(self, repo_id: str) -> Repo | None:
        repo = self.hub.repos.get(repo_id)
        authorized = (self.headers.get("Authorization") or "").startswith("Bearer ")
        if repo is None or (repo.private and not authorized):
            self._error(404, "RepoNotFound", "Repository not found")
            return None
        return repo

    def _revision(self, repo: Repo, revision: str):
        found = repo.files_at(unquote(revision))
        if found is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {unquote(revision)}")
        return found

    def _route(self) -> None:
        url = urlparse(self.path)
        path = unquote(url.path)
        with self.hub.lock:
            self.hub.requests.append((self.command, path, bool(self.headers.get("Authorization"))))
        routes = [
            ("POST", r"/api/repos/create", self.create_repo),
            ("POST", r"/api/validate-yaml", self.validate_yaml),
            ("GET", rf"/api/models/{REPO}/revision/(?P<rev>[^/]+)", self.repo_info),
            ("GET", rf"/api/models/{REPO}/tree/(?P<rev>[^/]+)(?P<sub>/.*)?", self.tree),
            ("POST", rf"/api/models/{REPO}/preupload/(?P<rev>[^/]+)", self.preupload),
            ("POST", rf"/api/models/{REPO}/commit/(?P<rev>[^/]+)", self.commit),
            ("GET", rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)", self.resolve),
            ("HEAD", rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)", self.resolve),
        ]
        for method, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if method == self.command and match:
                try:
                    with self.hub.lock:
                        handler(**match.groupdict(), query=parse_qs(url.query))
                except ValueError as error:
                    self._error(400, None, str(error))
                return
        self._error(404, None, f"no such endpoint: {self.command} {path}")

    do_GET = do_HEAD = do_POST = _route

    # ------------------------------------------------------------------ endpoints
    def create_repo(self, query) -> None:
        payload = json.loads(self._body())
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        if not (self.headers.get("Authorization") or "").startswith("Bearer "):
            return self._error(401, None, "Invalid username or password.")
        if repo_id in self.hub.repos:
            # the Hub's 409 names the existing repository (create_repo(exist_ok=True) returns its url)
            return self._json({"error": "You already created this model repo", "url": f"{self.hub.url}/{repo_id}"},
                              409, {"X-Error-Message": "You already created this model repo"})
        self.hub.repos[repo_id] = Repo(private=payload.get("visibility") == "private")
        self.hub.commit(repo_id, {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"})
        self._json({"url": f"{self.hub.url}/{repo_id}", "name": repo_id, "id": repo_id})

    def validate_yaml(self, query) -> None:
        content = json.loads(self._body())["content"]
        if content.startswith("---\n"):
            front = content[4:content.index("\n---", 4)]
            if not isinstance(yaml.safe_load(front), dict):
                return self._error(400, None, "README.md metadata is not a YAML mapping")
        self._json({"errors": [], "warnings": []})

    def repo_info(self, repo, rev, query) -> None:
        found = (r := self._repo(repo)) and self._revision(r, rev)
        if found:
            oid, files = found
            self._json({"id": repo, "modelId": repo, "sha": oid, "private": r.private,
                        "siblings": [{"rfilename": p} for p in sorted(files)]})

    def tree(self, repo, rev, sub, query) -> None:
        found = (r := self._repo(repo)) and self._revision(r, rev)
        if found:
            prefix = (sub or "").strip("/")
            files = {p: d for p, d in found[1].items() if not prefix or p.startswith(prefix + "/")}
            self._json([{"type": "file", "path": p, "size": len(d), "oid": git_blob_sha1(d)}
                        for p, d in sorted(files.items())])

    def preupload(self, repo, rev, query) -> None:
        found = (r := self._repo(repo)) and self._revision(r, rev)
        if found:
            existing = found[1]
            files = json.loads(self._body())["files"]
            self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                   "oid": git_blob_sha1(existing[f["path"]]) if f["path"] in existing else None}
                                  for f in files]})

    def commit(self, repo, rev, query) -> None:
        if (r := self._repo(repo)) is None or not self._revision(r, rev):
            return
        files, deleted = {}, set()
        for line in self._body().decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            if item["key"] == "file":
                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] == "deletedFile":
                deleted.add(item["value"]["path"])
            elif item["key"] != "header":
                raise ValueError(f"this test hub takes regular files only, got {item['key']}")
        oid = self.hub.commit(repo, files, deleted)
        self._json({"commitUrl": f"{self.hub.url}/{repo}/commit/{oid}", "commitOid": oid, "success": True})

    def resolve(self, repo, rev, file, query) -> None:
        found = (r := self._repo(repo)) and self._revision(r, rev)
        if not found:
            return
        oid, files = found
        if file not in files:
            return self._json({"error": f"{file} does not exist"}, 404, {"X-Error-Code": "EntryNotFound",
                                                                          "X-Repo-Commit": oid})
        data = files[file]
        self._send(200, data, {"X-Repo-Commit": oid, "ETag": f'"{git_blob_sha1(data)}"'},
                   content_type="application/octet-stream")
