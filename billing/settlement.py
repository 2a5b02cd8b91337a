"""One request's bill, from admission to its durable ledger row.

    bill = SettlementSession(biller, admission, ticket, prompt_estimate=..., meter=...)
    async with bill:                          # the replica works
        bill.placed(replica_id, chip, cost_per_hour)
        bill.started()                        # a stream: the answer has begun
        ...                                   # bill.delivered(text, tokens) per delivered delta
        charge = await bill.finish(usage)     # durable before the client sees the end

Every way a request can end is handled here, once:

* ``finish``: the answer is complete. Billed: the engine's usage, or when the
  engine reported none, the prompt estimate plus what was delivered (flagged
  ``estimated``). Returns only once the row is durable.
* ``cut``: the replica failed after the first byte. Billed: what was delivered
  (``partial``).
* the block is left by an exception or a cancellation before ``started``:
  nothing reached the client, nothing is charged (``error``).
* the block is left after ``started`` by the client going away (cancelled, or
  the stream closed) or by a failure: billed what was delivered (``partial``).

A cancelled task never waits for the database: its row is queued and written
by the ledger's flusher.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import Protocol

from backends.base import Usage
from billing.biller import Admission, Biller, RequestOutcome, Settlement
from billing.checkpoints import StreamCheckpoints
from billing.keys import ApiKey
from billing.records import RecordStatus, UsageRecord
from billing.tokens import StreamMeter

__all__ = ["BillTicket", "SettlementObserver", "SettlementSession"]


@dataclass(frozen=True, slots=True)
class BillTicket:
    """Who asked for what: fixed when the request is admitted."""

    request_id: str
    key: ApiKey
    model: str
    kind: str
    stream: bool
    #: wall-clock time the request arrived
    started_at: float


class SettlementObserver(Protocol):
    """Told about every settled request (the gateway's metrics)."""

    def settled(self, record: UsageRecord) -> None: ...


class SettlementSession:
    """Settles one admitted request exactly once, however it ends."""

    __slots__ = (
        "_biller", "_admission", "_ticket", "_prompt_estimate", "meter", "_observer",
        "_replica_id", "_chip", "_cost_per_hour", "_replica_seconds", "_ttft_s", "_started", "charge", "usage",
        "_checkpoints", "_checkpointed_at",
    )

    def __init__(
        self,
        biller: Biller,
        admission: Admission,
        ticket: BillTicket,
        *,
        prompt_estimate: int,
        meter: StreamMeter,
        observer: SettlementObserver | None = None,
        checkpoints: StreamCheckpoints | None = None,
    ) -> None:
        self._biller = biller
        self._admission = admission
        self._ticket = ticket
        self._prompt_estimate = prompt_estimate
        self.meter = meter
        self._observer = observer
        self._replica_id: str | None = None
        self._chip: str | None = None
        self._cost_per_hour = Decimal(0)
        self._replica_seconds = 0.0
        self._ttft_s: float | None = None
        self._started = False
        self._checkpoints = checkpoints
        self._checkpointed_at = 0.0
        self.charge: Settlement | None = None
        #: the usage billed, once settled
        self.usage: Usage | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The admission's ``x-ratelimit-*`` headers."""
        return self._admission.headers

    @property
    def settled(self) -> bool:
        return self._admission.settled

    def placed(self, replica_id: str, chip: str, cost_per_hour: Decimal) -> None:
        """The replica that serves the request (its cost per hour prices the compute)."""
        self._replica_id, self._chip, self._cost_per_hour = replica_id, chip, cost_per_hour

    def started(self) -> None:
        """The answer has begun reaching the client (a stream's first frames); from now on a
        crash of this gateway still bills what was delivered (checkpoints)."""
        self._started = True
        self._checkpoint()

    def delivered(self, text: str, tokens: int | None) -> None:
        """One delta reached the client: its text, and its token count when the engine gave it."""
        self.meter.add(text, tokens)
        if self._checkpoints is not None and time.monotonic() - self._checkpointed_at >= self._checkpoints.interval_s:
            self._checkpoint()

    def _checkpoint(self) -> None:
        if self._checkpoints is None or self._admission.settled:
            return
        self._checkpointed_at = time.monotonic()
        outcome = self._outcome(self._delivered(), "partial", "gateway_lost")
        self._checkpoints.put(self._biller.record(self._admission, outcome))

    def timing(self, *, replica_seconds: float | None, ttft_s: float | None) -> None:
        """The request's share of replica time and its time to first token, when known."""
        self._replica_seconds = replica_seconds or 0.0
        self._ttft_s = ttft_s

    async def finish(self, usage: Usage | None) -> Settlement:
        """The answer is complete: bill it and wait until its row is durable."""
        if usage is None:
            usage = self._delivered()
        return await self._settle(usage, "ok", None)

    async def cut(self, error_code: str) -> Settlement:
        """The replica failed after the first byte: bill what was delivered."""
        return await self._settle(self._delivered(), "partial", error_code)

    async def __aenter__(self) -> SettlementSession:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None or self._admission.settled:
            return
        cancelled = issubclass(exc_type, (asyncio.CancelledError, GeneratorExit))
        code = "client_disconnected" if cancelled else str(getattr(exc, "code", None) or exc_type.__name__)
        if self._started:
            usage, status = self._delivered(), "partial"
        else:
            usage, status = Usage(), "error"
        if cancelled:
            # a cancelled task must not wait for the database
            self._settle_nowait(usage, status, code)
        else:
            await self._settle(usage, status, code)

    def abandon(self) -> None:
        """Settle now without waiting: the answer was dropped before its producer ran."""
        if not self._admission.settled:
            self._settle_nowait(self._delivered() if self._started else Usage(), "partial" if self._started else "error",
                                "client_disconnected")

    # -- internals -------------------------------------------------------------------------
    def _delivered(self) -> Usage:
        return Usage(prompt_tokens=max(self._prompt_estimate, 0), completion_tokens=self.meter.count(), estimated=True)

    def _outcome(self, usage: Usage, status: RecordStatus, error_code: str | None) -> RequestOutcome:
        ticket = self._ticket
        now = time.time()
        return RequestOutcome(
            request_id=ticket.request_id,
            key=ticket.key,
            model=ticket.model,
            replica_id=self._replica_id,
            chip=self._chip,
            replica_cost_per_hour=self._cost_per_hour,
            replica_seconds=self._replica_seconds,
            kind=ticket.kind,
            stream=ticket.stream,
            usage=usage,
            status=status,
            error_code=error_code,
            started_at=ticket.started_at,
            first_token_at=None if self._ttft_s is None else ticket.started_at + self._ttft_s,
            finished_at=now,
        )

    async def _settle(self, usage: Usage, status: RecordStatus, error_code: str | None) -> Settlement:
        self.usage = usage
        self.charge = await self._biller.settle(self._admission, self._outcome(usage, status, error_code))
        if self._checkpoints is not None and self._started:
            self._checkpoints.done(self._ticket.request_id)
        if self._observer is not None:
            self._observer.settled(self.charge.record)
        return self.charge

    def _settle_nowait(self, usage: Usage, status: RecordStatus, error_code: str | None) -> None:
        self.usage = usage
        record = self._biller.settle_nowait(self._admission, self._outcome(usage, status, error_code))
        if self._checkpoints is not None and self._started:
            checkpoints, request_id, ledger = self._checkpoints, self._ticket.request_id, self._biller.db.ledger

            async def forget_when_durable() -> None:
                await ledger.flush()
                checkpoints.done(request_id)

            asyncio.get_running_loop().create_task(forget_when_durable())
        if self._observer is not None and record is not None:
            self._observer.settled(record)
