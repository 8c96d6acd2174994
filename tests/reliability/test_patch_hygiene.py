"""Guarantee 7: after any exception, in any thread, in any closing order, PyMC's functions are
the originals again and no session leaks into later blocks."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable

import pymc as pm
import pytest
from reliability_figures import record_trials
from reliability_workers import sample_kwargs, tiny_model

import cloudcache as cc
from cloudcache.calls import dispatch as patch

ORIGINALS = {
    (module, attribute): getattr(importlib.import_module(module), attribute)
    for targets in patch.PATCH_TARGETS.values()
    for module, attribute in targets
}


def _assert_clean() -> None:
    for (module, attribute), function in ORIGINALS.items():
        assert getattr(importlib.import_module(module), attribute) is function, (module, attribute)
    assert not patch.is_installed()
    assert patch.active_sessions() == ()


class Boom(Exception):
    pass


RAISERS: dict[str, Callable[[], None]] = {
    "exception in the block": lambda: (_ for _ in ()).throw(Boom()),
    "KeyboardInterrupt in the block": lambda: (_ for _ in ()).throw(KeyboardInterrupt()),
    "invalid pm.sample call": lambda: pm.sample(draws="many"),
    "failing sampler": lambda: pm.sample(**{**sample_kwargs(1), "chains": -1}),
}


@pytest.mark.parametrize("raiser", RAISERS.values(), ids=RAISERS.keys())
def test_exception_inside_the_block_restores_pymc(raiser: Callable[[], None]) -> None:
    _assert_clean()
    with (
        pytest.raises((Boom, KeyboardInterrupt, Exception)),
        cc.cloud(tiny_model(), cache=False, backend="pymc", quiet=True),
    ):
        assert pm.sample is not ORIGINALS[("pymc", "sample")]
        raiser()
    _assert_clean()


def test_threads_each_with_their_own_block_and_exceptions() -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def worker(number: int) -> None:
        try:
            barrier.wait(timeout=30)
            with cc.cloud(tiny_model(), cache=False, backend="pymc", quiet=True):
                barrier.wait(timeout=30)  # all six blocks open at once
                if number % 2:
                    raise Boom(number)
        except Boom:
            pass
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    _assert_clean()
    record_trials("patch hygiene", "6 threads, own blocks, half raising", 6, 0)


def test_a_thread_does_not_see_another_threads_session() -> None:
    model = tiny_model()
    seen: list[tuple[object, ...]] = []
    with cc.cloud(model, cache=False, backend="pymc", quiet=True):
        thread = threading.Thread(target=lambda: seen.append(patch.active_sessions()))
        thread.start()
        thread.join()
    assert seen == [()]
    _assert_clean()


def test_nested_blocks_with_an_inner_exception() -> None:
    outer_model, inner_model = tiny_model("outer"), tiny_model("inner")
    with cc.cloud(outer_model, cache=True, backend="pymc", quiet=True) as outer:
        with pytest.raises(Boom), cc.cloud(inner_model, cache=False, backend="pymc", quiet=True):
            raise Boom
        assert patch.active_sessions() == (outer,)
        pm.sample(**sample_kwargs(2))  # still answered by the outer block
    assert outer.last is not None and outer.last.key
    _assert_clean()


def test_blocks_closed_in_a_different_order_leak_nothing() -> None:
    first_model, second_model = tiny_model("first"), tiny_model("second")
    first = cc.cloud(first_model, cache=False, backend="pymc", quiet=True)
    second = cc.cloud(second_model, cache=False, backend="pymc", quiet=True)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the outer block closes first
    assert first not in patch.active_sessions()
    second.__exit__(None, None, None)
    _assert_clean()
    # a later block on the same model is answered by the new session only
    with cc.cloud(first_model, cache=False, backend="pymc", quiet=True) as later:
        assert patch.active_sessions() == (later,)
    _assert_clean()
