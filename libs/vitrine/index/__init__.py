"""The vector index: the port (`port.VectorIndex`), its two adapters, and `open_index`, the front door.

    index = open_index(settings, dim=model.dim, name="vitrine-v3")   # settings: an IndexSettings

`open_index` is the only place that picks and builds an adapter, as `QdrantClient` picks
`QdrantLocal` or `QdrantRemote`: `index_mode` embedded opens the Qdrant Edge shard
`index_path / name` (`EdgeIndex`), server the Qdrant collection or alias `name` (`QdrantServerIndex`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vitrine.index.port import VectorIndex
    from vitrine.index.settings import IndexSettings


def open_index(
    settings: IndexSettings,
    *,
    dim: int,
    name: str,
    create: bool = True,
    fresh: bool = False,
    durable: bool | None = None,
) -> VectorIndex:
    """Open (or create) the index `name` of vectors of size `dim` where `settings` say.

    `create=False` opens what must exist already (a reader of a collection the encoder creates);
    `fresh=True` starts an embedded shard empty (a cache rebuilt from its topic), for a Qdrant server
    it is refused (a server collection is never dropped from here); only a shard vitrine created is
    ever emptied (`vitrine.index.shard_state`). `durable`: an embedded shard with a write-ahead log
    (default: not for a `fresh` shard, a cache of its topic; a shard to be reused after a restart
    needs it, so that a crash leaves it consistent)."""
    # adapters are imported here: each engine's client loads only when that mode is used
    if settings.index_mode == "embedded":
        from vitrine.index.edge import EdgeIndex, EdgeIndexConfig

        config = EdgeIndexConfig(
            settings.index_path / name,
            dim,
            fresh=fresh,
            wal=(not fresh) if durable is None else durable,
            search_threads=settings.index_search_threads,
        )
        return EdgeIndex(config)
    if settings.index_mode == "server":
        if fresh:
            raise ValueError("fresh=True empties a local shard; a Qdrant server collection is never dropped")
        from vitrine.index.server import QdrantServerConfig, QdrantServerIndex

        config = QdrantServerConfig(
            settings.qdrant_url,
            name,
            dim,
            api_key=settings.qdrant_key(),
            prefer_grpc=settings.qdrant_prefer_grpc,
        )
        return QdrantServerIndex(config, create=create)
    raise ValueError(f"index_mode must be 'embedded' or 'server', got {settings.index_mode!r}")
