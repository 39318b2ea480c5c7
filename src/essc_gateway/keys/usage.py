"""Key usage recorded (K5): every interval, how many times each bank's keys were unwrapped
(holder keys read from the store, bank keys unwrapped by the root), as a `USED` key event of
the evidence log under the bank's current DATA key. Intervals with no use write nothing."""

from __future__ import annotations

from datetime import timedelta

from essc_gateway.clock import Clock
from essc_gateway.keys.hierarchy import KeyHierarchy
from essc_gateway.keys.holder_keys import HolderKeys
from essc_gateway.keys.model import KeyEvent, KeyEventKind, KeyPurpose, KeyState
from essc_gateway.keys.ports import KeyStore

BY = "gateway"


class KeyUsageReport:
    def __init__(
        self,
        store: KeyStore,
        keys: KeyHierarchy,
        holder_keys: HolderKeys,
        clock: Clock,
        interval: timedelta,
        replica_id: str,
    ) -> None:
        self._store = store
        self._keys = keys
        self._holder_keys = holder_keys
        self._clock = clock
        self._interval = interval
        self._replica = replica_id

    async def report(self) -> int:
        """Appends this interval's counts; returns how many events were written."""
        holders, roots = self._holder_keys.unwraps, self._keys.root_unwraps_by_bank
        banks = sorted(set(holders) | set(roots))
        if not banks:
            return 0
        versions = await self._store.key_versions()
        now, events = self._clock.now(), []
        for bank in banks:
            data = max(
                (
                    v
                    for v in versions
                    if v.bank_id == bank
                    and v.purpose is KeyPurpose.DATA
                    and v.state is KeyState.ACTIVE
                ),
                key=lambda v: v.version,
            )
            detail = (
                f"replica {self._replica}, {self._interval.total_seconds():.0f} s: "
                f"{holders[bank]} holder keys unwrapped, {roots[bank]} bank keys by the root"
            )
            events.append(
                KeyEvent(
                    KeyEventKind.USED,
                    data.key_id,
                    bank,
                    KeyPurpose.DATA,
                    data.version,
                    data.suite,
                    now,
                    BY,
                    detail,
                )
            )
        await self._store.log_key_events(events)
        holders.clear()
        roots.clear()
        return len(events)
