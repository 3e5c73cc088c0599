"""The evaluation plots write real PNG files (headless matplotlib)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vitrine.eval.plots import plot_metric_bars, plot_tradeoff

PNG = b"\x89PNG\r\n\x1a\n"


def test_tradeoff_and_bar_plots_are_png_files(tmp_path: Path) -> None:
    points = {
        "clusters": {"recall@50": 0.28, "categories@10": 7.5},
        "random": {"recall@50": 0.02, "categories@10": 9.6},
    }
    a = plot_tradeoff(points, "categories@10", "recall@50", "t", tmp_path / "a" / "trade.png")
    b = plot_metric_bars(points, ("recall@50", "categories@10"), "t", tmp_path / "bars.png")
    for path in (a, b):
        assert path.read_bytes().startswith(PNG) and path.stat().st_size > 5000


def test_a_missing_metric_is_an_error_not_an_empty_plot(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="ndcg@10"):
        plot_metric_bars({"m": {"recall@10": 0.1}}, ("ndcg@10",), "t", tmp_path / "x.png")
