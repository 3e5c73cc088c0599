"""Generate the Python protobuf/gRPC modules into libs/vitrine/v1 (the `vitrine.v1` package).

Run by `make proto` (and so by every set-up command). The output is build output: git-ignored, never
hand-edited. `--protoset FILE` (`make protoset`) writes the compiled descriptors instead, imports
included, for tools that take a protoset (`ghz --protoset`, `grpcurl -protoset`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
OUT_ROOT = PROTO_ROOT.parent / "libs"


def main(argv: list[str]) -> int:
    sources = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "vitrine" / "v1").glob("*.proto"))
    include = Path(protoc.__file__).resolve().parent / "_proto"
    common = ["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{include}"]
    if argv[:1] == ["--protoset"] and len(argv) == 2:
        out = Path(argv[1]).resolve()
        rc = protoc.main([*common, "--include_imports", f"--descriptor_set_out={out}", *sources])
        if rc == 0:
            print(f"wrote {out}")
        return int(rc)
    if argv:
        print("usage: generate.py [--protoset FILE]", file=sys.stderr)
        return 2
    args = [
        *common,
        f"--python_out={OUT_ROOT}",
        f"--pyi_out={OUT_ROOT}",
        f"--grpc_python_out={OUT_ROOT}",
        *sources,
    ]
    rc = protoc.main(args)
    if rc != 0:
        print(f"protoc failed with exit code {rc}", file=sys.stderr)
        return rc
    init = OUT_ROOT / "vitrine" / "v1" / "__init__.py"
    init.write_text('"""Generated protobuf and gRPC modules (protos/generate.py). Do not edit."""\n')
    print(f"generated {len(sources)} proto files into {init.parent}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
