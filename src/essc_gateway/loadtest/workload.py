"""What a worker sends: identities from the simulated population, set-up of holders, and one
function per operation of the mix. Failures surface as `GatewayCallError`.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from essc.gateway.v1 import gateway_pb2 as pb
from essc_gateway.domain.passwords import initial_password
from essc_gateway.loadtest.applicants import ApplicantCounts, ApplicantsExhausted, eligible_people
from essc_gateway.loadtest.config import RPCS, WorkerPlan
from essc_gateway.loadtest.config import split as split_share
from essc_gateway.simplatform import Person, Population, biometric_sample
from essc_gateway_client import GatewayCallError, GatewayClient, Unauthenticated

# Meets K3 for every holder: no run, no repeated character, no birth date or ID digits.
HOLDER_PASSWORD = "Ld-Harness-7q!x"  # noqa: S105 - a synthetic holder's password
AGREEMENT_VERSION = "2024-03-20"
# Re-authenticate well within the gateway's 5-minute auth-token lifetime.
TOKEN_REFRESH_SECONDS = 120.0
# Verifications in flight per worker while preparing applicants.
_SETUP_CONCURRENCY = 8


class SetupError(Exception):
    """The set-up phase could not prepare what the mix needs."""


@dataclass
class Holder:
    """A person holding an e-SSC through this bank, with a current QUERY_RECORDS token."""

    person: Person
    auth_token: str = ""
    token_at: float = 0.0


def identity(person: Person) -> pb.Identity:
    """The applicant as the bank sends it (national mobile format)."""
    return pb.Identity(
        name=person.name,
        social_security_number=person.id_number,
        mobile_phone=person.mobile_phone.removeprefix("+86"),
    )


class Work(Protocol):
    """What a worker drives: set-up, then operations drawn from the mix."""

    setup_failures: dict[str, int]
    applicants: ApplicantCounts

    @property
    def holders(self) -> Sequence[object]: ...

    async def prepare(self) -> None: ...
    async def refresh_tokens(self) -> None: ...
    def choose(self) -> str: ...
    def operation(self, rpc: str) -> Callable[[], Awaitable[None]]: ...


@dataclass(frozen=True)
class WorkerPeople:
    """One worker's people. Worker `i` of `n` takes every `n`-th eligible person from
    `first_person + i`, so that workers never prepare or issue for the same person."""

    everyone: list[Person]
    """All eligible people (Verify picks among them)."""
    holders: list[Person]
    """This worker's share of the holders."""
    applicants: list[Person]
    """The rest of this worker's people, each issued at most once (see `applicants.py`)."""

    @classmethod
    def of(cls, plan: WorkerPlan, population: Population) -> WorkerPeople:
        """Raises SetupError when the population has too few eligible people."""
        options = plan.options
        people = eligible_people(population, datetime.now(UTC).date())
        end = None if options.people is None else options.first_person + options.people
        mine = people[options.first_person + plan.index : end : options.process_count]
        wanted = (
            split_share(options.holders, options.process_count, plan.index)
            if options.uses_holders
            else 0
        )
        if len(mine) < wanted:
            raise SetupError("the population has too few eligible people for this many holders")
        if options.mix.get("issue", 0.0) > 0 and len(mine) == wanted:
            raise SetupError("the population has no fresh applicant for issue: raise its size")
        return cls(people, mine[:wanted], mine[wanted:])


class MixChooser:
    """Draws operations by the mix's weights, seeded per worker."""

    def __init__(self, plan: WorkerPlan) -> None:
        options = plan.options
        self.rng = random.Random(options.seed * 1000 + plan.index)  # noqa: S311 - load mix
        self._rpcs = [rpc for rpc in RPCS if options.mix.get(rpc, 0.0) > 0]
        self._weights = [options.mix[rpc] for rpc in self._rpcs]

    def choose(self) -> str:
        return self.rng.choices(self._rpcs, self._weights)[0]


