"""`make buf-breaking` is a gate that can close: the contract as it is passes against its last
release, and a change that would break a generated client (a field renumbered, an RPC
removed, a reason renamed) fails it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / ".tools" / "node_modules" / ".bin" / "buf"
RELEASE = re.search(r"^CONTRACT_RELEASE := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)


def _breaking(protos: Path) -> subprocess.CompletedProcess[str]:
    assert BUF.exists(), "buf is installed by `make buf-lint` (make test does it first)"
    assert RELEASE is not None
    release = ROOT / "protos" / RELEASE.group(1)
    return subprocess.run(  # noqa: S603 - our own tool, fixed arguments
        [str(BUF), "breaking", "--against", str(release), "--exclude-path", "essc/platform"],
        cwd=protos, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_contract_is_compatible_with_its_last_release() -> None:
    result = _breaking(ROOT / "protos")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("proto", "change", "finding"),
    [
        ("gateway.proto", (r"(string physical_card_number = )\d+", r"\g<1>99"), "was deleted"),
        ("gateway.proto", (r"\n  rpc Query\(", "\n  rpc QueryRenamed("), 'RPC "Query"'),
        (
            "errors.proto",
            (r"ERROR_REASON_FACTOR_REJECTED = 7", "ERROR_REASON_FACTOR_WRONG = 7"),
            "ERROR_REASON_FACTOR_REJECTED",
        ),
    ],
)
def test_a_change_that_breaks_clients_fails_the_gate(
    tmp_path: Path, proto: str, change: tuple[str, str], finding: str
) -> None:
    copy = tmp_path / "protos"
    shutil.copytree(ROOT / "protos", copy, ignore=shutil.ignore_patterns("releases"))
    path = copy / "essc" / "gateway" / "v1" / proto
    source = path.read_text()
    changed = re.sub(change[0], change[1], source, count=1)
    assert changed != source, "the mutation applies"
    path.write_text(changed)
    result = _breaking(copy)
    assert result.returncode != 0
    assert finding in result.stdout, result.stdout
