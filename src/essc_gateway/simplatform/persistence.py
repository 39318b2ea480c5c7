"""The simulated platform's register kept in a file, so that a development run that is
stopped and started again (`make run` twice) still knows the cards the gateway's store
remembers. Saved every few seconds and at stop; a file that is not the current user's own
(mode wider than 0600), or of another population, is refused with a message, never loaded.

Development only: the real platform keeps its own register.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import stat
from pathlib import Path

from essc_gateway.simplatform.state import PlatformState

log = logging.getLogger("essc_gateway.simplatform")

_MAGIC = b"essc-simplatform-register-1\n"


class RegisterFileError(Exception):
    """The register file cannot be used; the message says why."""


class RegisterFile:
    def __init__(self, path: Path, state: PlatformState, population_id: str) -> None:
        """Args:
        population_id: says which population the register belongs to (seed and size):
            another population's cards would name people who do not exist.
        """
        self.path = path
        self._state = state
        self._header = _MAGIC + hashlib.sha256(population_id.encode()).hexdigest().encode() + b"\n"

    def load(self) -> int:
        """Restores the saved register, if any; returns how many cards it holds.

        Raises:
            RegisterFileError: the file is not private, or of another population.
        """
        if not self.path.exists():
            return 0
        mode = self.path.stat().st_mode
        if stat.S_IMODE(mode) & 0o077 or self.path.stat().st_uid != os.getuid():
            raise RegisterFileError(f"{self.path} must be the user's own with mode 0600")
        data = self.path.read_bytes()
        if not data.startswith(self._header):
            raise RegisterFileError(
                f"{self.path} is the register of another population: remove it to start afresh"
            )
        try:
            return self._state.restore(data[len(self._header) :])
        except Exception as error:  # cut short by a crash, or of another version
            raise RegisterFileError(
                f"{self.path} cannot be read ({type(error).__name__}): remove it to start afresh"
            ) from None

    def save(self) -> None:
        """Writes the register atomically, mode 0600."""
        self._write(self._state.snapshot())

    async def save_in_background(self) -> None:
        """`save`, the file written off the event loop (the snapshot is taken on it)."""
        await asyncio.to_thread(self._write, self._state.snapshot())

    def _write(self, snapshot: bytes) -> None:
        partial = self.path.with_suffix(".partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(self._header + snapshot)
            out.flush()
            os.fsync(out.fileno())
        partial.replace(self.path)
