"""Signed checkpoints (C2SP tlog-checkpoint): the log's size and root, signed with the
evidence key, published every few seconds by whichever replica comes first (one per size)
and embedded in monthly statements. Whoever keeps one can later prove that the log was not
rewritten behind it."""

from __future__ import annotations

import asyncio
import logging

from essc_gateway.clock import Clock
from essc_gateway.evidence.log import StoredCheckpoint
from essc_gateway.evidence.ports import EvidenceLogStore
from essc_gateway.evidence.signed_note import Checkpoint, NoteSigner, NoteVerifier

log = logging.getLogger("essc_gateway.evidence")


class Checkpointer:
    def __init__(self, store: EvidenceLogStore, signer: NoteSigner, clock: Clock) -> None:
        self._store = store
        self._signer = signer
        self._clock = clock

    @property
    def verifier_key(self) -> str:
        return self._signer.verifier_key()

    @property
    def verifier(self) -> NoteVerifier:
        return self._signer.verifier()

    @property
    def origin(self) -> str:
        return self._signer.name

    async def publish(self) -> StoredCheckpoint:
        """A checkpoint of the log as it is now (the latest one if nothing was appended)."""
        head = await self._store.log_head()
        latest = await self._store.latest_checkpoint()
        if latest is not None and latest.size >= head.size:
            return latest
        note = self._signer.sign(Checkpoint(self.origin, head.size, head.root).body())
        checkpoint = StoredCheckpoint(head.size, head.root, note, self._clock.now())
        await self._store.save_checkpoint(checkpoint)  # another replica's of this size is as good
        return checkpoint

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.publish()
            except Exception as error:  # the next period tries again
                log.error("checkpoint not published: %s", type(error).__name__)
