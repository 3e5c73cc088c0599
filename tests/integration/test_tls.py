"""gRPC TLS, mTLS and bearer tokens over real loopback gRPC, with real certificates made by openssl.

The server certificate names only `recommender.vitrine.test` (no IP address), so every client here
must verify that name (ClientTls.server_name) and hostname checking is exercised, not bypassed.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from support.serving import index_only_registry

from vitrine.api.client import RecommenderClient
from vitrine.api.security import ClientTls, ServerSecurity, open_channel, server_security
from vitrine.api.server import GrpcServer, create_grpc_server
from vitrine.errors import ConfigError
from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
from vitrine.index.port import IndexedItem, ItemPayload
from vitrine.obs.metrics import RecommenderMetrics
from vitrine.v1 import recommender_pb2, recommender_pb2_grpc

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SERVER_NAME = "recommender.vitrine.test"
TOKEN = "tok-0123456789abcdef-current"
NEXT_TOKEN = "tok-fedcba9876543210-next"
DIM = 8


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca: Issued
    server: Issued
    client: Issued
    rogue_ca: Issued
    rogue_client: Issued  # signed by a CA the server does not trust


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {result.stderr}")


def _make_ca(d: Path, name: str) -> Issued:
    cert, key = d / f"{name}.pem", d / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip
    return Issued(cert, key)


def _issue(d: Path, ca: Issued, name: str, extensions: str) -> Issued:
    cert, key, csr, ext = d / f"{name}.pem", d / f"{name}.key", d / f"{name}.csr", d / f"{name}.ext"
    ext.write_text(extensions)
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}",
        cwd=d,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext),
        cwd=d,
    )  # fmt: skip
    return Issued(cert, key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if shutil.which("openssl") is None:
        pytest.fail("these tests make certificates with the openssl command, which is not installed")
    d = tmp_path_factory.mktemp("pki")
    ca, rogue_ca = _make_ca(d, "vitrine-test-ca"), _make_ca(d, "rogue-ca")
    leaf = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
    server = _issue(d, ca, "server", f"{leaf}extendedKeyUsage=serverAuth\nsubjectAltName=DNS:{SERVER_NAME}\n")
    client = _issue(d, ca, "client", f"{leaf}extendedKeyUsage=clientAuth\n")
    rogue_client = _issue(d, rogue_ca, "rogue-client", f"{leaf}extendedKeyUsage=clientAuth\n")
    return Pki(ca, server, client, rogue_ca, rogue_client)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeIndex]:
    index = EdgeIndex(EdgeIndexConfig(tmp_path_factory.mktemp("tls") / "shard", DIM))
    rng = np.random.default_rng(7)
    items = []
    for i in range(12):
        v = rng.normal(size=DIM).astype(np.float32)
        items.append(IndexedItem(f"p{i}", 1, v / np.linalg.norm(v), ItemPayload(title=f"item {i}")))
    index.apply(items)
    yield index
    index.close()


def _serve(index: EdgeIndex, security: ServerSecurity) -> GrpcServer:
    registry = index_only_registry(index, "tls-model")
    server = create_grpc_server(
        registry,
        RecommenderMetrics(),
        interceptors=security.interceptors,
        credentials=security.credentials,
    )
    server.start()
    server.set_serving(True)
    return server


@pytest.fixture(scope="module")
def tls_server(index: EdgeIndex, pki: Pki) -> Iterator[GrpcServer]:
    """TLS (no client certificates) and two valid tokens, as during a token rotation."""
    server = _serve(index, server_security(pki.server.cert, pki.server.key, tokens=(TOKEN, NEXT_TOKEN)))
    yield server
    server.stop(0)


@pytest.fixture(scope="module")
def mtls_server(index: EdgeIndex, pki: Pki) -> Iterator[GrpcServer]:
    security = server_security(pki.server.cert, pki.server.key, pki.ca.cert, tokens=(TOKEN,))
    assert security.mutual_tls
    server = _serve(index, security)
    yield server
    server.stop(0)


def _tls(pki: Pki, client: Issued | None = None, ca: Path | None = None) -> ClientTls:
    return ClientTls(
        ca_file=ca or pki.ca.cert,
        cert_file=client.cert if client else None,
        key_file=client.key if client else None,
        server_name=SERVER_NAME,
    )


def _similar(
    channel: grpc.Channel, metadata: tuple[tuple[str, str], ...] = ()
) -> recommender_pb2.RecommendResponse:
    stub = recommender_pb2_grpc.RecommenderStub(channel)
    return stub.Similar(
        recommender_pb2.SimilarRequest(product_id="p0", limit=3), timeout=5, metadata=metadata
    )


def _code(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()  # type: ignore[operator]
    return err.value.code(), err.value.details() or ""


# -- TLS + token --------------------------------------------------------------------------------


def test_a_verified_client_with_a_valid_token_is_served(tls_server: GrpcServer, pki: Pki) -> None:
    with RecommenderClient(f"127.0.0.1:{tls_server.port}", timeout_s=5, tls=_tls(pki), token=TOKEN) as client:
        result = client.similar("p0", limit=3)
    assert len(result.ids) == 3 and result.model_version == "tls-model"


def test_both_tokens_of_a_rotation_are_accepted(tls_server: GrpcServer, pki: Pki) -> None:
    for token in (TOKEN, NEXT_TOKEN):
        with open_channel(f"127.0.0.1:{tls_server.port}", _tls(pki), token) as channel:
            assert len(_similar(channel).items) == 3


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ((), "missing bearer token"),
        ((("authorization", "Bearer tok-0123456789abcdef-wrong!"),), "invalid bearer token"),
        ((("authorization", f"Basic {TOKEN}"),), "must be 'Bearer <token>'"),
        ((("authorization", f"Bearer {TOKEN}x"),), "invalid bearer token"),
    ],
)
def test_missing_or_wrong_tokens_are_unauthenticated(
    tls_server: GrpcServer, pki: Pki, metadata: tuple[tuple[str, str], ...], expected: str
) -> None:
    with open_channel(f"127.0.0.1:{tls_server.port}", _tls(pki)) as channel:
        code, details = _code(lambda: _similar(channel, metadata))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert expected in details
    assert "0123456789abcdef" not in details  # neither the presented nor a configured token is echoed


def test_unknown_methods_are_refused_alike_without_a_token(tls_server: GrpcServer, pki: Pki) -> None:
    with open_channel(f"127.0.0.1:{tls_server.port}", _tls(pki)) as channel:
        unknown = channel.unary_unary("/vitrine.v1.Recommender/NoSuchMethod")
        code, _ = _code(lambda: unknown(b"", timeout=5))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    with open_channel(f"127.0.0.1:{tls_server.port}", _tls(pki), TOKEN) as channel:
        unknown = channel.unary_unary("/vitrine.v1.Recommender/NoSuchMethod")
        code, _ = _code(lambda: unknown(b"", timeout=5))
    assert code == grpc.StatusCode.UNIMPLEMENTED


def test_health_is_open_and_reflection_needs_the_token(tls_server: GrpcServer, pki: Pki) -> None:
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    with open_channel(f"127.0.0.1:{tls_server.port}", _tls(pki)) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo
        code, _ = _code(lambda: list(reflect(iter([request]), timeout=5)))
        assert code == grpc.StatusCode.UNAUTHENTICATED
    with open_channel(f"127.0.0.1:{tls_server.port}", _tls(pki), TOKEN) as channel:
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo
        services = {
            s.name for r in reflect(iter([request]), timeout=5) for s in r.list_services_response.service
        }
    assert "vitrine.v1.Recommender" in services


def test_a_plaintext_client_cannot_talk_to_a_tls_server(tls_server: GrpcServer) -> None:
    with open_channel(f"127.0.0.1:{tls_server.port}", token=TOKEN) as channel:
        code, _ = _code(lambda: _similar(channel))
    assert code == grpc.StatusCode.UNAVAILABLE


def test_the_client_verifies_the_server_certificate(tls_server: GrpcServer, pki: Pki) -> None:
    untrusted = _tls(pki, ca=pki.rogue_ca.cert)  # a CA that did not sign the server certificate
    with open_channel(f"127.0.0.1:{tls_server.port}", untrusted, TOKEN) as channel:
        code, details = _code(lambda: _similar(channel))
    assert code == grpc.StatusCode.UNAVAILABLE and "CERTIFICATE_VERIFY_FAILED" in details
    wrong_name = ClientTls(ca_file=pki.ca.cert)  # verifies "127.0.0.1", which the certificate does not name
    with open_channel(f"127.0.0.1:{tls_server.port}", wrong_name, TOKEN) as channel:
        code, details = _code(lambda: _similar(channel))
    assert code == grpc.StatusCode.UNAVAILABLE and "Hostname Verification" in details


# -- mTLS -----------------------------------------------------------------------------------------


def test_mtls_serves_a_client_with_a_certificate_from_the_trusted_ca(
    mtls_server: GrpcServer, pki: Pki
) -> None:
    with open_channel(f"127.0.0.1:{mtls_server.port}", _tls(pki, pki.client), TOKEN) as channel:
        assert len(_similar(channel).items) == 3


@pytest.mark.parametrize("client", ["none", "rogue"])
def test_mtls_refuses_clients_without_a_trusted_certificate(
    mtls_server: GrpcServer, pki: Pki, client: str
) -> None:
    tls = _tls(pki, pki.rogue_client if client == "rogue" else None)
    with open_channel(f"127.0.0.1:{mtls_server.port}", tls, TOKEN) as channel:
        code, _ = _code(lambda: _similar(channel))
    assert code == grpc.StatusCode.UNAVAILABLE


def test_mtls_still_needs_the_token(mtls_server: GrpcServer, pki: Pki) -> None:
    with open_channel(f"127.0.0.1:{mtls_server.port}", _tls(pki, pki.client)) as channel:
        code, _ = _code(lambda: _similar(channel))
    assert code == grpc.StatusCode.UNAUTHENTICATED


# -- token without TLS (a mesh terminating TLS in a sidecar) ---------------------------------------


def test_a_token_works_on_a_plaintext_server(index: EdgeIndex) -> None:
    server = _serve(index, server_security(tokens=(TOKEN,)))
    try:
        with RecommenderClient(f"127.0.0.1:{server.port}", timeout_s=5, token=TOKEN) as client:
            assert len(client.similar("p0", limit=2).ids) == 2
        with RecommenderClient(f"127.0.0.1:{server.port}", timeout_s=5, retries=0) as client:
            code, _ = _code(lambda: client.similar("p0", limit=2))
        assert code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        server.stop(0)


# -- configuration errors and secrets --------------------------------------------------------------


def test_bad_security_configuration_is_a_config_error_that_names_no_secret(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="both a certificate and a private key"):
        server_security(cert_file=pki.server.cert)
    with pytest.raises(ConfigError, match="mTLS"):
        server_security(client_ca_file=pki.ca.cert)
    with pytest.raises(ConfigError, match="cannot read the TLS private key"):
        server_security(pki.server.cert, tmp_path / "missing.key")
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("definitely not a certificate")
    with pytest.raises(ConfigError, match="not a PEM file") as err:
        server_security(not_pem, pki.server.key)
    assert "definitely" not in str(err.value)
    with pytest.raises(ConfigError, match="shorter than 16") as err:
        server_security(tokens=("short-secret",))
    assert "short-secret" not in str(err.value)


def test_rejections_and_startup_never_log_a_token(
    tls_server: GrpcServer, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="vitrine")
    security = server_security(pki.server.cert, pki.server.key, tokens=(TOKEN,))
    logging.getLogger("vitrine.test").info("security: %s", security.describe())
    wrong = "Bearer tok-presented-by-an-attacker"
    with open_channel(f"127.0.0.1:{tls_server.port}", _tls(pki)) as channel:
        _code(lambda: _similar(channel, (("authorization", wrong),)))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "rejected a call to /vitrine.v1.Recommender/Similar: invalid bearer token" in text
    assert "TLS, bearer token" in text
    assert TOKEN not in text and "attacker" not in text


# -- the container health check script -------------------------------------------------------------


def test_the_image_health_check_speaks_tls(tls_server: GrpcServer, pki: Pki) -> None:
    probe = [
        sys.executable,
        str(REPO / "deploy" / "docker" / "healthcheck.py"),
        "grpc",
        f"127.0.0.1:{tls_server.port}",
        "--tls-ca",
        str(pki.ca.cert),
        "--server-name",
        SERVER_NAME,
    ]
    ok = subprocess.run(probe, capture_output=True, text=True, check=False, timeout=30)
    assert ok.returncode == 0, ok.stderr
    tls_server.set_serving(False)
    try:
        down = subprocess.run(probe, capture_output=True, text=True, check=False, timeout=30)
    finally:
        tls_server.set_serving(True)
    assert down.returncode == 1 and "NOT_SERVING" in down.stderr
    plaintext = subprocess.run(probe[:4], capture_output=True, text=True, check=False, timeout=30)
    assert plaintext.returncode == 1


# -- the recommender service, wired from its settings -------------------------------------------------


def test_the_recommender_service_wires_mtls_and_tokens_from_its_settings(
    model_dir: Path, kafka_settings: object, catalog_topics: object, pki: Pki, tmp_path: Path
) -> None:
    from vitrine_services.recommender.service import create_service
    from vitrine_services.recommender.settings import RecommenderSettings

    settings = RecommenderSettings(
        model_dir=model_dir,
        kafka_bootstrap_servers=kafka_settings.bootstrap_servers,  # type: ignore[attr-defined]
        vectors_topic=catalog_topics.vectors,  # type: ignore[attr-defined]
        index_path=tmp_path / "index",
        grpc_port=0,
        metrics_port=0,
        tls_cert_file=pki.server.cert,
        tls_key_file=pki.server.key,
        tls_client_ca_file=pki.ca.cert,
        auth_tokens=f"{TOKEN},{NEXT_TOKEN}",
    )
    service = create_service(settings)
    try:
        assert service.wait_ready(60)
        target = f"127.0.0.1:{service.grpc.port}"
        with open_channel(target, _tls(pki, pki.client)) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            code, _ = _code(lambda: _similar(channel))
            assert code == grpc.StatusCode.UNAUTHENTICATED
        with open_channel(target, _tls(pki, pki.client), NEXT_TOKEN) as channel:
            code, details = _code(lambda: _similar(channel))  # authenticated: the servicer answers
            assert code == grpc.StatusCode.NOT_FOUND and "p0" in details
        with open_channel(target, _tls(pki), TOKEN) as channel:  # no client certificate
            code, _ = _code(lambda: _similar(channel))
            assert code == grpc.StatusCode.UNAVAILABLE
    finally:
        service.stop()
