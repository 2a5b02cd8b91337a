"""Serving a planned request: admit, route, generate or stream, settle, answer.

The same sequence for every API surface; a surface differs only in how its body
becomes a plan (``gateway.plan``) and how its answer is written (a Renderer).
Billing is one settlement session per request (``billing.settlement``): it
settles every ending exactly once, and the answer is complete only after its
ledger row is durable. Metrics observe settled records; nothing here counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

from backends.base import BackendError, Completion, EmbeddingRequest, Embeddings, Usage
from billing.biller import Biller
from billing.settlement import BillTicket, SettlementObserver, SettlementSession
from billing.tokens import TokenAccounting
from gateway.edge import Reply, StreamReply
from gateway.error_map import to_api_error
from gateway.plan import Caller, RequestPlan
from gateway.prompt_text import tool_call_text
from gateway.rendering import Renderer
from routing.replica import Replica
from routing.router import RoutedStream, Router


class Serving:
    """Runs plans through limits, routing, a replica and billing."""

    def __init__(
        self, router: Router, biller: Biller, accounting: TokenAccounting, observer: SettlementObserver | None = None
    ) -> None:
        self._router = router
        self._biller = biller
        self._accounting = accounting
        self._observer = observer

    async def answer(self, plan: RequestPlan, caller: Caller, renderer: Renderer) -> Reply | StreamReply:
        admission = await self._biller.admit(
            caller.key, plan.model.name, prompt_tokens=plan.prompt.bound, max_tokens=plan.max_output, n=plan.n
        )
        ticket = BillTicket(
            plan.request.request_id, caller.key, plan.model.name, plan.surface, plan.stream, caller.arrived_at
        )
        bill = SettlementSession(
            self._biller, admission, ticket, prompt_estimate=plan.prompt.estimate,
            meter=self._accounting.meter(plan.model.name), observer=self._observer,
            checkpoints=self._biller.db.checkpoints,
        )
        if plan.stream:
            return await self._open_stream(plan, bill, renderer)
        async with bill:
            if isinstance(plan.request, EmbeddingRequest):
                routed = await self._router.embed(plan.request, plan.route)
            else:
                routed = await self._router.generate(plan.request, plan.route)
            _place(bill, routed.replica)
            bill.timing(replica_seconds=routed.replica_seconds, ttft_s=None)
            usage = routed.result.usage or await self._estimate(plan, routed.result)
            charge = await bill.finish(usage)
        body = renderer.body(routed.result, usage, charge.cost_usd)
        return Reply(body, headers=_headers(routed.replica, bill, charge.cost_usd), upstream_s=routed.latency_s)

    async def _open_stream(self, plan: RequestPlan, bill: SettlementSession, renderer: Renderer) -> StreamReply:
        async with bill:  # a failure to open is settled here, uncharged
            routed = await self._router.open_stream(plan.request, plan.route)
        _place(bill, routed.replica)
        bill.started()
        frames = _Frames(self._frames(routed, bill, renderer), routed, bill)
        return StreamReply(frames, _headers(routed.replica, bill, None), upstream_s=routed.ttft_s or 0.0)

    async def _frames(self, routed: RoutedStream, bill: SettlementSession, renderer: Renderer) -> AsyncIterator[bytes]:
        usage: Usage | None = None
        async with bill:  # a client gone or an unexpected failure is settled here, for what was delivered
            try:
                try:
                    async for chunk in routed:
                        for delta in chunk.deltas:
                            bill.delivered(delta.text + tool_call_text(delta.tool_calls), delta.tokens)
                        usage = chunk.usage or usage
                        for frame in renderer.frames(chunk):
                            yield frame
                except BackendError as exc:
                    # the replica failed after the first byte: never retried, billed for what was delivered
                    bill.timing(replica_seconds=routed.replica_seconds, ttft_s=routed.ttft_s)
                    charge = await bill.cut(exc.code)
                    for frame in renderer.error(to_api_error(exc)):
                        yield frame
                    return
                bill.timing(replica_seconds=routed.replica_seconds, ttft_s=routed.ttft_s)
                charge = await bill.finish(usage)
                assert bill.usage is not None
                for frame in renderer.end(bill.usage, charge.cost_usd):
                    yield frame
            finally:
                # ends the attempt (aborting the engine's work if the client left), so the
                # session settling a disconnect right after knows the replica time
                await asyncio.shield(routed.aclose())
                bill.timing(replica_seconds=routed.replica_seconds, ttft_s=routed.ttft_s)

    async def _estimate(self, plan: RequestPlan, result: Completion | Embeddings) -> Usage:
        """Usage of an answer whose replica reported none: counted by the gateway, flagged estimated."""
        if isinstance(result, Embeddings):
            return Usage(prompt_tokens=plan.prompt.estimate, estimated=True)
        texts = [c.text + tool_call_text(c.tool_calls) for c in result.choices]
        completion = await self._accounting.count(plan.model.name, texts)
        return Usage(prompt_tokens=plan.prompt.estimate, completion_tokens=completion, estimated=True)


class _Frames:
    """A stream's frames; closed before its first frame was asked for, it still settles the bill."""

    __slots__ = ("_frames", "_routed", "_bill", "_begun")

    def __init__(self, frames: AsyncIterator[bytes], routed: RoutedStream, bill: SettlementSession) -> None:
        self._frames = frames
        self._routed = routed
        self._bill = bill
        self._begun = False

    def __aiter__(self) -> _Frames:
        return self

    def __anext__(self):  # noqa: ANN204 - the generator's awaitable
        self._begun = True
        return self._frames.__anext__()

    async def aclose(self) -> None:
        if not self._begun:
            await asyncio.shield(self._routed.aclose())
            self._bill.timing(replica_seconds=self._routed.replica_seconds, ttft_s=self._routed.ttft_s)
            self._bill.abandon()
        await self._frames.aclose()  # type: ignore[attr-defined]


def _place(bill: SettlementSession, replica: Replica) -> None:
    bill.placed(replica.id, replica.chip, replica.cost_per_hour)


def _headers(replica: Replica, bill: SettlementSession, cost: Decimal | None) -> dict[str, str]:
    headers = {"x-maas-replica": replica.id, "x-maas-chip": replica.chip, **bill.headers}
    if replica.simulated:
        headers["x-maas-simulated"] = "true"
    if cost is not None:
        headers["x-maas-cost-usd"] = str(cost)
    return headers
