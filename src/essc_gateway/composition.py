"""The composition root: every object of a gateway, built from its configuration and what it
is handed (an open store, the unwrapped keys, the platform's channel, the checkpoint signer, a
clock, the telemetry). Pure: it opens, loads, starts and calls nothing, so that `Gateway`
runs what it builds and the ledger CLI reads its reports through the same objects."""

from __future__ import annotations

import functools
import random
from collections.abc import Iterable
from dataclasses import dataclass

import grpc
from opentelemetry.trace import NoOpTracer, Tracer, TracerProvider

from essc_gateway import __version__
from essc_gateway.access.gate import OperatorGate
from essc_gateway.access.log import AccessLog
from essc_gateway.clock import Clock
from essc_gateway.config import BankConfig, GatewayConfig, OperatorConfig
from essc_gateway.crypto import TokenSealer
from essc_gateway.evidence.checkpoints import Checkpointer
from essc_gateway.evidence.proofs import Prover
from essc_gateway.evidence.service import EvidenceService
from essc_gateway.evidence.signed_note import NoteSigner
from essc_gateway.keys.hierarchy import KeyHierarchy
from essc_gateway.keys.management import KeyManagement, key_management
from essc_gateway.liability.amendments import Amender
from essc_gateway.liability.classify import Classifier
from essc_gateway.liability.counts import RequestCounter
from essc_gateway.liability.incidents import IncidentBook, IncidentLearned
from essc_gateway.liability.ledger import Ledger
from essc_gateway.liability.outages import OutageTracker, trace_outage
from essc_gateway.liability.reports import Reports
from essc_gateway.metrics import GatewayMetrics
from essc_gateway.privacy.disclosure import HolderDisclosure
from essc_gateway.privacy.erasure import HolderErasure
from essc_gateway.privacy.jobs import ErasureJobs
from essc_gateway.service.authentication import AuthenticationService
from essc_gateway.service.cards import CardService
from essc_gateway.service.circuits import ForcedCircuits
from essc_gateway.service.forwarding import Forwarder, issue_status
from essc_gateway.service.holders import Holders
from essc_gateway.service.issuance import IssuanceService
from essc_gateway.service.maintenance import MaintenanceCalendar
from essc_gateway.service.reconciler import IssueReconciler
from essc_gateway.service.replicas import ReplicaRegistry
from essc_gateway.service.shared_state import SharedState
from essc_gateway.service.tokens import TokenService
from essc_gateway.service.verification import VerificationService
from essc_gateway.store.cluster import SharedTopic
from essc_gateway.store.opening import GatewayStore
from essc_gateway.tracing.setup import exports_without_error
from essc_gateway.transport.admission import Admission
from essc_gateway.transport.banks import BankAuthenticator, TrustedProxy
from essc_gateway.transport.holder_lookup import HolderLookup
from essc_gateway.transport.interceptor import GatewayInterceptor
from essc_gateway.transport.operator_servicer import OperatorServicer
from essc_gateway.transport.privacy_rpcs import PrivacyServices
from essc_gateway.transport.servicer import GatewayServicer
from essc_gateway.transport.shared_rate import SharedRateLimit
from essc_gateway.upstream.breaker import Breakers
from essc_gateway.upstream.budget import RetryBudget
from essc_gateway.upstream.grpc_platform import GrpcPlatform, map_rpc_error
from essc_gateway.upstream.retrying import ResilientCaller


@dataclass(frozen=True)
class Telemetry:
    """What the gateway reports through and decides retries with (never the globals)."""

    metrics: GatewayMetrics
    breakers: Breakers
    tracer_provider: TracerProvider
    rng: random.Random
    """Back-off jitter only; secrets come from the `secrets` module."""


