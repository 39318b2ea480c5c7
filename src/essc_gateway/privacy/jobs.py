"""Erasures of many holders as one audited operation (A14(5): a bank stopping the service)
and the scheduled retention runs (A13(3), A14(4)): a job row leased by one replica at a
time, throttled, resumed after a kill by whichever replica looks next. Each holder's
erasure is its own transaction with its own evidence entry."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import date, timedelta
from typing import Protocol

from essc_gateway.clock import Clock
from essc_gateway.domain.citizen_id import InvalidCitizenIdError, parse_citizen_id
from essc_gateway.errors import PreconditionFailed
from essc_gateway.keys.keyring import DecryptionError
from essc_gateway.privacy.erasure import HolderErasure
from essc_gateway.privacy.model import (
    ErasedCounts,
    Erasure,
    ErasureGround,
    ErasureJob,
    ErasureJobKind,
    RetentionSettings,
)
from essc_gateway.privacy.ports import ErasureJobStore, PrivacyStore
from essc_gateway.service.vault import Vault
from essc_gateway.store.base import CardRecord, ClaimLost, StoreError

log = logging.getLogger(__name__)

SYSTEM = "retention-job"
"""The operator a retention run's erasures name."""
_GROUNDS = {
    ErasureJobKind.BANK_STOPPED: ErasureGround.SERVICE_ENDED_BY_BANK,
    ErasureJobKind.RETENTION: ErasureGround.RETENTION_ENDED,
}


class ErasureStore(ErasureJobStore, PrivacyStore, Protocol):
    """What the jobs need of the store."""


