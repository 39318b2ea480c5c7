"""A real PKCS#11 token for tests: SoftHSM2 (Debian `softhsm2`, installed by
scripts/ensure-services.sh), with its token directory in a temporary directory.

SoftHSM2 reads `SOFTHSM2_CONF`, and finds its tokens, once: when the library is first
initialised in a process. So one token serves the whole test session, made before that; each
test gets a root key of its own label on it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

from essc_gateway.keys.pkcs11_root import Pkcs11Settings, provision_root_key

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
_token: Pkcs11Settings | None = None


def _session_token() -> Pkcs11Settings:
    global _token  # noqa: PLW0603 - one SoftHSM2 token per process, see above
    if _token is not None:
        return _token
    assert Path(SOFTHSM_MODULE).exists(), "SoftHSM2 is needed (scripts/ensure-services.sh)"
    directory = Path(tempfile.mkdtemp(prefix="softhsm-"))
    (directory / "tokens").mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {directory / 'tokens'}\n"
        "objectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    label, pin = "essc-tests", secrets.token_hex(8)
    subprocess.run(  # noqa: S603 - the test's own tool and arguments
        [
            shutil.which("softhsm2-util") or "softhsm2-util",
            "--init-token", "--free", "--label", label,
            "--so-pin", secrets.token_hex(8), "--pin", pin,
        ],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    _token = Pkcs11Settings(SOFTHSM_MODULE, label, pin)
    return _token


def new_root(*, with_root_key: bool = True) -> Pkcs11Settings:
    """The session's token with a root key of a new label (provisioned unless told not)."""
    settings = replace(_session_token(), key_label=f"root-{secrets.token_hex(6)}")
    if with_root_key:
        provision_root_key(settings)
    return settings
