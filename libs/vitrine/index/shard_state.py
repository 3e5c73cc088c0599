"""What a replica knows about its on-disk Qdrant Edge shard: that vitrine created it, which topic and
model version it caches, and the offsets of that topic it has applied. Kept in a JSON file beside the
shard (`<shard>.vitrine.json`), written atomically.

With it, a restarted replica reuses its shard and resumes the vectors topic from those offsets instead
of rebuilding from offset 0 (`ShardState.resumable`); anything unexpected (another topic or model, an
offset outside the topic's current range, a shard that does not load) means a rebuild. And nothing
is ever deleted that vitrine did not create: a shard folder without its state file (and that is not a
Qdrant Edge shard either) is refused, never removed (`remove_shard`).

The offsets are saved only after the changes before them were applied to a shard with a write-ahead
log, so they are never ahead of what the shard holds after a crash; replaying from them re-applies a
few changes, which the version guard makes harmless.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vitrine.errors import ConfigError

log = logging.getLogger(__name__)

STATE_VERSION = 1
# what Qdrant Edge writes in a shard folder: a folder with these was made by a vitrine replica
EDGE_SHARD_FILES = ("edge_config.json", "segments")


@dataclass
class ShardState:
    topic: str
    model_version: str
    dim: int
    offsets: dict[int, int] = field(default_factory=dict)  # partition -> next offset to apply
    version: int = STATE_VERSION

    @staticmethod
    def path_for(shard: Path) -> Path:
        return shard.with_name(shard.name + ".vitrine.json")

    @classmethod
    def read(cls, shard: Path) -> ShardState | None:
        try:
            raw = json.loads(cls.path_for(shard).read_text())
            return cls(
                topic=str(raw["topic"]),
                model_version=str(raw["model_version"]),
                dim=int(raw["dim"]),
                offsets={int(p): int(o) for p, o in raw.get("offsets", {}).items()},
                version=int(raw.get("version", 0)),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, shard: Path) -> None:
        path = self.path_for(shard)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**asdict(self), "offsets": {str(p): o for p, o in self.offsets.items()}}))
        os.replace(tmp, path)  # never a half-written state file

    def resumable(
        self, topic: str, model_version: str, dim: int, beginning: dict[int, int], end: dict[int, int]
    ) -> str | None:
        """None if the shard can be reused and resumed from `offsets`; else why not."""
        if self.version != STATE_VERSION:
            return f"state version {self.version}"
        if (self.topic, self.model_version, self.dim) != (topic, model_version, dim):
            return f"it caches {self.topic} of model {self.model_version} (dim {self.dim})"
        for partition, offset in self.offsets.items():
            if partition not in end:
                return f"partition {partition} no longer exists (the topic was recreated?)"
            if not beginning.get(partition, 0) <= offset <= end[partition]:
                return (
                    f"offset {offset} of partition {partition} is outside the topic's "
                    f"[{beginning.get(partition, 0)}, {end[partition]}] (the topic was recreated?)"
                )
        return None


def created_by_vitrine(shard: Path) -> bool:
    if ShardState.path_for(shard).exists():
        return True
    return shard.is_dir() and all((shard / name).exists() for name in EDGE_SHARD_FILES)


def remove_shard(shard: Path) -> None:
    """Delete a shard folder vitrine created (and its state file); refuse anything else."""
    if shard.exists():
        if not created_by_vitrine(shard):
            raise ConfigError(
                f"{shard} exists and was not created by vitrine (no {ShardState.path_for(shard).name}, "
                "not a Qdrant Edge shard): not deleting it; choose another index_path or remove it yourself"
            )
        shutil.rmtree(shard)
    ShardState.path_for(shard).unlink(missing_ok=True)


def check_not_foreign(shard: Path) -> None:
    """Before creating a shard at `shard`: refuse a non-empty folder vitrine did not make."""
    if shard.exists() and any(shard.iterdir()) and not created_by_vitrine(shard):
        raise ConfigError(
            f"{shard} exists, is not empty and was not created by vitrine: not using or deleting it"
        )
