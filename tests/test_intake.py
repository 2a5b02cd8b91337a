"""The intake gate: large bodies are read, parsed and tokenized one key at a time, within a byte rate."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import APIError
from gateway.intake import Intake


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_small_bodies_never_wait():
    intake = Intake(per_key=1, total=1)
    async with intake.gate("k", "1000"), intake.gate("k", "1000"):
        pass  # nested: a small body takes no slot


async def test_one_keys_large_bodies_queue_behind_each_other_not_in_front_of_other_keys():
    intake = Intake(per_key=1, total=2, bytes_per_s=10**9)
    order: list[str] = []
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def hold(key: str, name: str) -> None:
        async with intake.gate(key, str(1 << 20)):
            order.append(name)
            first_in.set()
            await release.wait()

    first = asyncio.create_task(hold("hostile", "hostile-1"))
    await first_in.wait()
    second = asyncio.create_task(hold("hostile", "hostile-2"))
    other = asyncio.create_task(hold("tenant", "tenant-1"))
    while "tenant-1" not in order:
        await asyncio.sleep(0)  # the other key's body goes in while the hostile one's second waits
    assert order == ["hostile-1", "tenant-1"]
    release.set()
    await asyncio.gather(first, second, other)
    assert order[-1] == "hostile-2"
    assert intake._keys == {}  # noqa: SLF001 - idle keys leave nothing behind


async def test_large_bodies_beyond_a_keys_byte_rate_are_refused_before_they_are_read():
    clock = Clock()
    intake = Intake(bytes_per_s=4 << 20, max_body_bytes=4 << 20, clock=clock)
    async with intake.gate("k", str(3 << 20)):
        pass
    with pytest.raises(APIError) as refused:
        async with intake.gate("k", str(3 << 20)):
            pass
    assert refused.value.status == 429 and refused.value.headers["retry-after"] == "1"
    clock.now += 1.0  # the bucket refills at the byte rate
    async with intake.gate("k", str(3 << 20)):
        pass
    async with intake.gate("other-key", str(3 << 20)):
        pass  # every key has its own bucket
