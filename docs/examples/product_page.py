"""Example: another backend service using the recommender through `vitrine.api.client`.

A product-page backend renders three carousels for a product: "similar", "goes well with" and "you
may also like" (from the session's recent views). It asks for all three in one `Batch` call, with the
session id as the experiment unit (the whole page comes from one variant), a tight deadline, and
renders an empty carousel rather than failing the page when one list cannot be served.

    # a JSON page for one product, printed once
    python docs/examples/product_page.py --recommender 127.0.0.1:50051 --once p000012 --session s-42 \
        --viewed p000007 --viewed p000031
    # or a tiny HTTP service: GET /product/p000012?session=s-42&viewed=p000007,p000031
    python docs/examples/product_page.py --recommender 127.0.0.1:50051 --port 8080

Only the library's client is used: one channel for the process (connections are reused), deadlines,
retries of UNAVAILABLE with backoff.
"""

from __future__ import annotations

import argparse
import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import grpc

from vitrine.api.client import (
    BatchError,
    Complementary,
    Filters,
    Inspire,
    RecommendationList,
    RecommenderClient,
    Similar,
)

log = logging.getLogger("product_page")
PAGE_BUDGET_S = 0.25  # default budget of a page's recommendations, retries included


class ProductPage:
    def __init__(self, client: RecommenderClient, budget_s: float = PAGE_BUDGET_S) -> None:
        self.client = client
        self.budget_s = budget_s

    def carousels(self, product_id: str, session_id: str, viewed: list[str]) -> dict[str, Any]:
        # shown once per page: no product twice, at most 2 per seller in a carousel
        filters = Filters(exclude_product_ids=[product_id], max_per_seller=2)
        requests = [
            Similar(product_id, limit=8, filters=filters),
            Complementary(product_id, limit=8, filters=filters),
            Inspire(history=viewed or [product_id], limit=8, filters=filters),
        ]
        try:
            results = self.client.batch(requests, unit_key=session_id, timeout_s=self.budget_s)
        except grpc.RpcError as e:  # the whole call failed (deadline, unavailable): render without
            log.warning("recommendations unavailable: %s", e.code().name)
            results = [BatchError(e.code(), e.details() or "")] * len(requests)
        page: dict[str, Any] = {"product": product_id, "carousels": {}}
        for title, result in zip(("similar", "goes well with", "you may also like"), results, strict=True):
            if isinstance(result, RecommendationList):
                page["variant"] = result.variant
                page["carousels"][title] = [
                    {"id": i.product_id, "title": i.title, "price": i.price, "why": i.reason}
                    for i in result.items
                ]
            else:
                log.info("carousel %r empty: %s %s", title, result.code.name, result.message)
                page["carousels"][title] = []
        return page


def serve_http(page: ProductPage, port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            parts = url.path.strip("/").split("/")
            if len(parts) != 2 or parts[0] != "product":
                self.send_error(404, "GET /product/<id>?session=...&viewed=a,b")
                return
            query = parse_qs(url.query)
            viewed = [v for v in ",".join(query.get("viewed", [])).split(",") if v]
            body = json.dumps(page.carousels(parts[1], query.get("session", [""])[0], viewed)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recommender", default="127.0.0.1:50051", help="host:port of the recommender")
    parser.add_argument("--once", metavar="PRODUCT_ID", help="print one page as JSON and exit")
    parser.add_argument("--session", default="", help="the session id (experiment unit)")
    parser.add_argument("--viewed", action="append", default=[], help="recently viewed product (repeat)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--budget", type=float, default=PAGE_BUDGET_S, help="seconds for all three lists")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    # one client (one channel) for the whole process
    with RecommenderClient(args.recommender, timeout_s=args.budget, retries=2, backoff_s=0.02) as client:
        page = ProductPage(client, args.budget)
        if args.once:
            print(json.dumps(page.carousels(args.once, args.session, args.viewed), indent=2))
        else:
            serve_http(page, args.port)


if __name__ == "__main__":
    main()
