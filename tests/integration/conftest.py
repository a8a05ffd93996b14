"""A real daphne server with the real Gemma model, on a free port, for the whole session."""
import pytest

from tests.support.live import start_server


@pytest.fixture(scope="session")
def sluice_server(tmp_path_factory):
    server = start_server(
        tmp_path_factory.mktemp("live"), SLUICE_SLOTS=1, SLUICE_MAX_QUEUE=0, SLUICE_N_CTX=4096, SLUICE_N_BATCH=256
    )
    yield server
    server.process.terminate()
    server.process.wait(timeout=20)
