"""Take the review app's screenshots for the README with the same headless Chromium the
tests use, on the tests' sample run (two labelling rounds, so every panel has figures).

    .venv/bin/python tests/review/take_screenshots.py docs/
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (NoSuchElementException,  # noqa: E402
                                        StaleElementReferenceException)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from conftest import find_browser  # noqa: E402
from curate.review import create_app  # noqa: E402
from review_sample import JUDGE_PROMPT, build  # noqa: E402
from review_served import served  # noqa: E402

CRITIQUES = {0: "P99 of duration_ms is right, but the question asks per endpoint: break down "
                "by http.route, not by host.", 2: "Counts retries, but the question is about "
                "their latency."}


def browser(width: int, height: int):
    binary, driver = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", f"--window-size={width},{height}",
                     "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver), options=options)


def label(driver, flip: bool, critique: str = "") -> None:
    row_id = driver.find_element(By.ID, "label-id").text
    judge = driver.find_element(By.ID, "judge-outcome").text
    if critique:
        driver.find_element(By.ID, "expert-critique").send_keys(critique)
    outcome = {"good": "bad", "bad": "good"}[judge] if flip else judge
    driver.find_element(By.ID, f"mark-{outcome}").click()
    WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException,
                                                  NoSuchElementException)).until(
        lambda d: d.find_element(By.ID, "label-id").text != row_id)


def label_round(run: Path, driver, count: int, flips: set) -> None:
    with served(create_app(run)) as url:
        driver.get(url + "/label")
        for i in range(count):
            label(driver, i in flips, CRITIQUES.get(i, "") if i in flips else "")


def shoot(run: Path, driver, out: Path) -> list[Path]:
    with served(create_app(run)) as url:
        driver.get(url + "/?sort=_rouge_l")
        driver.save_screenshot(str(out / "review-browse.png"))
        driver.get(url + "/?stage=repair&status=kept")
        driver.find_element(By.CSS_SELECTOR, "a.row-link").click()
        driver.set_window_size(1400, 1500)
        heading = driver.find_element(By.ID, "lineage-heading")
        driver.execute_script("window.scrollTo(0, arguments[0].offsetTop - 10)", heading)
        driver.save_screenshot(str(out / "review-lineage.png"))
        driver.set_window_size(1400, 1000)
        driver.get(url + "/label")
        ActionChains(driver).move_to_element(driver.find_element(By.ID, "mark-bad")).perform()
        driver.save_screenshot(str(out / "review-label.png"))
    return [out / f"review-{n}.png" for n in ("browse", "lineage", "label")]


def main(out: str) -> None:
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        run = build(Path(work))
        driver = browser(1400, 1000)
        try:
            label_round(run, driver, 5, flips={0})
            build(Path(work), instructions=JUDGE_PROMPT + " Check the breakdown column.")
            label_round(run, driver, 4, flips={0, 2})
            for path in shoot(run, driver, target):
                print(path)
        finally:
            driver.quit()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs")
