"""A holder's erasure (A14): the holder's key destroyed (crypto-shredding: every copy of the
holder's fields, backups included, becomes unreadable) and every row naming the holder
deleted in one transaction, recorded in the evidence log under a pseudonym that leads to
nobody. Earlier liability records stay verifiable; their holder reference means nothing once
its link is gone. After it the gateway treats the person as unknown."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence

from essc_gateway.clock import Clock
from essc_gateway.errors import ErrorReason, NotFound, PreconditionFailed
from essc_gateway.keys.keyring import DecryptionError
from essc_gateway.privacy.model import ErasedCounts, Erasure, ErasureGround
from essc_gateway.privacy.ports import PrivacyStore
from essc_gateway.service.vault import Vault

log = logging.getLogger(__name__)
_DRAFT_TOKENS_KEPT = 10_000


class HolderErasure:
    def __init__(self, store: PrivacyStore, vault: Vault, clock: Clock) -> None:
        self._store = store
        self._vault = vault
        self._clock = clock
        self._draft_tokens: dict[tuple[str, bytes], str] = {}
        """(bank, the sealed draft's digest) → the holder token it names: a bank-wide job
        checks the same unsettled drafts for every holder."""

    async def erase(
        self, bank_id: str, id_number: str, ground: ErasureGround, reference: str, operator: str
    ) -> Erasure:
        """Raises:
        NotFound: HOLDER_NOT_FOUND, the bank holds nothing of this person; nothing changed.
        PreconditionFailed: HOLDER_ISSUANCE_UNSETTLED, an issuance of the holder is in
            flight, in doubt or queued: erasing now could leave a card on the platform that
            the gateway forgot. Retry once it has settled.
        """
        tokens = [token for _, token in self._vault.holder_tokens(id_number, bank_id)]
        erased = await self.erase_tokens(bank_id, tokens, ground, reference, operator)
        if erased is None:
            raise NotFound(
                "the bank holds no data of this holder", reason=ErrorReason.HOLDER_NOT_FOUND
            )
        await self.purge()
        return erased

    async def purge(self) -> None:
        """What the deleted rows left in the database's files, removed (SQLite: the WAL
        emptied; PostgreSQL: the holder tables rewritten). Crypto-shredding already made it
        unreadable; this removes the bytes themselves."""
        if not await self._store.purge_erased():
            log.warning("erased rows not purged from the files yet: a reader held the WAL")

    async def erase_tokens(
        self,
        bank_id: str,
        tokens: Sequence[str],
        ground: ErasureGround,
        reference: str,
        operator: str,
    ) -> Erasure | None:
        """The erasure of the holder filed under `tokens` (the bank-wide and retention jobs
        know holders by token only); None when no row named it. Raises PreconditionFailed
        (HOLDER_ISSUANCE_UNSETTLED) as `erase` does: checked inside the erasure's
        transaction, with new issuances held back until it commits."""
        wanted = frozenset(tokens)

        def refuse_if_unsettled(drafts: list[tuple[str, bytes]]) -> None:
            if not wanted.isdisjoint(self._tokens_of(bank_id, drafts)):
                raise PreconditionFailed(
                    "an issuance of this holder has not settled; erase once it has",
                    reason=ErrorReason.HOLDER_ISSUANCE_UNSETTLED,
                )

        def recorded(counts: ErasedCounts) -> Erasure:
            return Erasure(
                erasure_id=uuid.uuid4().hex,
                bank_id=bank_id,
                ground=ground,
                reference=reference,
                operator=operator,
                at=self._clock.now(),
                counts=counts,
            )

        erased = await self._store.erase_holder(bank_id, tokens, recorded, refuse_if_unsettled)
        for token in tokens:  # this replica's copy; the others drop theirs (HOLDERS topic)
            self._vault.forget_key(bank_id, token)
        if erased is not None and erased.counts.live_cards:
            log.warning(
                "erasure %s: %d cards were live on the platform; terminate them there",
                erased.erasure_id, erased.counts.live_cards,
            )  # fmt: skip
        return erased

    async def unsettled_tokens(self, bank_id: str) -> set[str]:
        """The holder tokens of the bank's issuances in flight, in doubt or queued."""
        return self._tokens_of(bank_id, await self._store.unsettled_drafts(bank_id))

    def _tokens_of(self, bank_id: str, drafts: list[tuple[str, bytes]]) -> set[str]:
        found = set()
        for idempotency_key, sealed in drafts:
            # By content: a key released (or erased) may be claimed again for someone else.
            key = (bank_id, hashlib.blake2b(sealed, digest_size=16).digest())
            token = self._draft_tokens.get(key)
            if token is None:
                try:
                    token = self._vault.draft_holder_token(bank_id, idempotency_key, sealed)
                except DecryptionError:  # under a key no longer held: names nobody we know
                    log.warning("an unsettled issuance's draft does not open; not checked")
                    continue
                if len(self._draft_tokens) >= _DRAFT_TOKENS_KEPT:
                    self._draft_tokens.clear()
                self._draft_tokens[key] = token  # a draft's holder never changes
            found.add(token)
        return found