class Workload:
    """One worker's people, holders and operations over one client.

    Worker `i` of `n` takes every `n`-th eligible person starting at `i`, so that workers
    never prepare or issue for the same person; its first share of them become holders.
    """

    def __init__(self, plan: WorkerPlan, client: GatewayClient, population: Population) -> None:
        options = plan.options
        self._client = client
        self._options = options
        self._mix = MixChooser(plan)
        self._rng = self._mix.rng
        people = WorkerPeople.of(plan, population)
        self._holder_people = people.holders
        self._prepared_applicants = split_share(
            options.applicants, options.process_count, plan.index
        )
        self._fresh = iter(people.applicants)
        self._verified: deque[tuple[Person, str]] = deque()
        self._verify_people = people.everyone
        self.holders: list[Holder] = []
        self.setup_failures: dict[str, int] = {}
        self.applicants = ApplicantCounts()
        self._operations: dict[str, Callable[[], Awaitable[None]]] = {
            "verify": self.verify,
            "issue": self.issue,
            "authenticate": self.authenticate,
            "query": self.query,
        }

    def choose(self) -> str:
        """The next operation, drawn by the mix's weights (seeded per worker)."""
        return self._mix.choose()

    def operation(self, rpc: str) -> Callable[[], Awaitable[None]]:
        """The coroutine function sending one `rpc`."""
        return self._operations[rpc]

    # Set-up phase -------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Issues a card to each holder, changes the initial password, gets a token.

        Safe to repeat against the same gateway: an issued card is answered ALREADY_HELD
        and a changed password is tried directly.

        Raises:
            SetupError: the mix needs holders and none could be prepared.
        """
        for person in self._holder_people:
            try:
                holder = await self._prepare_holder(person)
            except GatewayCallError as error:  # counted and reported; fatal only if all fail
                name = error.code.name
                self.setup_failures[name] = self.setup_failures.get(name, 0) + 1
                continue
            self.holders.append(holder)
        if self._holder_people and not self.holders:
            raise SetupError(f"no holder could be prepared: {self.setup_failures}")
        if self._options.mix.get("issue", 0.0) > 0:
            await self._verify_applicants()

    async def _verify_applicants(self) -> None:
        """Verification tokens for this worker's first applicants (valid 10 minutes)."""
        people = itertools.islice(self._fresh, self._prepared_applicants)

        async def verify_next() -> None:
            for person in people:
                try:
                    reply = await self._verify(person)
                except GatewayCallError as error:
                    name = error.code.name
                    self.setup_failures[name] = self.setup_failures.get(name, 0) + 1
                    continue
                self._verified.append((person, reply.verification_token))

        await asyncio.gather(*(verify_next() for _ in range(_SETUP_CONCURRENCY)))
        if not self._verified:
            raise SetupError(f"no applicant could be verified: {self.setup_failures}")

    async def _prepare_holder(self, person: Person) -> Holder:
        await self._issue_to(person)
        holder = Holder(person)
        try:
            reply = await self._authenticate(person, initial_password(person.id_number))
        except Unauthenticated:
            reply = None  # changed on an earlier run
        if reply is not None and reply.state == pb.AUTHENTICATION_STATE_PASSWORD_CHANGE_REQUIRED:
            await self._client.change_password(
                pb.ChangePasswordRequest(
                    social_security_number=person.id_number,
                    current_password=initial_password(person.id_number),
                    new_password=HOLDER_PASSWORD,
                    idempotency_key=uuid.uuid4().hex,
                )
            )
        await self._refresh(holder)
        return holder

    async def refresh_tokens(self) -> None:
        """Re-authenticates holders whose token is getting old (not measured)."""
        now = time.monotonic()
        for holder in self.holders:
            if now - holder.token_at > TOKEN_REFRESH_SECONDS:
                try:
                    await self._refresh(holder)
                except GatewayCallError:  # the next round tries again
                    continue

    async def _refresh(self, holder: Holder) -> None:
        reply = await self._authenticate(holder.person, HOLDER_PASSWORD)
        holder.auth_token, holder.token_at = reply.auth_token, time.monotonic()

    # Operations of the measured phase ----------------------------------------------------

    async def verify(self) -> None:
        """Verify of a random eligible person."""
        await self._verify(self._rng.choice(self._verify_people))

    async def issue(self) -> None:
        """Issue for the next fresh applicant of this worker's share, never one issued before.

        Raises:
            ApplicantsExhausted: no fresh applicant is left.
        """
        person, token = await self._next_applicant()
        reply = await self._issue(person, token)
        if reply.outcome == pb.ISSUE_OUTCOME_ALREADY_HELD:
            self.applicants.issued_again += 1

    async def _next_applicant(self) -> tuple[Person, str]:
        if self._verified:
            return self._verified.popleft()
        person = next(self._fresh, None)
        if person is None:
            self.applicants.exhausted = True
            raise ApplicantsExhausted
        self.applicants.verified_during_load += 1
        return person, (await self._verify(person)).verification_token

    async def authenticate(self) -> None:
        """Authenticate a random holder (QUERY_RECORDS, password); keeps the new token."""
        holder = self._rng.choice(self.holders)
        reply = await self._authenticate(holder.person, HOLDER_PASSWORD)
        holder.auth_token, holder.token_at = reply.auth_token, time.monotonic()

    async def query(self) -> None:
        """Query with a random holder's token."""
        holder = self._rng.choice(self.holders)
        await self._client.query(pb.QueryRequest(auth_token=holder.auth_token))

    # Requests ---------------------------------------------------------------------------

    async def _verify(self, person: Person) -> pb.VerifyResponse:
        return await self._client.verify(
            pb.VerifyRequest(
                applicant=identity(person),
                physical_card_number=person.card_number,
                biometric_sample=biometric_sample(person, self._rng),
            )
        )

    async def _issue_to(self, person: Person) -> pb.IssueResponse:
        verified = await self._verify(person)
        return await self._issue(person, verified.verification_token)

    async def _issue(self, person: Person, verification_token: str) -> pb.IssueResponse:
        accepted = Timestamp()
        accepted.FromDatetime(datetime.now(UTC) - timedelta(seconds=self._options.consent_age))
        return await self._client.issue(
            pb.IssueRequest(
                applicant=identity(person),
                verification_token=verification_token,
                consent=pb.Consent(
                    agreement_version=AGREEMENT_VERSION,
                    accepted_at=accepted,
                    channel=pb.CONSENT_CHANNEL_MOBILE_APP,
                    read_and_agreed=True,
                    authorized=True,
                ),
                idempotency_key=uuid.uuid4().hex,
            )
        )

    async def _authenticate(self, person: Person, password: str) -> pb.AuthenticateResponse:
        return await self._client.authenticate(
            pb.AuthenticateRequest(
                social_security_number=person.id_number,
                scenario=pb.BUSINESS_SCENARIO_QUERY_RECORDS,
                factors=pb.Factors(password=password),
            )
        )