class ErasureJobs:
    def __init__(
        self,
        store: ErasureStore,
        erasure: HolderErasure,
        vault: Vault,
        clock: Clock,
        replica_id: str,
        banks: tuple[str, ...],
        retention: RetentionSettings,
        batch: int = 50,
        pause: float = 0.05,
        lease: timedelta = timedelta(seconds=30),
    ) -> None:
        self._store = store
        self._erasure = erasure
        self._vault = vault
        self._clock = clock
        self._me = replica_id
        self._banks = banks
        self._retention = retention
        self._batch = batch
        self._pause = pause
        self._lease = lease
        self._scheduled_on: date | None = None

    async def erase_bank(self, bank_id: str, reference: str, operator: str) -> ErasureJob:
        """Starts the erasure of every holder of `bank_id` (A14(5)); its progress is in
        `jobs()`."""
        job = ErasureJob(
            job_id="bank-" + uuid.uuid4().hex,
            kind=ErasureJobKind.BANK_STOPPED,
            bank_id=bank_id,
            reference=reference,
            operator=operator,
            started_at=self._clock.now(),
        )
        await self._store.start_erasure_job(job)
        return job

    async def jobs(self) -> list[ErasureJob]:
        return await self._store.erasure_jobs()

    async def schedule_retention(self) -> None:
        """Today's retention run of each bank: one job id per bank and day, so that however
        many replicas ask, one run is made. Asked once a day by each replica (not at every
        look: each ask is a durable write)."""
        today = self._clock.now().date()
        if today == self._scheduled_on:
            return
        for bank_id in self._banks:
            await self._store.start_erasure_job(
                ErasureJob(
                    job_id=f"retention-{bank_id}-{today.isoformat()}",
                    kind=ErasureJobKind.RETENTION,
                    bank_id=bank_id,
                    reference=f"retention run of {today.isoformat()}",
                    operator=SYSTEM,
                    started_at=self._clock.now(),
                )
            )
        self._scheduled_on = today

    async def run(self, interval: float) -> None:
        while True:
            try:
                await self.schedule_retention()
                await self.work_once()
            except StoreError as error:
                log.warning("erasure jobs: %s", error)
            except Exception:  # never the end of erasure jobs on this replica
                log.exception("erasure jobs: unexpected failure")
            await asyncio.sleep(interval)

    async def work_once(self) -> None:
        for job in await self._store.erasure_jobs():
            if job.finished_at is not None:
                continue
            now = self._clock.now()
            leased = await self._store.lease_erasure_job(
                job.job_id, self._me, now, now + self._lease
            )
            if leased is None:
                continue
            try:
                await self._work(leased)
            except ClaimLost:
                log.info("erasure job %s: taken over by another replica", job.job_id)

    async def _work(self, job: ErasureJob) -> None:
        waiting: set[str] = set()
        changed = 0
        while True:
            tokens = [t for t in await self._next(job, len(waiting)) if t not in waiting]
            if not tokens:
                break
            unsettled = await self._erasure.unsettled_tokens(job.bank_id)
            erased = 0
            for token in tokens:
                if token in unsettled:  # its issuance settles first; the next look retries
                    waiting.add(token)
                    continue
                try:
                    done = await self._erasure.erase_tokens(
                        job.bank_id, [token], _GROUNDS[job.kind], job.reference, job.operator
                    )
                except PreconditionFailed:  # an issuance was claimed since the look above
                    waiting.add(token)
                    continue
                erased += done is not None
            changed += erased
            await self._progress(job, erased, len(waiting))
            await asyncio.sleep(self._pause)
        if job.kind is ErasureJobKind.RETENTION:
            changed += await self._guardians_of_adults(job, len(waiting))
        if changed:  # a purge rewrites the holder tables (PostgreSQL): only when needed
            await self._erasure.purge()
        if waiting:
            log.info("erasure job %s: %d holders wait for an issuance", job.job_id, len(waiting))
            return  # unfinished: the lease runs out and the next look tries them again
        await self._store.finish_erasure_job(job.job_id, self._me, self._clock.now())
        log.info("erasure job %s finished", job.job_id)

    async def _next(self, job: ErasureJob, skipped: int) -> list[str]:
        limit = self._batch + skipped
        if job.kind is ErasureJobKind.BANK_STOPPED:
            return await self._store.holder_tokens_of_bank(job.bank_id, limit)
        cutoff = self._clock.now() - self._retention.after_termination
        return await self._store.retention_tokens(job.bank_id, cutoff, limit)

    async def _progress(self, job: ErasureJob, erased: int, waiting: int) -> None:
        """Counts a batch and renews the lease; raises ClaimLost if it ran out meanwhile."""
        until = self._clock.now() + self._lease
        await self._store.erasure_job_progress(job.job_id, self._me, erased, waiting, until)

    async def _guardians_of_adults(self, job: ErasureJob, waiting: int) -> int:
        """A guardian's data is needed while the holder is a minor (A5): removed once the
        holder has been of age for the configured time (A13(3)). Page by page, the lease
        renewed after each; a card that cannot be judged is logged and left for the next
        run, not the end of the run."""
        cleared = 0
        after = ""
        while cards := await self._store.guardian_cards(job.bank_id, after, self._batch):
            after = cards[-1].essc_id
            for card in cards:
                try:
                    cleared += await self._clear_if_of_age(job, card)
                except (DecryptionError, InvalidCitizenIdError, ValueError) as error:
                    log.warning(
                        "erasure job %s: a guardian card not judged: %s",
                        job.job_id, type(error).__name__,
                    )  # fmt: skip
            await self._progress(job, 0, waiting)
            await asyncio.sleep(self._pause)
        return cleared

    async def _clear_if_of_age(self, job: ErasureJob, card: CardRecord) -> bool:
        now = self._clock.now()
        birth = parse_citizen_id(await self._vault.id_number(card), now.date()).birth_date
        if now.date() < _eighteenth_birthday(birth) + self._retention.guardian_after_majority:
            return False
        return await self._store.clear_guardian(
            card.essc_id,
            Erasure(
                erasure_id=uuid.uuid4().hex,
                bank_id=job.bank_id,
                ground=ErasureGround.RETENTION_ENDED,
                reference=job.reference + ": a guardian's data after the holder came of age",
                operator=job.operator,
                at=now,
                counts=ErasedCounts(cards=0, holder_keys=0, records_unlinked=0, other_rows=1),
            ),
        )


def _eighteenth_birthday(birth: date) -> date:
    try:
        return birth.replace(year=birth.year + 18)
    except ValueError:  # 29 February: the day after 28 February
        return date(birth.year + 18, 3, 1)
