"""An in-memory stand-in for the KFP v2beta1 REST API, for `kfp.Client` in tests.

`FakeKfpApi` is NOT a Kubeflow Pipelines backend: it answers the handful of endpoints the
client calls (healthz, experiments, recurring runs, runs) from memory, and records every
request (method, path, query, JSON body) so tests can assert what would reach a cluster.
Imported by the integration tests, not collected.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["API", "FakeKfpApi", "serve_fake_kfp"]

API = "/apis/v2beta1"


class FakeKfpApi:
    """In-memory stand-in for the KFP v2beta1 REST API (not a real backend; see module doc)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.experiments: list[dict[str, Any]] = []
        self.recurring: list[dict[str, Any]] = []
        self.runs: list[dict[str, Any]] = []
        self._ids = 0
        self.lock = threading.Lock()
        #: An experiment name another client creates just before this one's create arrives
        #: (two passes racing to create it), once.
        self.created_meanwhile: str | None = None

    def new_id(self, kind: str) -> str:
        self._ids += 1
        return f"{kind}-{self._ids}"

    def writes(self) -> list[tuple[str, str]]:
        return [(r["method"], r["path"]) for r in self.requests if r["method"] != "GET"]

    def handle(self, method: str, raw_path: str, body: Any) -> tuple[int, Any]:
        url = urllib.parse.urlsplit(raw_path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        with self.lock:
            self.requests.append({"method": method, "path": url.path, "query": query, "body": body})
            return self._route(method, url.path, query, body)

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if (method, path) == ("GET", f"{API}/healthz"):
            return 200, {"multi_user": False}
        if path == f"{API}/experiments":
            if method == "GET":
                found = _filtered(self.experiments, query.get("filter"))
                return 200, {"experiments": found, "total_size": len(found)}
            name = body["display_name"]
            if name == self.created_meanwhile:  # another client's create landed first
                self.created_meanwhile = None
                self.experiments.append({"experiment_id": self.new_id("exp"), "display_name": name})
            if any(e["display_name"] == name for e in self.experiments):
                # As the real API server: experiment names are unique (gRPC AlreadyExists).
                text = (
                    "Create experiment failed.: Already exist error: Failed to create a new "
                    f"experiment. The name {name} already exists. Please specify a new name."
                )
                return 409, {"error": text, "message": text, "code": 6}
            exp = {"experiment_id": self.new_id("exp"), "display_name": name}
            self.experiments.append(exp)
            return 200, exp
        if path == f"{API}/recurringruns":
            if method == "GET":
                items = [
                    r
                    for r in _filtered(self.recurring, query.get("filter"))
                    if r["experiment_id"] == query.get("experiment_id")
                ]
                # The real API's JSON name for this list is camelCase (proto json_name).
                return 200, _page(items, query, "recurringRuns")
            made = dict(body, recurring_run_id=self.new_id("rr"), status="ENABLED")
            self.recurring.append(made)
            return 200, made
        if path.startswith(f"{API}/recurringruns/") and method == "DELETE":
            rid = path.rsplit("/", 1)[1]
            before = len(self.recurring)
            self.recurring = [r for r in self.recurring if r["recurring_run_id"] != rid]
            return (200, {}) if len(self.recurring) < before else (404, {"error": "not found"})
        if (method, path) == ("GET", f"{API}/runs"):
            items = [r for r in self.runs if r["experiment_id"] == query.get("experiment_id")]
            return 200, _page(items, query, "runs")
        if (method, path) == ("POST", f"{API}/runs"):
            made = dict(body, run_id=self.new_id("run"), state="PENDING")
            self.runs.append(made)
            return 200, made
        if method == "GET" and path.startswith(f"{API}/runs/"):
            rid = path.rsplit("/", 1)[1]
            run = next((r for r in self.runs if r["run_id"] == rid), None)
            return (200, run) if run is not None else (404, {"error": "not found"})
        return 404, {"error": f"no route {method} {path}"}


def _filtered(items: list[dict[str, Any]], raw: str | None) -> list[dict[str, Any]]:
    if not raw:
        return list(items)
    out = list(items)
    for p in json.loads(raw)["predicates"]:
        op, key, value = p["operation"], p["key"], p.get("stringValue", p.get("string_value"))
        if op in ("EQUALS", 1):
            out = [i for i in out if i.get(key) == value]
        elif op in ("IS_SUBSTRING", 9):
            out = [i for i in out if value in str(i.get(key, ""))]
        else:
            raise AssertionError(f"unexpected filter operation {op}")
    return out


def _page(items: list[dict[str, Any]], query: dict[str, str], key: str) -> dict[str, Any]:
    # Small pages, so paging is exercised.
    size = min(int(query.get("page_size", 10)), 2)
    start = int(query.get("page_token") or 0)
    chunk = items[start : start + size]
    token = str(start + size) if start + size < len(items) else ""
    return {key: chunk, "total_size": len(items), "next_page_token": token}


@contextmanager
def serve_fake_kfp() -> Iterator[tuple[FakeKfpApi, str]]:
    """The stand-in on 127.0.0.1 (a free port): yields it and its base URL."""
    api = FakeKfpApi()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            status, payload = api.handle(self.command, self.path, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
