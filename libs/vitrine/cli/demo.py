"""`vitrine demo`: the whole path with real parts, end to end, in a few minutes.

Local Kafka broker → a similar and a complementary model trained on the synthetic catalogue and
exported to ONNX → two encoders (the live one for the similar model, a backfill for the complementary
model's own vectors) and the recommender as separate processes → the catalogue streamed in → every
placement printed for a few products (Similar, Complementary, Inspire from a history and from a
free-text intent) → one product's title changed and another deleted, with the time until
recommendations follow → a short experiment: simulated shoppers on two variants, the feedback
service, the report.
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
DEFAULT_COMPLEMENTARY_DIR = Path("artifacts/models/demo-complementary")
# brief training runs keep the demo short on 2 cores (the synthetic catalogue is simple:
# a couple of epochs already separate its categories); `vitrine train` defaults train to convergence
SIMILAR_EPOCHS = 2
COMPLEMENTARY_EPOCHS = 3
INTENT = "a red helmet for cycling"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("demo", help="run the end-to-end demo")
    parser.add_argument(
        "--products", type=int, default=2000, help="synthetic catalogue size (default: %(default)s)"
    )
    parser.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL_DIR, help="model dir (trained if missing)"
    )
    parser.add_argument(
        "--complementary-model",
        type=Path,
        default=DEFAULT_COMPLEMENTARY_DIR,
        help="complementary model dir (trained if missing)",
    )
    parser.add_argument("--retrain", action="store_true", help="train new models even if they exist")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, index)")
    parser.add_argument("--shoppers", type=int, default=300, help="simulated shoppers in the experiment")
    parser.set_defaults(handler=_demo)


def _step(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def _ensure_model(model_dir: Path, task: str, products: int, retrain: bool, *extra: str) -> None:
    if (model_dir / "model.json").exists() and any(model_dir.glob("*.onnx")) and not retrain:
        print(f"using the {task} model in {model_dir} (--retrain to train a new one)")
        return
    vitrine = [sys.executable, "-m", "vitrine.cli.main"]
    subprocess.run(
        [
            *vitrine,
            "train",
            "--task",
            task,
            "--dataset",
            f"synthetic:{products}",
            "--out",
            str(model_dir),
            *extra,
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

    _step(
        f"models: similar and complementary two-tower models on a synthetic catalogue of {args.products} products"
    )
    _ensure_model(args.model, "similar", args.products, args.retrain, "--epochs", str(SIMILAR_EPOCHS))
    _ensure_model(
        args.complementary_model,
        "complementary",
        args.products,
        args.retrain,
        "--epochs",
        str(COMPLEMENTARY_EPOCHS),
    )

    work_dir = Path(tempfile.mkdtemp(prefix="vitrine-demo-"))
    catalog = generate(SyntheticConfig(n_products=args.products))
    products = list(catalog.products)
    by_id = {p.product_id: p for p in products}
    stack = LocalStack(work_dir, args.model.resolve())
    try:
        _step("starting a local Apache Kafka broker (KRaft) and creating the catalogue topics")
        stack.start_broker()
        print(f"broker on {stack.kafka.bootstrap_servers}")

        _step("starting the encoders (similar: live; complementary: backfill) and the recommender")
        stack.start_encoder()
        # a second model: its own consumer group and vectors topic (catalog.vectors.<model version>)
        stack.start_encoder(
            "encoder-complementary", None, ("--backfill",), model_dir=args.complementary_model.resolve()
        )
        # two variants of one model: the experiment at the end is an A/A test, which must find no winner
        variants = [
            {"name": "control", "similar": "default", "complementary": "complementary"},
            {"name": "treatment", "similar": "default", "complementary": "complementary"},
        ]
        recommender = stack.start_recommender(
            config={
                "complementary_model_dir": str(args.complementary_model.resolve()),
                "variants": variants,
                "experiment_salt": "demo-a-a",
            }
        )
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
            lambda: (
                all(_found(client, pid) for pid in in_stock)
                and all(_found(client, pid, complementary=True) for pid in in_stock[-20:])
            ),
            timeout_s=120,
            interval_s=0.1,
        )
        print(
            f"all products searchable {time.monotonic() - started:.1f}s after the first event "
            f"({waited:.2f}s after the last was acknowledged)"
        )

        anchors = (products[0], products[7], products[25])
        _step("Similar: products like this one")
        for anchor in anchors:
            _print_similar(client, anchor.product_id, by_id)
        _step("Complementary: goes well with (other categories)")
        for anchor in anchors:
            _print_list(by_id, anchor.product_id, client.complementary(anchor.product_id, limit=5))
        _step("Inspire: diverse discovery from a browsing history (the three products above)")
        _print_list(by_id, None, client.inspire(history=[a.product_id for a in anchors], limit=6))
        _step(f"Inspire from a free-text intent: {INTENT!r}")
        _print_list(by_id, None, client.inspire(intent=INTENT, limit=6))

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
        publisher.close()

        _experiment(stack, client, catalog, args.shoppers)
        client.close()

        _step("shutting down (services drain and commit, broker stops)")
    finally:
        stack.stop()
        if args.keep:
            print(f"work directory kept: {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    print("demo finished")
    return 0


def _experiment(stack: Any, client: Any, catalog: Any, shoppers: int) -> None:
    from vitrine.cli.report import experiment_table
    from vitrine.feedback.publisher import InteractionPublisher
    from vitrine.feedback.results import experiment_report, read_results
    from vitrine.simulation.users import UserSimulator
    from vitrine.stream.kafka import group_progress

    _step(f"a short experiment: {shoppers} simulated shoppers on two variants (A/A: the same model)")
    stack.start_feedback(results_interval_s="1")
    products = [p for p in catalog.products if p.availability.purchasable]
    simulator = UserSimulator(products, catalog.complementary_map, seed=1)
    events = InteractionPublisher.connect(stack.kafka)
    shown = 0
    for step in range(3):
        for user in simulator.users(shoppers):
            anchor = simulator.anchor(user, step)
            result = client.similar(
                anchor.product_id, limit=8, unit_key=user.unit_key, placement="pdp-similar"
            )
            shown += 1
            for answer in simulator.respond(user, anchor, result.ids, step):
                kind = answer.type.label
                if kind == "purchase":
                    events.purchase(
                        user.unit_key, answer.product_id, answer.value, "EUR", result.recommendation_id
                    )
                elif kind == "add_to_cart":
                    events.add_to_cart(user.unit_key, answer.product_id, result.recommendation_id)
                else:
                    events.click(user.unit_key, answer.product_id, result.recommendation_id)
    report = events.flush()
    events.close()
    print(
        f"{shown} lists shown (each recorded by the recommender), {report.acknowledged} clicks and purchases sent"
    )

    def caught_up() -> bool:
        try:
            progress = group_progress(stack.kafka, "vitrine-feedback", "catalog.interactions")
        except Exception:  # the group is still forming
            return False
        return bool(progress) and all(c == e for c, e in progress.values())

    _wait_until(caught_up, timeout_s=120, interval_s=0.5)
    print(experiment_table(experiment_report(read_results(stack.kafka, "catalog.experiments"))))
    print(
        "both variants serve the same model: the always-valid interval of the lift should hold 0 "
        "(`vitrine simulate experiment --experiments 200 --lift 0.2` shows what a real difference does)"
    )


def _found(client: Any, product_id: str, complementary: bool = False) -> bool:
    import grpc

    try:
        if complementary:
            client.complementary(product_id, limit=1)
        else:
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
    _print_list(by_id, product_id, client.similar(product_id, limit=5))


def _print_list(by_id: dict[str, Any], product_id: str | None, result: Any) -> None:
    if product_id is not None:
        anchor = by_id[product_id]
        print(f"\n  {product_id}  {anchor.title}  [{' > '.join(anchor.category_path)}]")
    for item in result.items:
        product = by_id.get(item.product_id)
        category = product.category_path[-1] if product else "?"
        reason = f"  ({item.reason})" if item.reason and product_id is None else ""
        print(f"    {item.score:6.3f}  {item.product_id}  {item.title}  [{category}]{reason}")
    if not result.items:
        print("    (no items)")
    print(f"  model {result.model_version}")
