"""A Qdrant REST endpoint for process-level server-mode tests, backed by qdrant-client's in-process
engine (persisted to a folder), since no Qdrant server can be installed here.

    python tests/support/qdrant_rest.py --path DIR --port N

It serves the subset of Qdrant's REST API that vitrine's server adapter calls through the real
`QdrantClient(url=..., prefer_grpc=False)` (HTTP, timeouts, connection refused when it is down): so
the adapter's real client path is exercised, and "Qdrant unavailable" is this process killed (a
closed port). What it is not: Qdrant's server (its WAL, its update queue, its gRPC API, its
concurrency); the engine's semantics (filters, `update_filter`) are qdrant-client's local mode's.
Requests are handled one at a time, so each write is applied atomically, as Qdrant applies an update
operation.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import TypeAdapter
from qdrant_client import QdrantClient
from qdrant_client.http import models as m

Route = tuple[str, re.Pattern[str]]


def make_handler(client: QdrantClient) -> type[BaseHTTPRequestHandler]:
    insert = TypeAdapter(m.PointInsertOperations)

    def dump(value: Any) -> Any:
        if isinstance(value, list):
            return [dump(v) for v in value]
        if hasattr(value, "model_dump"):
            return value.model_dump(mode="json", exclude_none=False)
        return value

    def routes(method: str, path: str, query: dict[str, list[str]], body: Any) -> Any:
        parts = [p for p in path.split("/") if p]
        if method == "GET" and not parts:
            return {"title": "qdrant - vector search engine (vitrine test stand-in)", "version": "1.17.0"}
        if parts[:1] == ["aliases"] and method == "GET":
            return dump(client.get_aliases())
        if parts[:2] == ["collections", "aliases"] and method == "POST":
            ops = TypeAdapter(m.ChangeAliasesOperation).validate_python(body)
            return client.update_collection_aliases(change_aliases_operations=ops.actions)
        if parts[:1] != ["collections"] or len(parts) < 2:
            raise KeyError(path)
        name = parts[1]
        rest = parts[2:]
        if rest == ["exists"] and method == "GET":
            return {"exists": client.collection_exists(name)}
        if not rest and method == "PUT":
            spec = m.CreateCollection.model_validate(body)
            return client.create_collection(
                name,
                vectors_config=spec.vectors,
                hnsw_config=spec.hnsw_config,
                shard_number=spec.shard_number,
            )
        if not rest and method == "GET":
            return dump(client.get_collection(name))
        if rest == ["index"] and method == "PUT":
            spec = m.CreateFieldIndex.model_validate(body)
            return dump(client.create_payload_index(name, spec.field_name, spec.field_schema, wait=True))
        if rest == ["points"] and method == "PUT":
            op = insert.validate_python(body)
            points = op.points if isinstance(op, m.PointsList) else op.batch
            return dump(
                client.upsert(
                    name,
                    points=points,
                    wait=True,
                    update_filter=getattr(op, "update_filter", None),
                    update_mode=getattr(op, "update_mode", None),
                )
            )
        if rest == ["points"] and method == "POST":
            req = m.PointRequest.model_validate(body)
            return dump(
                client.retrieve(name, req.ids, with_payload=req.with_payload, with_vectors=req.with_vector)
            )
        if rest == ["points", "query", "batch"] and method == "POST":
            req = m.QueryRequestBatch.model_validate(body)
            return dump(client.query_batch_points(name, req.searches))
        if rest == ["points", "count"] and method == "POST":
            req = m.CountRequest.model_validate(body)
            return dump(client.count(name, count_filter=req.filter, exact=True))
        if rest == ["points", "scroll"] and method == "POST":
            req = m.ScrollRequest.model_validate(body)
            points, next_offset = client.scroll(
                name, scroll_filter=req.filter, limit=req.limit or 10, offset=req.offset, with_payload=True
            )
            return {"points": dump(points), "next_page_offset": next_offset}
        raise KeyError(f"{method} {path}")

    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null") if length else None
            try:
                result = routes(method, url.path, parse_qs(url.query), body)
                status, payload = 200, {"result": result, "status": "ok", "time": 0.0}
                if url.path.strip("/") == "":
                    payload = result  # the root answers its version unwrapped, as Qdrant does
            except KeyError as e:
                status, payload = 404, {"status": {"error": f"not found: {e}"}, "time": 0.0}
            except Exception as e:  # what Qdrant answers 400 for: a request it refuses
                status, payload = 400, {"status": {"error": f"{type(e).__name__}: {e}"}, "time": 0.0}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    client = QdrantClient(path=args.path)
    server = HTTPServer(("127.0.0.1", args.port), make_handler(client))
    print(f"PORT {server.server_port}", flush=True)
    try:
        server.serve_forever()
    finally:
        client.close()
        sys.exit(0)


if __name__ == "__main__":
    main()
