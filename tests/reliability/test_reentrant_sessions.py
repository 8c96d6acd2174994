"""Guarantee 7 (re-entry): one session entered again, nested, repeated, after an exception or
from several threads at once, answers every call, and PyMC's functions are the originals again
exactly when the last open block in the process closes."""

from __future__ import annotations

import importlib
import threading

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


def assert_patched() -> None:
    for (module, attribute), function in ORIGINALS.items():
        assert getattr(importlib.import_module(module), attribute) is not function
    assert patch.is_installed()


def assert_clean() -> None:
    for (module, attribute), function in ORIGINALS.items():
        assert getattr(importlib.import_module(module), attribute) is function, (module, attribute)
    assert not patch.is_installed()
    assert patch.active_sessions() == ()


class Boom(Exception):
    pass


def test_nested_reentry_answers_every_call_and_restores_pymc() -> None:
    assert_clean()
    run = cc.cloud(tiny_model(), cache=True, backend="pymc", quiet=True)
    with run:
        with run:
            assert patch.active_sessions() == (run, run)
            pm.sample(**sample_kwargs(1))
        assert_patched()  # the outer block is still open
        assert patch.active_sessions() == (run,)
        pm.sample(**sample_kwargs(1))  # the same session: a hit
    assert [record.hit for record in run.records] == [False, True]
    assert_clean()
    # a later session, and the same one again, still work and still clean up
    with cc.cloud(tiny_model(), cache=True, backend="pymc", quiet=True) as later:
        pm.sample(**sample_kwargs(1))
    with run:
        pm.sample(**sample_kwargs(1))
    assert later.last is not None and later.last.hit
    assert [record.hit for record in run.records] == [False, True, True]
    assert_clean()


def test_repeated_blocks_of_one_session() -> None:
    run = cc.cloud(tiny_model(), cache=False, backend="pymc", quiet=True)
    for _ in range(3):
        with run:
            assert_patched()
        assert_clean()


def test_an_exception_in_the_inner_block() -> None:
    run = cc.cloud(tiny_model(), cache=False, backend="pymc", quiet=True)
    with run:
        with pytest.raises(Boom), run:
            raise Boom
        assert_patched()  # the outer block is still open
        assert patch.active_sessions() == (run,)
    assert_clean()


def test_an_exception_in_the_outer_block() -> None:
    run = cc.cloud(tiny_model(), cache=False, backend="pymc", quiet=True)
    with pytest.raises(Boom), run:
        with run:
            pass
        assert_patched()
        raise Boom
    assert_clean()


def test_an_exception_through_both_blocks() -> None:
    run = cc.cloud(tiny_model(), cache=False, backend="pymc", quiet=True)
    with pytest.raises(Boom), run, run:
        raise Boom
    assert_clean()


def test_a_keyboard_interrupt_in_nested_blocks() -> None:
    run = cc.cloud(tiny_model(), cache=False, backend="pymc", quiet=True)
    with pytest.raises(KeyboardInterrupt), run, run, run:
        raise KeyboardInterrupt
    assert_clean()


def test_exits_out_of_order_and_an_extra_exit() -> None:
    run = cc.cloud(tiny_model(), cache=False, backend="pymc", quiet=True)
    other = cc.cloud(tiny_model("other"), cache=False, backend="pymc", quiet=True)
    run.__enter__()
    other.__enter__()
    run.__enter__()
    run.__exit__(None, None, None)
    run.__exit__(None, None, None)  # run's outer block, before other's
    assert patch.active_sessions() == (other,)
    assert_patched()
    other.__exit__(None, None, None)
    assert_clean()
    run.__exit__(None, None, None)  # an exit with no open block changes nothing
    assert_clean()


def test_one_session_in_many_threads_at_once() -> None:
    """Six threads enter the same session (twice each, nested) at once; half raise. The patch
    stays until the very last block anywhere closes."""
    run = cc.cloud(tiny_model(), cache=True, backend="pymc", quiet=True)
    threads_n = 6
    opened = threading.Barrier(threads_n + 1)
    closing = threading.Barrier(threads_n + 1)
    last_may_close = threading.Event()
    errors: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            with run:
                with run:
                    opened.wait(timeout=60)
                    if number % 2:
                        raise Boom(number)
                closing.wait(timeout=60)
                if number == 0:
                    last_may_close.wait(timeout=60)
        except Boom:
            closing.wait(timeout=60)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    opened.wait(timeout=60)
    assert patch.open_blocks(run) >= threads_n
    closing.wait(timeout=60)
    for thread in threads[1:]:
        thread.join(timeout=60)
    assert patch.open_blocks(run) == 1  # thread 0's outer block
    assert_patched()
    last_may_close.set()
    threads[0].join(timeout=60)
    assert not errors
    assert patch.open_blocks(run) == 0
    assert_clean()
    with run:  # and it still answers afterwards
        pm.sample(**sample_kwargs(3))
    assert run.last is not None and run.last.hit is False
    assert_clean()
    record_trials("patch hygiene", "one session, 6 threads x 2 nested blocks, half raising", 6, 0)


def test_a_block_closed_by_another_thread() -> None:
    run = cc.cloud(tiny_model(), cache=False, backend="pymc", quiet=True)
    run.__enter__()
    closer = threading.Thread(target=run.__exit__, args=(None, None, None))
    closer.start()
    closer.join(timeout=60)
    assert patch.active_sessions() == ()  # the closed block no longer answers here either
    assert_clean()
    pm.Model.get_context().__exit__(None, None, None)  # leave the model the block entered


def test_a_model_free_session_refuses_another_model_while_open() -> None:
    first, second = tiny_model("first"), tiny_model("second")
    run = cc.cloud(cache=False, backend="pymc", quiet=True)
    with first, run:
        with run:  # the same model: fine
            assert run.model is first
        with second, pytest.raises(RuntimeError, match="already open for model 'first'"):
            run.__enter__()
        assert patch.active_sessions() == (run,)
    assert_clean()
    with second, run:  # once closed, it may serve another model
        assert run.model is second
    assert_clean()
