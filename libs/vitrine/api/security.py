"""gRPC transport security and authentication: TLS / mTLS credentials and bearer tokens.

Server side: `server_security(...)` turns the recommender's settings into server credentials (TLS,
and mTLS when a client CA is given) and a `BearerTokenInterceptor`. Client side: `open_channel(...)`
gives a channel with TLS (`ClientTls`) and/or a token sent as `authorization: Bearer <token>` on every
call.

What stays open without a token: the standard health service only, because the kubelet's gRPC probe
and most load balancers cannot send metadata. Server reflection needs the token like the API does
(it describes every method; `grpcurl -H 'authorization: Bearer ...'` works with it).

Tokens and key material are never logged, never put in error messages, and compared in constant time.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import grpc

from vitrine.errors import ConfigError

log = logging.getLogger(__name__)

HEALTH_SERVICE = "grpc.health.v1.Health"
AUTHORIZATION = "authorization"  # gRPC metadata keys are lowercase
MIN_TOKEN_CHARS = 16


def read_pem(path: Path, what: str) -> bytes:
    """A PEM file's bytes; a missing or unreadable file is a ConfigError naming the path, not its content."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read the {what} {path}: {e.strerror or e}") from e
    if b"-----BEGIN " not in data:
        raise ConfigError(f"the {what} {path} is not a PEM file")
    return data


def parse_tokens(value: str) -> tuple[str, ...]:
    """Split a comma-separated token list (the current token and, during a rotation, the next one).

    Raises ValueError, without echoing any token, when the list is empty or a token is too short or
    contains whitespace."""
    tokens = tuple(t.strip() for t in value.split(","))
    for i, token in enumerate(tokens):
        check_token(token, i)
    return tokens


def check_token(token: str, position: int = 0) -> None:
    """ValueError (naming the token's position, never its value) unless the token is usable."""
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"token #{position + 1} is shorter than {MIN_TOKEN_CHARS} characters")
    if any(c.isspace() or c == "," for c in token):
        raise ValueError(f"token #{position + 1} contains whitespace or a comma")


# -- server -------------------------------------------------------------------------------------


def server_credentials(
    cert_file: Path, key_file: Path, client_ca_file: Path | None = None
) -> grpc.ServerCredentials:
    """TLS server credentials from PEM files; with `client_ca_file`, clients must present a certificate
    signed by that CA (mTLS)."""
    cert = read_pem(cert_file, "TLS certificate")
    key = read_pem(key_file, "TLS private key")
    client_ca = read_pem(client_ca_file, "client CA bundle") if client_ca_file is not None else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Rejects calls without a valid `authorization: Bearer <token>` with UNAUTHENTICATED.

    Several tokens may be valid at once so a token can be rotated without downtime. Services in
    `open_services` (the health service by default) are served without a token."""

    def __init__(self, tokens: Sequence[str], open_services: Collection[str] = (HEALTH_SERVICE,)) -> None:
        if isinstance(tokens, str):
            raise TypeError(
                "tokens must be a sequence of strings; parse_tokens() splits a comma-separated list"
            )
        if not tokens:
            raise ConfigError("BearerTokenInterceptor needs at least one token")
        try:
            for i, token in enumerate(tokens):
                check_token(token, i)
        except ValueError as e:
            raise ConfigError(f"invalid bearer token configuration: {e}") from e
        self._tokens = tuple(t.encode() for t in tokens)
        self._open = frozenset(open_services)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method  # "/package.Service/Method"
        if method.lstrip("/").partition("/")[0] in self._open:
            return continuation(handler_call_details)
        problem = self._check(handler_call_details.invocation_metadata or ())
        handler = continuation(handler_call_details)
        if problem is None:
            return handler  # None for an unknown method: the server answers UNIMPLEMENTED
        log.debug("rejected a call to %s: %s", method, problem)  # never the presented value
        # unknown methods are refused the same way, so callers without a token learn nothing
        return _abort_handler(handler, problem)

    def _check(self, metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
        values = [v for k, v in metadata if k == AUTHORIZATION]
        if not values:
            return "missing bearer token: send the metadata 'authorization: Bearer <token>'"
        if len(values) > 1:
            return "more than one authorization header"
        value = values[0].decode("latin-1") if isinstance(values[0], bytes) else values[0]
        scheme, _, presented = value.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return "the authorization metadata must be 'Bearer <token>'"
        candidate = presented.strip().encode()
        # Compare with every configured token, without stopping early, so timing tells nothing.
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(candidate, token)
        return None if matched else "invalid bearer token"


def _abort_handler(handler: grpc.RpcMethodHandler | None, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` (unary if unknown) that ends the call with UNAUTHENTICATED."""

    def abort(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    make = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(bool(handler and handler.request_streaming), bool(handler and handler.response_streaming))]
    return make(
        abort,
        request_deserializer=handler.request_deserializer if handler else None,
        response_serializer=handler.response_serializer if handler else None,
    )


