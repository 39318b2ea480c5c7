"""Runs a load: spawned worker processes, each with its own event loop and client, started
together after their set-up phase; live progress; samples merged into one result.

Workers and the parent share a few counters in a raw shared array of doubles (one writer
per slot, so no lock): slot 0 is the start signal (0 = wait, > 0 = the wall time at which
the measured phase starts, < 0 = abort); worker `i` owns slots `1 + 4i ...`: its state,
requests sent, answers OK, answers failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import sys
import time
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TextIO

import grpc

from essc.platform.v1 import platform_pb2 as ppb
from essc.platform.v1 import platform_pb2_grpc
from essc_gateway.loadtest.applicants import ApplicantCounts, ApplicantsExhausted
from essc_gateway.loadtest.config import LoadOptions, WorkerPlan, worker_plans
from essc_gateway.loadtest.report import format_text, write_reports
from essc_gateway.loadtest.result import LoadResult, build_result
from essc_gateway.loadtest.stats import OK, Samples
from essc_gateway.loadtest.targets import EchoWorkload, PlatformWorkload
from essc_gateway.loadtest.workload import Work, Workload
from essc_gateway.simplatform import generate_population, load_scenario
from essc_gateway_client import ClientConfig, GatewayCallError, GatewayClient, open_channel

SETUP, READY, DONE, FAILED = 0.0, 1.0, 2.0, -1.0
_SLOTS_PER_WORKER = 4
_STATE, _SENT, _OK, _ERRORS = range(_SLOTS_PER_WORKER)
# Room for every worker to see the start signal before its first request is due.
_START_MARGIN = 0.2
_POLL = 0.01
_REFRESH_EVERY = 10.0


class Slots(Protocol):
    """Indexable doubles: a shared ctypes array across processes, or a plain array."""

    def __getitem__(self, index: int, /) -> float: ...
    def __setitem__(self, index: int, value: float, /) -> None: ...


class LoadAborted(Exception):
    """The run was stopped (a worker failed, or the caller was cancelled)."""


@dataclass
class WorkerResult:
    """What one worker sends back to the parent."""

    index: int
    samples: Samples
    holders: int
    setup_failures: dict[str, int] = field(default_factory=dict)
    applicants: ApplicantCounts = field(default_factory=ApplicantCounts)
    end_offset: float = 0.0
    """Seconds from the common start to this worker's last answer."""


def _slot(index: int, which: int) -> int:
    return 1 + _SLOTS_PER_WORKER * index + which


async def run_worker(plan: WorkerPlan, slots: Slots) -> WorkerResult:
    """One worker: set-up phase, wait for the start signal, measured phase.

    Raises:
        LoadAborted: the parent aborted the run.
        SetupError: holders could not be prepared.
    """
    state = _slot(plan.index, _STATE)
    try:
        async with _open_workload(plan) as workload:
            await workload.prepare()
            slots[state] = READY
            start = await _wait_for_start(slots)
            refresher = asyncio.create_task(_refresh_tokens(workload)) if workload.holders else None
            recorder = _Recorder(plan.index, slots, start)
            try:
                if plan.options.mode == "open":
                    await _open_loop(plan, workload, recorder, slots)
                else:
                    await _closed_loop(plan, workload, recorder, slots)
            finally:
                if refresher is not None:
                    refresher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await refresher
    except BaseException:
        slots[state] = FAILED
        raise
    slots[state] = DONE
    return WorkerResult(
        index=plan.index,
        samples=recorder.samples,
        holders=len(workload.holders),
        setup_failures=workload.setup_failures,
        applicants=workload.applicants,
        end_offset=recorder.last_answer - start,
    )


@contextlib.asynccontextmanager
async def _open_workload(plan: WorkerPlan) -> AsyncIterator[Work]:
    """The workload of `plan.options.service`, over a channel of its own."""
    options = plan.options
    config = ClientConfig(
        options.target,
        token=options.token,
        ca_file=options.ca_file,
        cert_file=options.cert_file,
        key_file=options.key_file,
        default_timeout=options.timeout,
        retries=options.client_retries,
    )
    if options.service == "gateway":
        async with GatewayClient(config) as client:
            yield Workload(plan, client, generate_population(options.seed, options.population_size))
        return
    async with open_channel(config) as channel:
        if options.service == "echo":
            yield EchoWorkload(channel, options.timeout)
        else:
            yield PlatformWorkload(
                plan, channel, generate_population(options.seed, options.population_size)
            )


async def _wait_for_start(slots: Slots) -> float:
    """The measured phase's start on this process's monotonic clock, once signalled."""
    # Polled: the signal comes from another process, which no asyncio.Event can see.
    while slots[0] == 0:  # noqa: ASYNC110
        await asyncio.sleep(_POLL)
    if slots[0] < 0:
        raise LoadAborted("aborted before the measured phase")
    start = time.monotonic() + (slots[0] - time.time())
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    return start