@dataclass(frozen=True)
class Parts:
    """A gateway's objects, wired; nothing in them runs until `Gateway` starts it."""

    replicas: ReplicaRegistry
    incidents: IncidentBook
    outages: OutageTracker
    retry_budget: RetryBudget
    platform: GrpcPlatform
    key_management: KeyManagement
    calendar: MaintenanceCalendar
    circuits: ForcedCircuits
    shared_state: SharedState
    ledger: Ledger
    counter: RequestCounter
    checkpointer: Checkpointer
    reports: Reports
    interceptor: GatewayInterceptor
    servicer: GatewayServicer
    operator_servicer: OperatorServicer
    erasure_jobs: ErasureJobs
    forwarder: Forwarder
    reconciler: IssueReconciler


@dataclass(frozen=True)
class Records:
    """What the evidence and the liability reports are read through: a gateway's, and the
    ledger and evidence commands' (read only: their hooks never fire there)."""

    calendar: MaintenanceCalendar
    incidents: IncidentBook
    outages: OutageTracker
    key_management: KeyManagement
    checkpointer: Checkpointer
    reports: Reports
    evidence: EvidenceService


def build_records(
    config: GatewayConfig,
    store: GatewayStore,
    keys: KeyHierarchy,
    signer: NoteSigner,
    clock: Clock,
    *,
    replica_id: str,
    tracer: Tracer | None = None,
    on_incident_learned: IncidentLearned | None = None,
) -> Records:
    """`replica_id`: whose outages this process tracks; `tracer`: where closed outages are
    traced (None: nowhere); `on_incident_learned`: amends records for each incident learned
    (a gateway's; None for a command that only reads, which must write nothing)."""
    tracer = tracer or NoOpTracer()
    incidents = IncidentBook(store, clock, on_learned=on_incident_learned)
    outages = OutageTracker(
        store,
        clock,
        # The span names the clause reports give it: a declared incident's, if any.
        on_closed=lambda outage, links: trace_outage(tracer, incidents.place(outage), links),
        replica_id=replica_id,
    )
    km = key_management(store, keys, config, clock, replica_id)
    calendar = MaintenanceCalendar(
        store, clock, config.maintenance_grace, config.maintenance_min_notice
    )
    checkpointer = Checkpointer(store, signer, clock)
    reports = Reports(
        store, calendar, incidents, outages, km.vault, clock, config.work_calendar, checkpointer
    )
    evidence = EvidenceService(
        store, checkpointer, Prover(store, config.evidence.tree_hash), km.vault
    )
    return Records(calendar, incidents, outages, km, checkpointer, reports, evidence)


