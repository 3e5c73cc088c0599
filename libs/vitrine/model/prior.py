"""A refreshable complementary-category prior, served with a model: `DIR/complementary_prior.json`.

The towers stay as trained; the map of which leaf categories go with which (and the smoothed prior that
weighs them) can be re-mined from recent purchases (`vitrine refresh-prior`) and written here as a new
version. When the file is present it replaces the card's `complementary_map` / `category_prior`;
the recommender re-reads it on SIGHUP and at its reload check, and swaps it in without a restart
(`InferenceModel.refresh_prior`). The file is replaced atomically, so a reader never sees half of one.
What reads the map: `InferenceModel.complementary_targets` (evaluation's planned targets); the served
any-category Complementary query (vitrine.serving.complementary) does not.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vitrine.errors import DataError

PRIOR_FILE = "complementary_prior.json"


@dataclass(frozen=True)
class ComplementaryPrior:
    version: str
    complementary_map: dict[str, list[str]]
    category_prior: dict[str, Any]  # CategoryPrior.to_dict()
    created_at: str = ""
    source: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(
        cls, complementary_map: dict[str, list[str]], category_prior: dict[str, Any], source: dict[str, Any]
    ) -> ComplementaryPrior:
        now = datetime.now(UTC)
        content = json.dumps([complementary_map, category_prior], sort_keys=True).encode()
        version = f"prior-{now:%Y%m%d%H%M%S}-{hashlib.sha256(content).hexdigest()[:8]}"
        return cls(version, complementary_map, category_prior, now.isoformat(), source)

    def save(self, model_dir: Path) -> Path:
        path = Path(model_dir) / PRIOR_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path


def read_prior(model_dir: Path) -> ComplementaryPrior | None:
    path = Path(model_dir) / PRIOR_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ComplementaryPrior(
            str(data["version"]),
            {k: list(v) for k, v in data["complementary_map"].items()},
            dict(data.get("category_prior") or {}),
            str(data.get("created_at", "")),
            dict(data.get("source") or {}),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataError(f"unreadable complementary prior {path}: {e}") from e
