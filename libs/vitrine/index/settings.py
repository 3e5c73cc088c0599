"""Where a model's item vectors live and what they are called: one setting for both services.

`IndexSettings` is mixed into each service's settings class (`class EncoderSettings(IndexSettings,
..., BaseSettings)`), as `KafkaSecuritySettings` is, so both read the same fields under their own
environment prefix (`VITRINE_ENCODER_INDEX_MODE`, `VITRINE_RECOMMENDER_INDEX_MODE`, ...):

| mode | the encoder writes | the recommender reads |
|---|---|---|
| `embedded` | the vectors topic (`vectors_topic`) | a local Qdrant Edge shard per model under `index_path`, fed from that topic |
| `server` | a Qdrant collection (`qdrant_collection`) | the same collection, or the alias the encoder points at it |

Names, in one place (the encoder's `--backfill` writes exactly where the recommender's extra models
read): the live model's vectors are in `catalog.vectors` and behind the alias `vitrine`; any other
model version's in `catalog.vectors.<model version>` and the collection `vitrine-<model version>`.
A writer always writes a versioned collection (readers switch by alias); `vitrine.index.open_index`
opens the index these settings describe.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr

from vitrine.config import describe_with_variables, env_var
from vitrine.errors import ConfigError

log = logging.getLogger(__name__)

LIVE_VECTORS_TOPIC = "catalog.vectors"
LIVE_ALIAS = "vitrine"

IndexMode = Literal["embedded", "server"]


def versioned_topic(model_version: str) -> str:
    """The vectors topic of a model version that is not the live one (a backfill's)."""
    return f"{LIVE_VECTORS_TOPIC}.{model_version}"


def versioned_collection(model_version: str) -> str:
    """The Qdrant collection of a model version; the live one is also behind `LIVE_ALIAS`."""
    return f"{LIVE_ALIAS}-{model_version}"


class IndexSettings(BaseModel):
    """Mixin for a service's settings; its descriptions get the service's variables when mixed in."""

    index_mode: IndexMode = Field(
        "embedded",
        description="embedded: vectors go through the vectors topic into a local Qdrant Edge shard per "
        "recommender replica; server: straight into a Qdrant server",
    )
    vectors_topic: str = Field(
        "",
        description="embedded mode: the vectors topic; default catalog.vectors (the live model), or "
        "catalog.vectors.<model version> (an encoder's backfill)",
    )
    qdrant_url: str = Field(
        "http://127.0.0.1:6333",
        description="server mode: the Qdrant URL, or :memory: / a folder for qdrant-client's in-process mode",
    )
    qdrant_collection: str = Field(
        "",
        description="server mode: the collection (or alias) of this service's model; default: the "
        "encoder writes vitrine-<model version>, the recommender reads the alias vitrine",
    )
    qdrant_api_key: SecretStr | None = Field(None, description="server mode")
    qdrant_prefer_grpc: bool = Field(
        True, description="server mode: talk to Qdrant over gRPC (port 6334); false: its REST API only"
    )
    allow_plaintext_secrets: bool = Field(
        False,
        description="start even though a secret (the Qdrant API key, the recommender's bearer tokens) "
        "would cross a network unencrypted (http:// to another host, plaintext gRPC beyond loopback); "
        "only where the network itself is trusted or encrypted (a service mesh with mTLS)",
    )
    index_path: Path = Field(
        Path("artifacts/recommender-index"),
        description="embedded mode: the folder of this process's local Qdrant Edge shards (the "
        "recommender's, rebuilt from the vectors topics at every start)",
    )
    index_search_threads: int = Field(
        1,
        ge=0,
        le=64,
        description="embedded mode: threads each shard searches a query with; 1 = in the calling "
        "(gRPC handler) thread, which measured cheaper than a pool since requests already run in "
        "parallel (docs/BENCHMARKS.md, serving overhead); 0 = Qdrant Edge's default pool",
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Make each field's description name the subclass's variable: "<text> (<VARIABLE>)"."""
        super().__pydantic_init_subclass__(**kwargs)
        describe_with_variables(cls, IndexSettings)

    def topic_for(self, model_version: str, live: bool = True) -> str:
        """The vectors topic of a model version: `vectors_topic`, else the live or versioned name."""
        return self.vectors_topic or (LIVE_VECTORS_TOPIC if live else versioned_topic(model_version))

    def collection_to_write(self, model_version: str) -> str:
        """Where an encoder writes: `qdrant_collection`, else `vitrine-<model version>`."""
        return self.qdrant_collection or versioned_collection(model_version)

    def qdrant_key(self) -> str | None:
        """The Qdrant API key; the only place it is revealed. Refused (ConfigError) when it would go
        in clear text to another host, unless `allow_plaintext_secrets` (then a loud warning)."""
        if not self.qdrant_api_key:
            return None
        url = urlsplit(self.qdrant_url)
        if url.scheme == "http" and not is_loopback(url.hostname or ""):
            refuse_or_warn_plaintext(
                f"the Qdrant API key would be sent in clear text to {url.hostname} ({self.qdrant_url}): "
                "use an https:// URL",
                self.allow_plaintext_secrets,
                env_var(type(self), "allow_plaintext_secrets"),
            )
        return self.qdrant_api_key.get_secret_value()


def is_loopback(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


def refuse_or_warn_plaintext(problem: str, allowed: bool, variable: str) -> None:
    """A secret about to cross the network unencrypted: refuse to start, or warn loudly if allowed."""
    if not allowed:
        raise ConfigError(f"{problem}; or set {variable}=true if the network is trusted or encrypted")
    log.warning("SECURITY: %s (allowed by %s)", problem, variable)
