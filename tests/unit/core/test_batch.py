"""Batcher: lookups asked together answered by one fetch, errors to every caller."""

from __future__ import annotations

import asyncio

import pytest

from flotte.drivers.batch import Batcher


def test_keys_asked_together_are_fetched_once() -> None:
    fetched: list[list[int]] = []

    async def fetch(keys: list[int]) -> dict[int, str]:
        fetched.append(sorted(keys))
        return {k: f"v{k}" for k in keys if k != 3}

    async def main() -> list[str | None]:
        batcher: Batcher[int, str] = Batcher(fetch)
        return list(await asyncio.gather(*(batcher.get(k) for k in (1, 2, 3, 2))))

    assert asyncio.run(main()) == ["v1", "v2", None, "v2"]
    assert fetched == [[1, 2, 3]]


def test_keys_asked_while_a_fetch_is_in_flight_make_the_next_batch() -> None:
    fetched: list[list[int]] = []

    async def main() -> tuple[str | None, str | None]:
        go = asyncio.Event()

        async def fetch(keys: list[int]) -> dict[int, str]:
            fetched.append(sorted(keys))
            if keys == [1]:
                await go.wait()
            return {k: f"v{k}" for k in keys}

        batcher: Batcher[int, str] = Batcher(fetch)
        first = asyncio.create_task(batcher.get(1))
        await asyncio.sleep(0.05)  # the first fetch is in flight
        second = asyncio.create_task(batcher.get(2))
        await asyncio.sleep(0.05)
        go.set()
        return await first, await second

    assert asyncio.run(main()) == ("v1", "v2")
    assert fetched == [[1], [2]]


def test_an_error_reaches_every_caller_of_the_batch_and_the_next_batch_works() -> None:
    calls = 0

    async def fetch(keys: list[str]) -> dict[str, int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("API down")
        return dict.fromkeys(keys, 1)

    async def main() -> None:
        batcher: Batcher[str, int] = Batcher(fetch)
        results = await asyncio.gather(batcher.get("a"), batcher.get("b"), return_exceptions=True)
        assert [str(r) for r in results] == ["API down", "API down"]
        assert await batcher.get("a") == 1

    asyncio.run(main())


def test_a_batcher_serves_one_event_loop_after_another() -> None:
    async def fetch(keys: list[str]) -> dict[str, str]:
        return {k: k.upper() for k in keys}

    batcher: Batcher[str, str] = Batcher(fetch)
    # the CLI runs several event loops in one process; one batcher outlives each
    assert asyncio.run(batcher.get("a")) == "A"
    assert asyncio.run(batcher.get("b")) == "B"


def test_a_cancelled_caller_does_not_stop_the_others() -> None:
    async def fetch(keys: list[str]) -> dict[str, str]:
        await asyncio.sleep(0.05)
        return {k: k for k in keys}

    async def main() -> str | None:
        batcher: Batcher[str, str] = Batcher(fetch)
        gone = asyncio.create_task(batcher.get("x"))
        kept = asyncio.create_task(batcher.get("y"))
        await asyncio.sleep(0.01)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await kept

    assert asyncio.run(main()) == "y"
