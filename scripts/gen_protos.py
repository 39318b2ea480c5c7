"""Generate Python, gRPC and typed stubs from protos/ into the distributions that own them.

Usage: python scripts/gen_protos.py [--check]

The bank-facing contract (essc/gateway) goes to the client distribution
(clients/python/src), which the server depends on; the simulated platform's (essc/platform)
stays in the server (src). `essc` itself is a namespace package shared by the two.

--check regenerates into a temporary directory and fails if it differs from what is
committed, so CI proves that the committed code matches the .proto files.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GENERATED_PACKAGE = "essc"
OWNERS = {
    "gateway": ROOT / "clients" / "python" / "src" / GENERATED_PACKAGE / "gateway",
    "platform": ROOT / "src" / GENERATED_PACKAGE / "platform",
}
"""Each generated sub-package, by the directory that holds it."""


def generate(out: Path) -> None:
    proto_files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    well_known = str(resources.files("grpc_tools") / "_proto")
    bin_dir = Path(sys.executable).parent
    args = [
        "grpc_tools.protoc",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"-I{PROTOS}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *proto_files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Not in essc/ itself: a namespace package that both distributions contribute to.
    for directory in (out / GENERATED_PACKAGE).rglob("*"):
        if directory.is_dir():
            (directory / "__init__.py").touch()
            (directory / "py.typed").touch()


def diff(expected: Path, actual: Path) -> list[str]:
    expected_files = {p.relative_to(expected) for p in expected.rglob("*") if p.is_file()}
    actual_files = {
        p.relative_to(actual)
        for p in actual.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    problems = [f"missing: {p}" for p in sorted(expected_files - actual_files)]
    problems += [f"stale: {p}" for p in sorted(actual_files - expected_files)]
    problems += [
        f"differs: {p}"
        for p in sorted(expected_files & actual_files)
        if not filecmp.cmp(expected / p, actual / p, shallow=False)
    ]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generated = Path(tmp) / GENERATED_PACKAGE
        generate(Path(tmp))
        if {p.name for p in generated.iterdir()} != set(OWNERS):
            raise SystemExit(f"a proto package without an owner in {sorted(OWNERS)}")
        if not options.check:
            for package, destination in OWNERS.items():
                shutil.rmtree(destination, ignore_errors=True)
                shutil.copytree(generated / package, destination)
            return 0
        problems = [
            problem
            for package, destination in OWNERS.items()
            for problem in diff(generated / package, destination)
        ]
    for problem in problems:
        print(f"generated code out of date: {problem}", file=sys.stderr)
    if problems:
        print("run: make proto", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
