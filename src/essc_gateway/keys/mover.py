"""Moving a bank's holder keys off older DATA key versions (K6, K7): after a rotation each is
re-wrapped under the new version (the data it seals is untouched); after a key incident each
is replaced by a fresh key and the holder's fields are sealed again under it.

Every replica runs the mover; a job is worked by whichever replica holds its lease in the
store, in batches throttled to `rate` holder keys a second. Each batch commits its moves with
the job's progress; a move applies only if the holder key is still the old one, so a job
resumed after a kill -9 (the lease expires, any replica takes it) moves nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from datetime import timedelta

from essc_gateway.clock import Clock
from essc_gateway.keys.hierarchy import KeyHierarchy
from essc_gateway.keys.holder_keys import HolderKeys
from essc_gateway.keys.keyring import HolderKey
from essc_gateway.keys.model import (
    HolderKeyMove,
    KeyJob,
    KeyPurpose,
    LookupMove,
    WrappedHolderKey,
)
from essc_gateway.keys.ports import KeyStore
from essc_gateway.keys.suites import aead
from essc_gateway.service.vault import Vault
from essc_gateway.store.base import ClaimLost, StoreError

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=30)


class HolderKeyMover:
    def __init__(
        self,
        store: KeyStore,
        keys: KeyHierarchy,
        holder_keys: HolderKeys,
        vault: Vault,
        clock: Clock,
        replica_id: str,
        *,
        rate: float = 500.0,
        batch: int = 50,
        lease: timedelta = LEASE,
    ) -> None:
        self._store = store
        self._keys = keys
        self._holder_keys = holder_keys
        self._vault = vault
        self._clock = clock
        self._me = replica_id
        self._pause = batch / rate
        self._batch = batch
        self._lease = lease

    async def start(
        self,
        bank_id: str,
        target_version: int,
        *,
        rekey: bool,
        purpose: KeyPurpose = KeyPurpose.DATA,
    ) -> KeyJob:
        """Records the job of moving the bank's holder keys (DATA) or lookup tokens (LOOKUP)
        to `target_version`."""
        now = self._clock.now()
        total = (
            await self._store.count_holder_tokens_to_move(bank_id, target_version)
            if purpose is KeyPurpose.LOOKUP
            else await self._store.count_holder_keys_to_move(bank_id, target_version)
        )
        job = KeyJob(
            job_id=f"{bank_id}/{purpose.value}/v{target_version}" + ("/rekey" if rekey else ""),
            bank_id=bank_id,
            target_version=target_version,
            rekey=rekey,
            done=0,
            total=total,
            started_at=now,
            finished_at=None,
            holder=None,
            lease_until=None,
            purpose=purpose,
        )
        await self._store.start_key_job(job)
        return job

    async def run(self, interval: float) -> None:
        """Works every unfinished job this replica can lease, then looks again."""
        while True:
            try:
                await self.work_once()
            except StoreError as error:  # the store away: try again at the next look
                log.warning("key jobs: %s", error)
            except Exception:  # never the end of key jobs on this replica
                log.exception("key jobs: unexpected failure")
            await asyncio.sleep(interval)

    async def work_once(self) -> None:
        for job in await self._store.key_jobs():
            if job.finished_at is not None:
                continue
            now = self._clock.now()
            leased = await self._store.lease_key_job(job.job_id, self._me, now, now + self._lease)
            if leased is None:
                continue
            try:
                await self._work(leased)
            except ClaimLost:
                log.info("key job %s: taken over by another replica", job.job_id)
            except StoreError:
                raise
            except Exception as error:  # one job's failure must not stop the others
                # Type only: a message could quote what a card holds. The job stays
                # unfinished; its lease runs out and the next look tries it again.
                log.error("key job %s failed: %s", job.job_id, type(error).__name__)

    async def _work(self, job: KeyJob) -> None:
        if job.purpose is KeyPurpose.LOOKUP:
            await self._work_lookup(job)
            return
        if not await self._caught_up(job, lambda: self._keys.bank(job.bank_id).data_version):
            return
        keyring = self._keys.bank(job.bank_id)
        while keyring.data_version == job.target_version:
            batch = await self._store.holder_keys_to_move(
                job.bank_id, job.target_version, self._batch
            )
            if not batch:
                break
            moves = [await self._move(job, stored) for stored in batch]
            until = self._clock.now() + self._lease
            await self._store.move_holder_keys(job.job_id, self._me, moves, until)
            for move in moves:
                self._holder_keys.forget(job.bank_id, move.old.holder_token)
            await asyncio.sleep(self._pause)
            keyring = self._keys.bank(job.bank_id)
        # Done, or superseded by a newer version (whose own job moves everything).
        await self._store.finish_key_job(job.job_id, self._me, self._clock.now())
        log.info("key job %s finished", job.job_id)

    async def _caught_up(self, job: KeyJob, version: Callable[[], int]) -> bool:
        """Whether this replica holds the job's target version (reloading once if not):
        a replica behind must neither move rows nor close the job as done."""
        if version() < job.target_version:
            await self._keys.reload([job.bank_id])
        if version() < job.target_version:
            log.info("key job %s: keys not reloaded yet, left for later", job.job_id)
            return False
        return True

    async def _work_lookup(self, job: KeyJob) -> None:
        if not await self._caught_up(job, lambda: self._keys.bank(job.bank_id).lookup_version):
            return
        while self._keys.bank(job.bank_id).lookup_version == job.target_version:
            tokens = await self._store.holder_tokens_to_move(
                job.bank_id, job.target_version, self._batch
            )
            if not tokens:
                break
            moves = [await self._lookup_move(job.bank_id, token) for token in tokens]
            until = self._clock.now() + self._lease
            await self._store.move_lookup_tokens(job.job_id, self._me, moves, until)
            for move in moves:
                self._holder_keys.forget(job.bank_id, move.old_token)
                self._holder_keys.forget(job.bank_id, move.new_token)
            await asyncio.sleep(self._pause)
        await self._store.finish_key_job(job.job_id, self._me, self._clock.now())
        log.info("key job %s finished", job.job_id)

    async def _lookup_move(self, bank_id: str, old_token: str) -> LookupMove:
        cards = await self._store.cards_for_holder(bank_id, old_token)
        new_token = self._vault.holder_token(bank_id, await self._vault.id_number(cards[0]))
        new_key = await self._holder_keys.existing(bank_id, new_token)
        if new_key is None:
            return LookupMove(bank_id, old_token, new_token)
        old_key = await self._holder_keys.existing(bank_id, old_token)
        assert old_key is not None  # the cards opened above
        reseals = tuple(self._vault.reseal_card(c, old_key, new_key) for c in cards)
        return LookupMove(bank_id, old_token, new_token, reseals)

    async def _move(self, job: KeyJob, stored: WrappedHolderKey) -> HolderKeyMove:
        suite, raw = self._holder_keys.unwrap_raw(stored)
        now = self._clock.now()
        # A holder key wrapped under a compromised DATA version is exposed with it: replaced,
        # whichever job meets it (a rotation's job may run after the incident's).
        compromised = self._keys.bank(stored.bank_id).data_version_compromised(stored.data_version)
        if not job.rekey and not compromised:
            new = self._holder_keys.wrap(
                stored.bank_id, stored.holder_token, stored.key_id, suite, raw, now
            )
            return HolderKeyMove(stored, new)
        old_key = HolderKey(stored.key_id, suite, aead(suite, raw))
        new_suite = self._keys.bank(stored.bank_id).data_suite
        new_raw = secrets.token_bytes(new_suite.key_bytes)
        new_key = HolderKey("hk_" + secrets.token_hex(12), new_suite, aead(new_suite, new_raw))
        cards = await self._store.cards_for_holder(stored.bank_id, stored.holder_token)
        reseals = tuple(self._vault.reseal_card(card, old_key, new_key) for card in cards)
        new = self._holder_keys.wrap(
            stored.bank_id, stored.holder_token, new_key.key_id, new_suite, new_raw, now
        )
        return HolderKeyMove(stored, new, reseals)
