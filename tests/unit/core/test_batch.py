"""Batcher: calls asked together answered by one run, errors to every caller;
SingleFlight: one answer for everyone who asks while it is being made."""

from __future__ import annotations

import asyncio

import pytest

from flotte.drivers.batch import Batcher, SingleFlight, answers


def test_keys_asked_together_are_fetched_once() -> None:
    fetched: list[list[int]] = []

    async def fetch(_: None, keys: list[int]) -> dict[int, str]:
        fetched.append(sorted(keys))
        return {k: f"v{k}" for k in keys if k != 3}

    async def main() -> list[str | None]:
        batcher: Batcher[None, int, str | None] = Batcher(answers(fetch))
        return list(await asyncio.gather(*(batcher.submit(None, k) for k in (1, 2, 3, 2))))

    assert asyncio.run(main()) == ["v1", "v2", None, "v2"]
    assert fetched == [[1, 2, 3]]


def test_keys_asked_while_a_fetch_is_in_flight_make_the_next_batch() -> None:
    fetched: list[list[int]] = []

    async def main() -> tuple[str | None, str | None]:
        go = asyncio.Event()

        async def fetch(_: None, keys: list[int]) -> dict[int, str]:
            fetched.append(sorted(keys))
            if keys == [1]:
                await go.wait()
            return {k: f"v{k}" for k in keys}

        batcher: Batcher[None, int, str | None] = Batcher(answers(fetch))
        first = asyncio.create_task(batcher.submit(None, 1))
        await asyncio.sleep(0.05)  # the first fetch is in flight
        second = asyncio.create_task(batcher.submit(None, 2))
        await asyncio.sleep(0.05)
        go.set()
        return await first, await second

    assert asyncio.run(main()) == ("v1", "v2")
    assert fetched == [[1], [2]]


def test_an_error_reaches_every_caller_of_the_batch_and_the_next_batch_works() -> None:
    calls = 0

    async def fetch(_: None, keys: list[str]) -> dict[str, int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("API down")
        return dict.fromkeys(keys, 1)

    async def main() -> None:
        batcher: Batcher[None, str, int | None] = Batcher(answers(fetch))
        results = await asyncio.gather(
            batcher.submit(None, "a"), batcher.submit(None, "b"), return_exceptions=True
        )
        assert [str(r) for r in results] == ["API down", "API down"]
        assert await batcher.submit(None, "a") == 1

    asyncio.run(main())


def test_a_batcher_serves_one_event_loop_after_another() -> None:
    async def fetch(_: None, keys: list[str]) -> dict[str, str]:
        return {k: k.upper() for k in keys}

    batcher: Batcher[None, str, str | None] = Batcher(answers(fetch))
    # the CLI runs several event loops in one process; one batcher outlives each
    assert asyncio.run(batcher.submit(None, "a")) == "A"
    assert asyncio.run(batcher.submit(None, "b")) == "B"


def test_a_cancelled_caller_does_not_stop_the_others() -> None:
    async def fetch(_: None, keys: list[str]) -> dict[str, str]:
        await asyncio.sleep(0.05)
        return {k: k for k in keys}

    async def main() -> str | None:
        batcher: Batcher[None, str, str | None] = Batcher(answers(fetch))
        gone = asyncio.create_task(batcher.submit(None, "x"))
        kept = asyncio.create_task(batcher.submit(None, "y"))
        await asyncio.sleep(0.01)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await kept

    assert asyncio.run(main()) == "y"


def test_groups_run_apart_and_results_keep_the_items_order() -> None:
    runs: list[tuple[str, list[int]]] = []

    async def run(group: str, items: list[int]) -> list[str]:
        runs.append((group, items))
        return [f"{group}{i}" for i in items]

    async def main() -> list[str]:
        batcher: Batcher[str, int, str] = Batcher(run)
        calls = [batcher.submit(g, i) for g, i in (("a", 1), ("b", 2), ("a", 3), ("a", 1))]
        return list(await asyncio.gather(*calls))

    assert asyncio.run(main()) == ["a1", "b2", "a3", "a1"]
    assert sorted(runs) == [("a", [1, 3, 1]), ("b", [2])]  # items, unlike keys, repeat


def test_not_serial_a_later_batch_does_not_wait_for_one_in_flight() -> None:
    async def main() -> list[list[int]]:
        go = asyncio.Event()
        started: list[list[int]] = []

        async def run(_: None, items: list[int]) -> list[int]:
            started.append(items)
            if items == [1]:
                await go.wait()  # a long launch
            return items

        batcher: Batcher[None, int, int] = Batcher(run, serial=False)
        first = asyncio.create_task(batcher.submit(None, 1))
        await asyncio.sleep(0.05)
        assert await batcher.submit(None, 2) == 2  # ran while the first is in flight
        go.set()
        assert await first == 1
        return started

    assert asyncio.run(main()) == [[1], [2]]


def test_a_run_with_the_wrong_number_of_results_fails_its_callers() -> None:
    async def run(_: None, items: list[int]) -> list[int]:
        return items[1:]

    async def main() -> None:
        batcher: Batcher[None, int, int] = Batcher(run)
        results = await asyncio.gather(
            batcher.submit(None, 1), batcher.submit(None, 2), return_exceptions=True
        )
        assert [str(r) for r in results] == ["a batch of 2 got 1 results"] * 2

    asyncio.run(main())


def test_single_flight_makes_once_for_callers_that_ask_meanwhile() -> None:
    made = 0

    async def make() -> int:
        nonlocal made
        made += 1
        await asyncio.sleep(0.02)
        if made == 1:
            return 7
        raise RuntimeError("down")

    async def main() -> None:
        flight = SingleFlight()
        assert await asyncio.gather(*(flight.once("k", make) for _ in range(5))) == [7] * 5
        # done: the next caller makes anew; a failure reaches its callers, is not kept
        results = await asyncio.gather(flight.once("k", make), flight.once("k", make),
                                       return_exceptions=True)  # fmt: skip
        assert [str(r) for r in results] == ["down", "down"]
        assert made == 2

    asyncio.run(main())


def test_a_limit_runs_the_first_items_first_and_answers_them_before_the_next_run() -> None:
    async def main() -> tuple[list[tuple[list[int], int]], list[int]]:
        runs: list[tuple[list[int], int]] = []
        tasks: list[asyncio.Task[int]] = []

        async def run(_: None, items: list[int]) -> list[int]:
            runs.append((items, sum(t.done() for t in tasks)))  # answered so far
            await asyncio.sleep(0.01)
            return [i * 10 for i in items]

        batcher: Batcher[None, int, int] = Batcher(run, limit=2)
        tasks.extend(asyncio.create_task(batcher.submit(None, i)) for i in range(5))
        return runs, list(await asyncio.gather(*tasks))

    runs, results = asyncio.run(main())
    assert results == [0, 10, 20, 30, 40]
    assert runs == [([0, 1], 0), ([2, 3], 2), ([4], 4)]


def test_a_limit_needs_serial_runs_of_at_least_one() -> None:
    for serial, limit in ((False, 2), (True, 0)):
        with pytest.raises(ValueError, match="needs serial runs of at least one"):
            Batcher(lambda _, items: asyncio.sleep(0, items), serial=serial, limit=limit)
