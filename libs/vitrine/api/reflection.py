"""Server reflection that resolves every symbol a reflection client asks for, methods included.

grpcio-reflection answers `file_containing_symbol` from a descriptor pool. protobuf's upb pool
(protobuf 7) finds messages, enums and services by name but not a service's *methods*
("vitrine.v1.Recommender.Similar"), which is what `grpcurl describe vitrine.v1.Recommender.Similar`
and `ghz --call vitrine.v1.Recommender/Similar` ask for: they got "Symbol not found". The pool
below answers a method with the file of its service and delegates everything else unchanged; it
goes in through `enable_server_reflection`'s public `pool` argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha import reflection


class MethodResolvingPool:
    """A descriptor pool whose `FindFileContainingSymbol` also resolves `package.Service.Method`."""

    def __init__(self, pool: descriptor_pool.DescriptorPool | None = None) -> None:
        self._pool = pool or descriptor_pool.Default()

    def FindFileContainingSymbol(self, symbol: str) -> Any:  # the pool's naming
        try:
            return self._pool.FindFileContainingSymbol(symbol)
        except KeyError:
            service, _, method = symbol.rpartition(".")
            if not service or not method:
                raise
            try:
                found = self._pool.FindServiceByName(service)
            except KeyError:
                raise KeyError(f"Couldn't find symbol {symbol}") from None
            if method not in found.methods_by_name:
                raise
            return found.file

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


def enable_reflection(service_names: Sequence[str], server: grpc.Server) -> None:
    """Serve reflection for `service_names` (and reflection itself) on `server`."""
    reflection.enable_server_reflection(
        (*service_names, reflection.SERVICE_NAME), server, MethodResolvingPool()
    )
