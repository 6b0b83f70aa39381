"""Generate the committed protobuf modules from ``proto/*.proto``.

Run ``python -m timnode.protogen`` after editing a schema. The generator is the
``protoc`` bundled with ``grpcio-tools`` (pinned in the ``dev`` extra so that the
generated code matches the pinned ``protobuf`` runtime); ``tests/test_protogen.py``
regenerates into a temporary directory and fails when the committed files differ.
"""

from __future__ import annotations

import pathlib
import sys
import tempfile

__all__ = ["SCHEMAS", "generate", "main"]

ROOT = pathlib.Path(__file__).resolve().parent.parent

#: schema file (relative to ``proto/``) -> package directory that holds its code
SCHEMAS: dict[str, str] = {
    "client.proto": "im",
    "records.proto": "im",
    "peer.proto": "node",
    "dht.proto": "dht",
    "federation.proto": "im",
}


def generate(out_root: pathlib.Path) -> list[pathlib.Path]:
    """Generate every schema into ``out_root/<package>/``; return the files written."""
    from grpc_tools import protoc  # dev-only dependency

    written: list[pathlib.Path] = []
    for schema, package in SCHEMAS.items():
        out = out_root / package
        out.mkdir(parents=True, exist_ok=True)
        args = ["protoc", f"-I{ROOT / 'proto'}", f"--python_out={out}", f"--pyi_out={out}", schema]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {schema}")
        stem = schema.removesuffix(".proto")
        written += [out / f"{stem}_pb2.py", out / f"{stem}_pb2.pyi"]
    return written


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        for path in generate(pathlib.Path(tmp)):
            target = ROOT / path.relative_to(tmp)
            target.write_bytes(path.read_bytes())
            sys.stdout.write(f"wrote {target.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