def build(
    config: GatewayConfig,
    store: GatewayStore,
    keys: KeyHierarchy,
    platform_channel: grpc.aio.Channel,
    signer: NoteSigner,
    clock: Clock,
    telemetry: Telemetry,
) -> Parts:
    tracer = telemetry.tracer_provider.get_tracer("essc_gateway")
    replicas = ReplicaRegistry(store, clock, f"{config.host}:{config.port}", __version__)
    replica_id = replicas.me.replica_id
    records = build_records(
        config,
        store,
        keys,
        signer,
        clock,
        replica_id=replica_id,
        tracer=tracer,
        on_incident_learned=Amender(store, clock).amend_for,
    )
    calendar, incidents, outages = records.calendar, records.incidents, records.outages
    km, checkpointer, reports = records.key_management, records.checkpointer, records.reports
    retry_budget = RetryBudget(config.budget, clock)
    caller = ResilientCaller(
        config.retry,
        retry_budget,
        telemetry.breakers,
        telemetry.metrics,
        clock,
        telemetry.rng,
        map_rpc_error,
        observer=outages,
        tracer=tracer,
    )
    # Each attempt is a client span whose W3C context goes to the platform (grpc_platform).
    platform = GrpcPlatform(platform_channel, caller)
    vault = km.vault
    tokens = TokenService(TokenSealer(keys.bank), clock, config.settings)
    circuits = ForcedCircuits(store, telemetry.breakers, clock)

    async def keys_changed() -> None:
        """Another replica rotated a key or declared one compromised: hold what it made."""
        await keys.reload()
        km.holder_keys.forget_all()

    async def holders_erased() -> None:
        """A holder was erased (here or on another replica): no copy of a holder key stays
        in this replica's memory."""
        km.holder_keys.forget_all()

    shared_state = SharedState(
        store,
        {
            SharedTopic.WINDOWS: calendar.load,
            SharedTopic.INCIDENTS: incidents.load,
            SharedTopic.CIRCUITS: circuits.reload,
            SharedTopic.OUTAGES: outages.sync,
            SharedTopic.KEYS: keys_changed,
            SharedTopic.HOLDERS: holders_erased,
        },
    )
    ledger = Ledger(
        store,
        Classifier(calendar, incidents, outages),
        outages,
        clock,
        pending_directory=config.held_records_directory,
    )
    counter = RequestCounter(store)
    forwarding_banks = frozenset(b.bank_id for b in config.banks if b.store_and_forward)
    issuance = IssuanceService(
        platform, store, tokens, vault, clock, config.settings, calendar, forwarding_banks
    )
    servicer = GatewayServicer(
        verification=VerificationService(platform, tokens, vault, clock),
        issuance=issuance,
        authentication=AuthenticationService(
            platform,
            Holders(store, vault, clock, config.settings),
            tokens,
            vault,
            config.auth_policy(),
            clock,
        ),
        cards=CardService(platform, store, tokens, vault),
        clock=clock,
        issue_status=functools.partial(issue_status, store, vault, clock),
    )
    access_log = AccessLog(store, clock)
    interceptor = GatewayInterceptor(
        banks=_authenticator(config.banks, config.tls is not None, config.trusted_proxy),
        operators=_authenticator(config.operators, config.tls is not None, config.trusted_proxy),
        admission=Admission(
            config.max_in_flight,
            {
                b.bank_id: SharedRateLimit(b.bank_id, b.rate_limit, store, clock)
                for b in config.banks
            },
        ),
        calendar=calendar,
        forwarding_banks=forwarding_banks,
        metrics=telemetry.metrics,
        clock=clock,
        ledger=ledger,
        counter=counter,
        holder_of=HolderLookup(vault, tokens),
        gate=OperatorGate({o.operator_id: o.roles for o in config.operators}, access_log),
        tracer=tracer,
        exports=exports_without_error(telemetry.tracer_provider),
    )
    banks = tuple(b.bank_id for b in config.banks)
    erasure = HolderErasure(store, vault, clock)
    erasure_jobs = ErasureJobs(store, erasure, vault, clock, replica_id, banks, config.retention)
    operator_servicer = OperatorServicer(
        calendar,
        telemetry.breakers,
        incidents,
        reports,
        records.evidence,
        circuits,
        replicas,
        km.custodian,
        km.dual_control,
        access_log,
        PrivacyServices(
            erasure,
            HolderDisclosure(store, store, vault, clock),
            erasure_jobs,
            frozenset(banks),
            clock,
        ),
    )
    return Parts(
        replicas=replicas,
        incidents=incidents,
        outages=outages,
        retry_budget=retry_budget,
        platform=platform,
        key_management=km,
        calendar=calendar,
        circuits=circuits,
        shared_state=shared_state,
        ledger=ledger,
        counter=counter,
        checkpointer=checkpointer,
        reports=reports,
        interceptor=interceptor,
        servicer=servicer,
        operator_servicer=operator_servicer,
        erasure_jobs=erasure_jobs,
        forwarder=Forwarder(store, issuance, vault, calendar, clock),
        reconciler=IssueReconciler(store, issuance, clock),
    )


def _authenticator(
    identities: Iterable[BankConfig | OperatorConfig], tls: bool, proxy: TrustedProxy | None
) -> BankAuthenticator:
    def name(identity: BankConfig | OperatorConfig) -> str:
        return identity.bank_id if isinstance(identity, BankConfig) else identity.operator_id

    listed = list(identities)
    return BankAuthenticator(
        # Under mTLS only the certificate identifies: a token must not stand in for it.
        token_digests={} if tls else {i.token_sha256: name(i) for i in listed if i.token_sha256},
        certificate_subjects={
            i.certificate_subject: name(i) for i in listed if i.certificate_subject
        },
        proxy=proxy,
    )