async def _refresh_tokens(workload: Work) -> None:
    while True:
        await asyncio.sleep(_REFRESH_EVERY)
        await workload.refresh_tokens()


class _Recorder:
    """Sends one operation, times it and counts it."""

    def __init__(self, index: int, slots: Slots, start: float) -> None:
        self.samples = Samples()
        self.start = start
        self.last_answer = start
        self._slots = slots
        self._index = index

    async def send(self, rpc: str, operation: Callable[[], Awaitable[None]], due: float) -> None:
        """Runs `operation`; latency counts from `due` (scheduled or actual send time).
        An operation that had no fresh applicant to send is neither sent nor recorded."""
        self._slots[_slot(self._index, _SENT)] += 1
        try:
            await operation()
            code = OK
        except ApplicantsExhausted:
            self._slots[_slot(self._index, _SENT)] -= 1
            return
        except GatewayCallError as error:
            code = error.code.name
        except grpc.aio.AioRpcError as error:  # the platform or echo targets
            code = error.code().name
        except Exception as error:  # a harness records every failure, it does not stop
            code = f"CLIENT_{type(error).__name__}"
        now = time.monotonic()
        self.last_answer = max(self.last_answer, now)
        self.samples.add(rpc, due - self.start, now - due, code)
        self._slots[_slot(self._index, _OK if code == OK else _ERRORS)] += 1


