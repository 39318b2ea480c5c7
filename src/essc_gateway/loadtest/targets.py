"""Workloads for the other targets of a benchmark: the simulated platform called directly
with what the gateway would send it for each RPC (its latency is the floor the gateway adds
to), and the bare echo service (the cost floor of a gRPC call on this machine).

Failures surface as `grpc.aio.AioRpcError`; the runner records their codes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc

from essc.platform.v1 import platform_pb2 as ppb
from essc.platform.v1 import platform_pb2_grpc
from essc_gateway.domain.passwords import initial_password
from essc_gateway.loadtest.applicants import ApplicantCounts, ApplicantsExhausted
from essc_gateway.loadtest.config import WorkerPlan
from essc_gateway.loadtest.echo import ECHO_PAYLOAD, echo_stub
from essc_gateway.loadtest.workload import MixChooser, SetupError, WorkerPeople
from essc_gateway.simplatform import Person, Population, biometric_sample

BANK_ID = "load-harness"


@dataclass
class PlatformHolder:
    """A person holding a card issued straight at the platform."""

    person: Person
    essc_id: str


class EchoWorkload:
    """Every operation is one echo call; the mix is ignored."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float) -> None:
        self._echo = echo_stub(channel)
        self._timeout = timeout
        self.holders: list[object] = []
        self.setup_failures: dict[str, int] = {}
        self.applicants = ApplicantCounts()

    async def prepare(self) -> None:
        """Nothing to prepare."""

    async def refresh_tokens(self) -> None:
        """No tokens."""

    def choose(self) -> str:
        return "echo"

    def operation(self, rpc: str) -> Callable[[], Awaitable[None]]:
        return self.echo

    async def echo(self) -> None:
        """One echo call."""
        await self._echo(ECHO_PAYLOAD, timeout=self._timeout)


class PlatformWorkload:
    """The platform calls behind each gateway RPC, sent concurrently as the gateway does:
    verify = the three checks; issue = IssueCard; authenticate = the card and
    VerifyPassword; query = the card and the four record reads (`bench.targets` counts
    them, and a test holds both to what the gateway sends)."""

    def __init__(self, plan: WorkerPlan, channel: grpc.aio.Channel, population: Population) -> None:
        self._timeout = plan.options.timeout
        self._mix = MixChooser(plan)
        self._rng = self._mix.rng
        people = WorkerPeople.of(plan, population)
        self._holder_people = people.holders
        self._fresh = iter(people.applicants)
        self.applicants = ApplicantCounts()
        self._verify_people = people.everyone
        self._identity = platform_pb2_grpc.IdentityServiceStub(channel)
        self._cards = platform_pb2_grpc.CardServiceStub(channel)
        self._auth = platform_pb2_grpc.AuthServiceStub(channel)
        self._records = platform_pb2_grpc.RecordsServiceStub(channel)
        self.holders: list[PlatformHolder] = []
        self.setup_failures: dict[str, int] = {}
        self._operations: dict[str, Callable[[], Awaitable[None]]] = {
            "verify": self.verify,
            "issue": self.issue,
            "authenticate": self.authenticate,
            "query": self.query,
        }

    def choose(self) -> str:
        return self._mix.choose()

    def operation(self, rpc: str) -> Callable[[], Awaitable[None]]:
        return self._operations[rpc]

    async def prepare(self) -> None:
        """Issues a card to each holder at the platform (ALREADY_HELD keeps the card)."""
        for person in self._holder_people:
            try:
                reply = await self._issue(person)
            except grpc.aio.AioRpcError as error:
                name = error.code().name
                self.setup_failures[name] = self.setup_failures.get(name, 0) + 1
                continue
            self.holders.append(PlatformHolder(person, reply.card.essc_id))
        if self._holder_people and not self.holders:
            raise SetupError(f"no holder could be prepared: {self.setup_failures}")

    async def refresh_tokens(self) -> None:
        """The platform has no tokens."""

    async def verify(self) -> None:
        person = self._rng.choice(self._verify_people)
        sample = biometric_sample(person, self._rng)
        t = self._timeout
        await asyncio.gather(
            self._identity.CheckRealName(
                ppb.CheckRealNameRequest(
                    name=person.name, id_number=person.id_number, mobile_phone=person.mobile_phone
                ),
                timeout=t,
            ),
            self._identity.CheckRealCard(
                ppb.CheckRealCardRequest(
                    id_number=person.id_number, card_number=person.card_number
                ),
                timeout=t,
            ),
            self._identity.CheckRealPerson(
                ppb.CheckRealPersonRequest(id_number=person.id_number, biometric_sample=sample),
                timeout=t,
            ),
        )

    async def issue(self) -> None:
        """IssueCard for the next fresh applicant (see `applicants.py`)."""
        person = next(self._fresh, None)
        if person is None:
            self.applicants.exhausted = True
            raise ApplicantsExhausted
        reply = await self._issue(person)
        if reply.outcome == ppb.ISSUE_OUTCOME_ALREADY_HELD:
            self.applicants.issued_again += 1

    async def authenticate(self) -> None:
        holder = self._rng.choice(self.holders)
        number, t = holder.person.id_number, self._timeout
        await asyncio.gather(  # the card's status is checked beside the password (A7)
            self._cards.GetCard(ppb.GetCardRequest(essc_id=holder.essc_id), timeout=t),
            self._auth.VerifyPassword(
                ppb.VerifyPasswordRequest(id_number=number, password=initial_password(number)),
                timeout=t,
            ),
        )

    async def query(self) -> None:
        holder = self._rng.choice(self.holders)
        number, t = holder.person.id_number, self._timeout
        await asyncio.gather(
            self._cards.GetCard(ppb.GetCardRequest(essc_id=holder.essc_id), timeout=t),
            self._records.GetPersonalStatus(
                ppb.GetPersonalStatusRequest(id_number=number), timeout=t
            ),
            self._records.GetContributions(
                ppb.GetContributionsRequest(id_number=number), timeout=t
            ),
            self._records.GetAccounts(ppb.GetAccountsRequest(id_number=number), timeout=t),
            self._records.GetQualifications(
                ppb.GetQualificationsRequest(id_number=number), timeout=t
            ),
        )

    async def _issue(self, person: Person) -> ppb.IssueCardResponse:
        return await self._cards.IssueCard(
            ppb.IssueCardRequest(
                idempotency_key=uuid.uuid4().hex,
                bank_id=BANK_ID,
                id_number=person.id_number,
                name=person.name,
                mobile_phone=person.mobile_phone,
                card_number=person.card_number,
            ),
            timeout=self._timeout,
        )
