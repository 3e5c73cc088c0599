"""Recall@k curves (matplotlib, headless) for the evaluation report."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from vitrine.eval.ranking import recall_curve

KS = (1, 2, 3, 5, 10, 20, 30, 50, 75, 100)


def plot_recall_curves(
    ranks: Mapping[str, np.ndarray], title: str, out: Path, model_label: str = "model"
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    top = 0.0
    for name, r in ranks.items():
        curve = recall_curve(r, KS)
        top = max(top, *curve.values())
        label = model_label if name == "model" else name
        ax.plot(
            list(curve),
            list(curve.values()),
            marker="o",
            markersize=3,
            linewidth=2.2 if name == "model" else 1.2,
            label=label,
        )
    ax.set_xscale("log")
    ax.set_xticks(list(KS))
    ax.set_xticklabels([str(k) for k in KS])
    ax.set_xlabel("k")
    ax.set_ylabel("Recall@k")
    ax.set_ylim(0, min(1.0, top * 1.1 + 0.02))  # small recalls stay readable
    ax.grid(True, alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_tradeoff(points: Mapping[str, Mapping[str, float]], x: str, y: str, title: str, out: Path) -> Path:
    """One labelled point per ranker: metric `x` (e.g. categories@10) against metric `y` (recall@50)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, values in points.items():
        ax.scatter([values[x]], [values[y]], s=40)
        ax.annotate(name, (values[x], values[y]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(True, alpha=0.3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_metric_bars(
    rows: Mapping[str, Mapping[str, float]], metrics: tuple[str, ...], title: str, out: Path
) -> Path:
    """Grouped bars: one group per metric, one bar per ranker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    width = 0.8 / max(1, len(rows))
    for i, (name, values) in enumerate(rows.items()):
        ax.bar(np.arange(len(metrics)) + i * width, [values[m] for m in metrics], width, label=name)
    ax.set_xticks(np.arange(len(metrics)) + 0.4 - width / 2)
    ax.set_xticklabels(list(metrics))
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
