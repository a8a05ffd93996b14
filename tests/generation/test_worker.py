import threading

import pytest

from generation.backends.base import SamplingParams
from generation.lifecycle.worker import StopSequences, run_model
from tests.support.scripted import ScriptedBackend


@pytest.fixture
def backend():
    ScriptedBackend.reset()
    yield ScriptedBackend(slots=1)
    ScriptedBackend.reset()


def run(backend, params, cancel=None, emitted=None):
    emitted = [] if emitted is None else emitted
    result = run_model(
        backend=backend,
        slot=0,
        prompt_tokens=[1, 2, 3],
        params=params,
        cancel=cancel or threading.Event(),
        emit=lambda item: emitted.append(item.text),
    )
    return result, "".join(emitted)


@pytest.mark.parametrize(
    "pieces, stop, expected",
    [
        (["Hel", "lo EN", "D more"], "END", "Hello "),
        (["a", "b", "c"], "bc", "a"),
        (["x<", "/", "s>y"], "</s>", "x"),
        (["no", " stop", " here"], "END", "no stop here"),
        (["E", "N", "x"], "END", "ENx"),  # a false start is released once it cannot match
    ],
)
def test_stop_sequences_cut_across_piece_boundaries(pieces, stop, expected):
    stops = StopSequences([stop])
    released, hit = [], False
    for piece in pieces:
        text, hit = stops.feed(piece)
        released.append(text)
        if hit:
            break
    if not hit:
        released.append(stops.flush())
    assert "".join(released) == expected


def test_stop_sequences_hold_back_no_more_than_a_possible_prefix():
    stops = StopSequences(["STOP"])
    assert stops.feed("hello ST") == ("hello ", False)
    assert stops.feed("x") == ("STx", False)


def test_runs_to_the_end_of_the_script_with_finish_reason_stop(backend):
    result, text = run(backend, SamplingParams(max_tokens=100))
    assert (result.finish_reason, result.completion_tokens, text) == ("stop", 4, "Hello, world.")


def test_max_tokens_ends_with_length(backend):
    result, text = run(backend, SamplingParams(max_tokens=2))
    assert (result.finish_reason, result.completion_tokens, text) == ("length", 2, "Hello,")


def test_stop_sequence_ends_with_stop_and_cuts_the_text(backend):
    result, text = run(backend, SamplingParams(max_tokens=100, stop=(" wor",)))
    assert (result.finish_reason, text) == ("stop", "Hello,")


def test_cancel_is_checked_before_every_token(backend):
    cancel = threading.Event()
    emitted = []

    def emit_then_cancel(item):
        emitted.append(item.text)
        cancel.set()

    result = run_model(
        backend=backend, slot=0, prompt_tokens=[1], params=SamplingParams(max_tokens=100),
        cancel=cancel, emit=emit_then_cancel,
    )
    assert (result.finish_reason, result.completion_tokens, result.tokens_after_cancel) == ("cancelled", 1, 0)
    assert emitted == ["Hello"]
    assert backend.busy_slots() == set()


def test_a_token_finished_after_the_cancel_is_counted(backend):
    backend.token_delay = 0.2
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()  # lands while the first token is computed
    result, text = run(backend, SamplingParams(max_tokens=100), cancel=cancel)
    assert (result.finish_reason, result.completion_tokens, result.tokens_after_cancel, text) == ("cancelled", 1, 1, "")


def test_cancel_during_prompt_processing_stops_between_batches(backend):
    backend.prompt_delay = 0.05
    cancel = threading.Event()
    threading.Timer(0.08, cancel.set).start()
    result = run_model(
        backend=backend, slot=0, prompt_tokens=list(range(80)), params=SamplingParams(max_tokens=5),
        cancel=cancel, emit=lambda item: None,
    )
    assert (result.finish_reason, result.completion_tokens) == ("cancelled", 0)
    assert backend.calls[-1]["prompt_tokens"] == 80


def test_backend_failure_becomes_an_error_result(backend):
    backend.fail_after = 2
    result, text = run(backend, SamplingParams(max_tokens=100))
    assert (result.finish_reason, result.error_code, result.completion_tokens, text) == ("error", "backend_error", 2, "Hello,")
    assert backend.busy_slots() == set()