async def _open_loop(plan: WorkerPlan, workload: Work, recorder: _Recorder, slots: Slots) -> None:
    """Requests due on a fixed timetable, whether or not earlier ones were answered."""
    options = plan.options
    limit = options.effective_duration
    deadline = None if limit is None else recorder.start + limit
    interval = 1.0 / plan.rate
    in_flight: set[asyncio.Task[None]] = set()
    sent = 0
    while (
        slots[0] > 0
        and not workload.applicants.exhausted
        and (plan.count is None or sent < plan.count)
    ):
        due = recorder.start + plan.phase + sent * interval
        if deadline is not None and due >= deadline:
            break
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        while len(in_flight) >= options.max_in_flight:
            await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        rpc = workload.choose()
        task = asyncio.create_task(recorder.send(rpc, workload.operation(rpc), due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        sent += 1
    if in_flight:
        await asyncio.gather(*in_flight)


async def _closed_loop(plan: WorkerPlan, workload: Work, recorder: _Recorder, slots: Slots) -> None:
    """`plan.concurrency` loops, each sending its next request when answered."""
    limit = plan.options.effective_duration
    deadline = None if limit is None else recorder.start + limit
    remaining = [plan.count]

    async def loop() -> None:
        while slots[0] > 0 and not workload.applicants.exhausted:
            if deadline is not None and time.monotonic() >= deadline:
                return
            if remaining[0] is not None:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            rpc = workload.choose()
            await recorder.send(rpc, workload.operation(rpc), time.monotonic())

    await asyncio.gather(*(loop() for _ in range(plan.concurrency)))


# Parent side -------------------------------------------------------------------------------

# Set once per spawned worker process by the pool's initializer: a shared array can only
# reach a child through inheritance at start, not as a task argument.
_WORKER_SLOTS: Slots | None = None


def _init_worker(slots: Slots) -> None:
    global _WORKER_SLOTS  # noqa: PLW0603 - the per-process handle, see above
    _WORKER_SLOTS = slots
    # Ctrl-C reaches the whole process group: the parent aborts the workers through slot 0.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_main(plan: WorkerPlan) -> WorkerResult:
    assert _WORKER_SLOTS is not None, "the pool initializer sets the slots"
    return asyncio.run(run_worker(plan, _WORKER_SLOTS))


async def run_load(
    options: LoadOptions, on_phase: Callable[[str], None] | None = None
) -> LoadResult:
    """Runs the load described by `options`, writes the reports asked for, returns the result.

    `on_phase("measured")` is called when the measured phase is signalled to start and
    `on_phase("done")` once every worker has ended (a benchmark reads CPU counters there).

    Raises:
        LoadAborted: a worker failed or the run was cancelled.
        SetupError: the set-up phase could not prepare holders.
        ValueError: a scenario file is invalid.
    """
    plans = worker_plans(options)
    size = 1 + _SLOTS_PER_WORKER * len(plans)
    pool: ProcessPoolExecutor | None = None
    started_at = datetime.now(UTC)
    if options.workers == 0:
        slots: Slots = array("d", [0.0] * size)
        futures: list[asyncio.Future[WorkerResult]] = [
            asyncio.ensure_future(run_worker(plans[0], slots))
        ]
    else:
        context = multiprocessing.get_context("spawn")
        slots = context.RawArray("d", size)
        pool = ProcessPoolExecutor(
            max_workers=len(plans), mp_context=context, initializer=_init_worker, initargs=(slots,)
        )
        loop = asyncio.get_running_loop()
        futures = [loop.run_in_executor(pool, _worker_main, plan) for plan in plans]
    scenario_applied = False
    try:
        started_at, scenario_applied = await _supervise(
            options, slots, futures, sys.stderr, on_phase
        )
        if on_phase is not None:
            on_phase("done")
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
    except BaseException:
        slots[0] = -1.0
        await asyncio.gather(*futures, return_exceptions=True)
        raise
    finally:
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, True)
        if scenario_applied and options.clear_faults:
            await _clear_faults(options)
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    if failures:
        # The first failure is the cause; the others are workers aborted because of it.
        first = next((f for f in failures if not isinstance(f, LoadAborted)), failures[0])
        raise first
    results = [o for o in outcomes if isinstance(o, WorkerResult)]
    result = build_result(options, started_at, _merge(results))
    write_reports(result)
    if options.summary:
        print(format_text(result))
    return result


@dataclass
class _Merged:
    samples: Samples
    duration: float
    holders: int
    setup_failures: dict[str, int]
    applicants: ApplicantCounts


def _merge(results: Sequence[WorkerResult]) -> _Merged:
    samples = Samples()
    failures: dict[str, int] = {}
    applicants = ApplicantCounts()
    for result in sorted(results, key=lambda r: r.index):
        samples.extend(result.samples)
        applicants.add(result.applicants)
        for code, n in result.setup_failures.items():
            failures[code] = failures.get(code, 0) + n
    return _Merged(
        samples=samples,
        duration=max((r.end_offset for r in results), default=0.0),
        holders=sum(r.holders for r in results),
        setup_failures=failures,
        applicants=applicants,
    )


async def _supervise(
    options: LoadOptions,
    slots: Slots,
    futures: Sequence[asyncio.Future[WorkerResult]],
    out: TextIO,
    on_phase: Callable[[str], None] | None,
) -> tuple[datetime, bool]:
    """Starts the measured phase once every worker is ready (applying the scenario), prints
    progress each second, returns when the workers end (or one fails)."""
    workers = len(futures)
    started_at = datetime.now(UTC)
    scenario_applied = False
    if options.progress:
        holders = f", preparing {options.holders} holders" if options.uses_holders else ""
        print(f"load: set-up phase, {workers} worker(s){holders}", file=out, flush=True)
    start: float | None = None
    next_line = previous_done = 0.0
    previous_at = 0.0
    while not all(f.done() for f in futures):
        if any(f.done() and (f.cancelled() or f.exception() is not None) for f in futures):
            slots[0] = -1.0  # one failed: stop the others
            break
        states = [slots[_slot(i, _STATE)] for i in range(workers)]
        if start is None and all(s in (READY, DONE) for s in states):
            if options.scenario is not None:
                await _apply_scenario(options)
                scenario_applied = True
            started_at = datetime.now(UTC)
            if on_phase is not None:
                on_phase("measured")
            slots[0] = time.time() + _START_MARGIN
            start = time.monotonic() + _START_MARGIN
            next_line, previous_at = start + 1.0, start
            if options.progress:
                print(f"load: measured phase ({options.mode} loop)", file=out, flush=True)
        if start is not None and options.progress and time.monotonic() >= next_line:
            now = time.monotonic()
            sent = sum(slots[_slot(i, _SENT)] for i in range(workers))
            ok = sum(slots[_slot(i, _OK)] for i in range(workers))
            errors = sum(slots[_slot(i, _ERRORS)] for i in range(workers))
            rps = (ok + errors - previous_done) / max(now - previous_at, 1e-9)
            print(
                f"[{now - start:6.1f}s] sent={sent:.0f} ok={ok:.0f} errors={errors:.0f} "
                f"rps={rps:.1f}",
                file=out,
                flush=True,
            )
            previous_done, previous_at = ok + errors, now
            next_line += 1.0
        await asyncio.sleep(_POLL * 5)
    return started_at, scenario_applied


async def _apply_scenario(options: LoadOptions) -> None:
    assert options.scenario is not None
    assert options.control_address is not None
    scenario = load_scenario(options.scenario)
    async with grpc.aio.insecure_channel(options.control_address) as channel:
        control = platform_pb2_grpc.ControlServiceStub(channel)
        await control.SetFaultScenario(ppb.SetFaultScenarioRequest(scenario=scenario), timeout=5.0)


async def _clear_faults(options: LoadOptions) -> None:
    assert options.control_address is not None
    async with grpc.aio.insecure_channel(options.control_address) as channel:
        control = platform_pb2_grpc.ControlServiceStub(channel)
        await control.ClearFaults(ppb.ClearFaultsRequest(), timeout=5.0)