@dataclass(frozen=True)
class ServerSecurity:
    """What `create_grpc_server` needs: credentials (None = plaintext) and interceptors."""

    credentials: grpc.ServerCredentials | None = None
    interceptors: tuple[grpc.ServerInterceptor, ...] = ()
    mutual_tls: bool = False

    def describe(self) -> str:
        """For the start-up log line: what is on, never how."""
        transport = "mTLS" if self.mutual_tls else "TLS" if self.credentials is not None else "plaintext"
        auth = (
            "bearer token"
            if any(isinstance(i, BearerTokenInterceptor) for i in self.interceptors)
            else "no auth"
        )
        return f"{transport}, {auth}"

    @property
    def is_open(self) -> bool:
        return self.credentials is None and not self.interceptors


def server_security(
    cert_file: Path | None = None,
    key_file: Path | None = None,
    client_ca_file: Path | None = None,
    tokens: Sequence[str] = (),
) -> ServerSecurity:
    """Credentials and interceptors from the settings' TLS files and bearer tokens (all optional)."""
    if (cert_file is None) != (key_file is None):
        raise ConfigError("TLS needs both a certificate and a private key file")
    if client_ca_file is not None and cert_file is None:
        raise ConfigError("mTLS (a client CA file) needs TLS: set the certificate and private key files too")
    credentials = None
    if cert_file is not None and key_file is not None:
        credentials = server_credentials(cert_file, key_file, client_ca_file)
    interceptors = (BearerTokenInterceptor(tokens),) if tokens else ()
    return ServerSecurity(credentials, interceptors, mutual_tls=client_ca_file is not None)


# -- client -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientTls:
    """How a client verifies the server (and, for mTLS, proves who it is).

    ca_file: CA bundle that signed the server certificate (None = the system's roots).
    cert_file / key_file: the client certificate and key, for servers that require mTLS.
    server_name: the name to verify in the server certificate when it differs from the target's host
    (e.g. connecting by IP address or through a tunnel)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError("a client certificate needs both cert_file and key_file")
        return grpc.ssl_channel_credentials(
            root_certificates=read_pem(self.ca_file, "CA bundle") if self.ca_file else None,
            private_key=read_pem(self.key_file, "client private key") if self.key_file else None,
            certificate_chain=read_pem(self.cert_file, "client certificate") if self.cert_file else None,
        )

    def options(self) -> list[tuple[str, Any]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def token_metadata(token: str) -> tuple[tuple[str, str]]:
    """The call metadata that carries a bearer token."""
    return ((AUTHORIZATION, f"Bearer {token}"),)


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Sequence[tuple[str, str | bytes]] | None
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class TokenClientInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds `authorization: Bearer <token>` to every call of a channel (any method, any shape).

    An interceptor rather than call credentials: gRPC refuses call credentials on plaintext channels,
    and inside a mesh that terminates TLS in a sidecar the channel is plaintext."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ConfigError("an empty bearer token")
        self._metadata = token_metadata(token)

    def _details(self, details: grpc.ClientCallDetails) -> _CallDetails:
        metadata = [m for m in (details.metadata or ()) if m[0] != AUTHORIZATION]
        return _CallDetails(
            details.method,
            details.timeout,
            [*metadata, *self._metadata],
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request_iterator)


def open_channel(
    target: str,
    tls: ClientTls | None = None,
    token: str | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.Channel:
    """A channel to `target`: TLS when `tls` is given (else plaintext), the token on every call when given."""
    if tls is not None:
        channel = grpc.secure_channel(target, tls.credentials(), options=[*options, *tls.options()])
    else:
        channel = grpc.insecure_channel(target, options=list(options))
    if token:
        channel = grpc.intercept_channel(channel, TokenClientInterceptor(token))
    return channel
