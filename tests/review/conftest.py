"""Fixtures of the review app's tests: a judged run folder (and one whose ids hold ``/``, ``?``,
``%`` and formula characters), a run with a 20 MB field, the app served on loopback, and
one headless Chromium (Debian's ``chromium`` and ``chromedriver``) for every browser test."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from review_sample import ODD_IDS, build, build_long
from review_served import served

DRIVER_PATHS = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
BROWSER_NAMES = ("chromium", "chromium-browser")


def find_browser() -> tuple[str, str] | None:
    """The Chromium binary and its chromedriver, both from the system's packages."""
    binary = next((shutil.which(n) for n in BROWSER_NAMES if shutil.which(n)), None)
    driver = shutil.which("chromedriver") or next(
        (p for p in DRIVER_PATHS if os.access(p, os.X_OK)), None)
    return (binary, driver) if binary and driver else None


@pytest.fixture(scope="session")
def browser():
    found = find_browser()
    if found is None:
        pytest.skip("no headless Chromium here: `make setup` installs Debian's chromium and "
                    "chromium-driver when run as root (apt-get install chromium chromium-driver)")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium never fetches a driver or browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1000",
                     "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def judged_run(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("judged"))


@pytest.fixture(scope="module")
def app_url(judged_run):
    from curate.review import create_app

    with served(create_app(judged_run)) as url:
        yield url


@pytest.fixture(scope="module")
def odd_ids_run(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("odd_ids"), ids=ODD_IDS)


@pytest.fixture(scope="session")
def long_run(tmp_path_factory) -> Path:
    return build_long(tmp_path_factory.mktemp("long"))
