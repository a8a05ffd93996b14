"""Headless Chromium (Debian's chromium + chromedriver) against a real daphne server with the
real model, signed in through the login page."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.live import manage, server_env, start_server

USERNAME, PASSWORD = "editor", "editor-pass-4471"
# SLUICE_SCREENSHOTS_DIR sends them elsewhere, for a run that should not touch the docs.
SCREENSHOTS = Path(os.environ.get("SLUICE_SCREENSHOTS_DIR") or Path(__file__).resolve().parents[2] / "docs" / "screenshots")
SCRIPTED_BACKEND = "tests.browser.scripted.EnvScriptedBackend"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
)


def start_editor_server(data_dir: Path, **overrides):
    """A live server (one slot) with an editor account made by ensure_admin on its data dir.
    `overrides` are more environment, e.g. SLUICE_BACKEND=SCRIPTED_BACKEND, SLUICE_TEST_SCRIPT."""
    env = server_env(data_dir, SLUICE_ADMIN_USERNAME=USERNAME, SLUICE_ADMIN_PASSWORD=PASSWORD, **overrides)
    manage(env, "collectstatic", "--no-input", "-v", "0")  # as `make run` does: the manifest storage needs it
    server = start_server(
        data_dir, SLUICE_SLOTS=1, SLUICE_MAX_QUEUE=4, SLUICE_N_CTX=2048, SLUICE_N_BATCH=256, **overrides
    )
    manage(env, "ensure_admin")
    return server


def stop(server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        server.process.wait(timeout=30)


@pytest.fixture(scope="session")
def editor_server(tmp_path_factory):
    server = start_editor_server(tmp_path_factory.mktemp("browser"))
    yield server
    stop(server)


@pytest.fixture(scope="session")
def browser():
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("Debian's chromium and chromium-driver are required: apt-get install -y chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument("--window-size=1200,1000")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def screenshot(browser):
    """Save a PNG of the current page under docs/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(name: str, *, top: bool = True) -> None:
        if top:
            browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))

    return save
