"""`vitrine demo`: the whole path with real parts, end to end, in about two minutes.

Local Kafka broker → a model trained on the synthetic catalogue and exported to ONNX → encoder and
recommender services as separate processes → the catalogue streamed in → similar products printed →
one product's title changed and another deleted, with the time until recommendations follow.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

DEFAULT_MODEL_DIR = Path("artifacts/models/demo-similar")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("demo", help="run the end-to-end demo")
    parser.add_argument(
        "--products", type=int, default=2000, help="synthetic catalogue size (default: %(default)s)"
    )
    parser.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL_DIR, help="model dir (trained if missing)"
    )
    parser.add_argument("--retrain", action="store_true", help="train a new model even if --model exists")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, index)")
    parser.set_defaults(handler=_demo)


def _step(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def _ensure_model(model_dir: Path, products: int, retrain: bool) -> None:
    if (model_dir / "model.json").exists() and any(model_dir.glob("*.onnx")) and not retrain:
        print(f"using the model in {model_dir} (--retrain to train a new one)")
        return
    vitrine = [sys.executable, "-m", "vitrine.cli.main"]
    subprocess.run(
        [
            *vitrine,
            "train",
            "--task",
            "similar",
            "--dataset",
            f"synthetic:{products}",
            "--out",
            str(model_dir),
        ],
        check=True,
    )
    subprocess.run([*vitrine, "export", "--model", str(model_dir)], check=True)


def _demo(args: argparse.Namespace) -> int:
    from vitrine.api.client import RecommenderClient
    from vitrine.catalog.schema import Availability
    from vitrine.data.synthetic import SyntheticConfig, generate
    from vitrine.stack import LocalStack
    from vitrine.stream.publisher import CatalogPublisher

    _step(f"model: similar-products two-tower model on a synthetic catalogue of {args.products} products")
    _ensure_model(args.model, args.products, args.retrain)

    work_dir = Path(tempfile.mkdtemp(prefix="vitrine-demo-"))
    catalog = generate(SyntheticConfig(n_products=args.products))
    products = list(catalog.products)
    by_id = {p.product_id: p for p in products}
    stack = LocalStack(work_dir, args.model.resolve())
    try:
        _step("starting a local Apache Kafka broker (KRaft) and creating the catalogue topics")
        stack.start_broker()
        print(f"broker on {stack.kafka.bootstrap_servers}")

        _step("starting the encoder and the recommender services")
        stack.start_encoder()
        recommender = stack.start_recommender()
        print(f"recommender gRPC on {recommender.grpc_target}, metrics on {recommender.metrics_url}")

        _step(f"streaming {len(products)} products into catalog.products")
        started = time.monotonic()
        publisher = CatalogPublisher.connect(stack.kafka, stack.topics.products)
        for product in products:
            publisher.upsert(product)
        report = publisher.flush()
        print(f"published {report.acknowledged} events in {time.monotonic() - started:.1f}s")

        client = RecommenderClient(recommender.grpc_target, timeout_s=2.0)
        in_stock = [p.product_id for p in products if p.availability == Availability.IN_STOCK]
        waited = _wait_until(
            lambda: all(_found(client, pid) for pid in in_stock), timeout_s=120, interval_s=0.1
        )
        print(
            f"all products searchable {time.monotonic() - started:.1f}s after the first event "
            f"({waited:.2f}s after the last was acknowledged)"
        )

        _step("similar products")
        for anchor in (products[0], products[7], products[25]):
            _print_similar(client, anchor.product_id, by_id)

        _step("a catalogue change: one product's title (and category) changes, another is deleted")
        changed = products[0]
        donor = next(p for p in products if p.category_path[-1] == "Headphones")
        renamed = replace(changed, title=donor.title + " (renamed)", category_path=donor.category_path)
        t0 = time.monotonic()
        publisher.upsert(renamed)
        publisher.flush()

        def among_headphones() -> bool:
            ids = client.similar(changed.product_id, limit=5).ids
            return sum(by_id[i].category_path[-1] == "Headphones" for i in ids) >= 3

        _wait_until(among_headphones, timeout_s=30)
        print(f"{changed.product_id}: {changed.title!r} → {renamed.title!r}")
        print(f"recommendations followed in {1000 * (time.monotonic() - t0):.0f} ms:")
        by_id[changed.product_id] = renamed
        _print_similar(client, changed.product_id, by_id)

        victim_id = client.similar(products[7].product_id, limit=5).ids[0]
        t0 = time.monotonic()
        publisher.delete(victim_id)
        publisher.flush()
        _wait_until(
            lambda: victim_id not in client.similar(products[7].product_id, limit=5).ids, timeout_s=30
        )
        print(
            f"\ndeleted {victim_id} ({by_id[victim_id].title!r}); gone from recommendations in "
            f"{1000 * (time.monotonic() - t0):.0f} ms:"
        )
        _print_similar(client, products[7].product_id, by_id)
        client.close()
        publisher.close()

        _step("shutting down (services drain and commit, broker stops)")
    finally:
        stack.stop()
        if args.keep:
            print(f"work directory kept: {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    print("demo finished")
    return 0


def _found(client: Any, product_id: str) -> bool:
    import grpc

    try:
        client.similar(product_id, limit=1)
        return True
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:
            return False
        raise


def _wait_until(condition: Any, timeout_s: float, interval_s: float = 0.02) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"condition not met within {timeout_s:.0f}s")
        time.sleep(interval_s)
    return time.monotonic() - started


def _print_similar(client: Any, product_id: str, by_id: dict[str, Any]) -> None:
    anchor = by_id[product_id]
    result = client.similar(product_id, limit=5)
    print(f"\n  {product_id}  {anchor.title}  [{' > '.join(anchor.category_path)}]")
    for item in result.items:
        product = by_id.get(item.product_id)
        category = product.category_path[-1] if product else "?"
        print(f"    {item.score:6.3f}  {item.product_id}  {item.title}  [{category}]")
    print(f"  model {result.model_version}")
