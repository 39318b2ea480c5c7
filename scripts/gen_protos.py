"""Generate Python, gRPC and typed stubs from protos/ into src/ (or a chosen directory).

Usage: python scripts/gen_protos.py [--out DIR] [--check]

--check regenerates into a temporary directory and fails if it differs from src/, so CI
proves that the committed code matches the .proto files.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
SRC = ROOT / "src"
GENERATED_PACKAGE = "essc"


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
    for directory in [out / GENERATED_PACKAGE, *(out / GENERATED_PACKAGE).rglob("*")]:
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
    if not options.check:
        generate(SRC)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        problems = diff(Path(tmp) / GENERATED_PACKAGE, SRC / GENERATED_PACKAGE)
    for problem in problems:
        print(f"generated code out of date: {problem}", file=sys.stderr)
    if problems:
        print("run: make proto", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
