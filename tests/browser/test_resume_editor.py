"""The compose page rides out a dropped connection: Chromium goes offline mid-stream
(DevTools network emulation), the page says it is reconnecting, comes back online, resumes
after the last event it saw, and ends with exactly the text of an uninterrupted run.

Chromium's offline emulation fails new requests but leaves a response that is already
streaming untouched (checked with this Chromium), so the page reaches the server through a
small TCP relay here whose connections are dropped at the moment the network goes offline:
the stream breaks as it would on a real network cut, and every reconnect attempt fails
until the emulation is back online."""
from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import replace

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import SCRIPTED_BACKEND, start_editor_server, stop
from .test_editor import fill, open_compose, output_text, state, wait_state

pytestmark = [pytest.mark.browser, pytest.mark.integration]
WORDS = "Crafted from solid red cedar, this board brings warmth to any kitchen counter.".split()
SCRIPT = [f"{WORDS[index % len(WORDS)]} " for index in range(70)]
OFFLINE = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
# Online but throttled (far above what a stream needs): Chromium's emulation cuts only the
# requests it throttles, so the stream must start under these conditions to be cut later.
ONLINE = {"offline": False, "latency": 1, "downloadThroughput": 50_000_000, "uploadThroughput": 50_000_000}


class CuttableRelay:
    """A TCP relay to `port` whose live connections `cut()` drops."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            with self.lock:
                self.sockets += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for end in (source, target):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for end in sockets:
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            end.close()

    def close(self) -> None:
        self.listener.close()
        self.cut()


@pytest.fixture
def slow_server(tmp_path):
    server = start_editor_server(
        tmp_path, SLUICE_BACKEND=SCRIPTED_BACKEND, SLUICE_TEST_SCRIPT=json.dumps(SCRIPT),
        SLUICE_TEST_TOKEN_DELAY="0.06", SLUICE_RESUME_GRACE_SECONDS="15",
    )
    yield server
    stop(server)


def generate(browser, server) -> None:
    open_compose(browser, server)
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", ONLINE)
    fill(browser)
    browser.find_element(By.ID, "generate").click()


def test_offline_mid_stream_then_online_resumes_to_the_uninterrupted_text(browser, slow_server, screenshot):
    generate(browser, slow_server)
    assert wait_state(browser, timeout=60) == "done"
    uninterrupted = output_text(browser)
    assert uninterrupted == "".join(SCRIPT)

    relay = CuttableRelay(int(slow_server.url.rsplit(":", 1)[1]))
    through_relay = replace(slow_server, url=f"http://127.0.0.1:{relay.port}")
    generate(browser, through_relay)
    WebDriverWait(browser, 60, poll_frequency=0.05).until(lambda d: len(output_text(d)) > 40)
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", OFFLINE)
    relay.cut()
    try:
        WebDriverWait(browser, 20, poll_frequency=0.05).until(lambda d: state(d) == "reconnecting")
        assert "Reconnecting" in browser.find_element(By.ID, "status-text").text
        screenshot("reconnecting")
        partial = output_text(browser)
        assert 0 < len(partial) < len(uninterrupted)
        time.sleep(1.0)  # offline a while: the page keeps retrying, the server keeps generating
    finally:
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", ONLINE)
    try:
        assert wait_state(browser, timeout=60) == "done", browser.find_element(By.ID, "status-text").text
    finally:
        relay.close()
    assert output_text(browser) == uninterrupted
    assert not browser.find_element(By.ID, "banner").is_displayed()
    (row,) = slow_server.rows("channel = 'web' ORDER BY created_at DESC LIMIT 1")
    assert (row["status"], row["resumes"]) == ("completed", 1) and row["disconnects"] >= 1


def test_past_the_grace_period_the_page_shows_the_lost_state_with_the_partial_text(browser, tmp_path):
    server = start_editor_server(
        tmp_path, SLUICE_BACKEND=SCRIPTED_BACKEND, SLUICE_TEST_SCRIPT=json.dumps(SCRIPT),
        SLUICE_TEST_TOKEN_DELAY="0.06", SLUICE_RESUME_GRACE_SECONDS="2",
    )
    relay = CuttableRelay(int(server.url.rsplit(":", 1)[1]))
    try:
        generate(browser, replace(server, url=f"http://127.0.0.1:{relay.port}"))
        WebDriverWait(browser, 60, poll_frequency=0.05).until(lambda d: len(output_text(d)) > 40)
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", OFFLINE)
        relay.cut()
        try:
            assert wait_state(browser, states=("reconnecting",), timeout=20) == "reconnecting"
            assert wait_state(browser, timeout=20) == "lost"
        finally:
            browser.execute_cdp_cmd("Network.emulateNetworkConditions", ONLINE)
        assert "Connection lost" in browser.find_element(By.ID, "banner").text and output_text(browser)
        row = server.row(server.rows("channel = 'web'")[0]["request_id"], timeout=20)
        assert (row["status"], row["cancel_reason"]) == ("cancelled", "client_disconnect")
    finally:
        relay.close()
        stop(server)
