#!/usr/bin/env python3
"""Container health check for the vitrine image (installed as /usr/local/bin/vitrine-healthcheck).

    vitrine-healthcheck grpc 127.0.0.1:50051 [--service vitrine.v1.Recommender] [--tls-ca CA.pem
                        [--tls-cert C.pem --tls-key K.pem] [--server-name NAME]]
    vitrine-healthcheck http http://127.0.0.1:9101/metrics

Exit 0 when healthy (gRPC: the standard health service says SERVING; http: status 200), else 1 with
the reason on stderr. The official images of the other services have no curl, and the kubelet's own
gRPC probe speaks plaintext only: this one also works when the recommender serves TLS or mTLS.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from pathlib import Path


def check_grpc(args: argparse.Namespace) -> str | None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from vitrine.api.security import ClientTls, open_channel

    tls = None
    if args.tls_ca or args.server_name or args.tls_cert:
        tls = ClientTls(args.tls_ca, args.tls_cert, args.tls_key, args.server_name)
    try:
        with open_channel(args.target, tls) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
    except grpc.RpcError as e:
        return f"{e.code().name}: {e.details()}"
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return None


def check_http(args: argparse.Namespace) -> str | None:
    try:
        with urllib.request.urlopen(args.url, timeout=args.timeout) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except (urllib.error.URLError, OSError) as e:
        return str(e)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vitrine-healthcheck", description="vitrine container health check")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--timeout", type=float, default=3.0, help="seconds (default: %(default)s)")
    sub = parser.add_subparsers(dest="kind", required=True)
    grpc_parser = sub.add_parser("grpc", parents=[common], help="gRPC health service")
    grpc_parser.add_argument("target", help="host:port")
    grpc_parser.add_argument("--service", default="", help="service name ('' = the whole server)")
    grpc_parser.add_argument("--tls-ca", type=Path, default=None, help="CA bundle; enables TLS")
    grpc_parser.add_argument("--tls-cert", type=Path, default=None, help="client certificate (mTLS)")
    grpc_parser.add_argument("--tls-key", type=Path, default=None, help="client private key (mTLS)")
    grpc_parser.add_argument("--server-name", default=None, help="name to verify in the server certificate")
    grpc_parser.set_defaults(check=check_grpc)
    http_parser = sub.add_parser("http", parents=[common], help="HTTP GET returns 200")
    http_parser.add_argument("url")
    http_parser.set_defaults(check=check_http)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = args.check(args)
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
