"""The evidence signing key file: made whole once (however many workers start at once),
readable by the gateway's user only, refused with a clear message otherwise."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from essc_gateway.evidence.signing_key import SigningKeyError, load_signer


def test_workers_starting_at_once_share_one_whole_key(tmp_path: Path) -> None:
    path = tmp_path / "state" / "evidence-key.pem"
    with ThreadPoolExecutor(8) as pool:
        signers = list(
            pool.map(lambda _: load_signer(path, "essc-gateway/evidence", True), range(8))
        )
    assert len({s.verifier_key() for s in signers}) == 1
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["evidence-key.pem"]


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evidence-key.pem"
    load_signer(path, "essc-gateway/evidence", create=True)
    path.chmod(0o644)
    with pytest.raises(SigningKeyError, match="mode 0644 lets others read it"):
        load_signer(path, "essc-gateway/evidence")


def test_a_missing_or_foreign_key_is_refused_without_its_content(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="cannot read"):
        load_signer(tmp_path / "absent.pem", "essc-gateway/evidence")
    foreign = tmp_path / "rsa.pem"
    foreign.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n")
    foreign.chmod(0o600)
    with pytest.raises(SigningKeyError) as refused:
        load_signer(foreign, "essc-gateway/evidence")
    assert "c2VjcmV0" not in str(refused.value)
