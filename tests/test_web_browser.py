"""The chat page in a real browser (Debian's headless Chromium through chromedriver) on
ML-100k: ask "dark sci-fi from the 80s" with the keyboard, see the steps, then the cards;
open "why?"; dislike the first card; ask "more" and see it gone; the page fits a phone.

Set RECAGENT_SCREENSHOT=docs/web-chat.png to keep the screenshot of the answer (the README's
picture is made this way)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from recagent.app import Services, load_services
from recagent.config import load_settings
from tests.conftest import Stack
from tests.webkit import make_backend, running

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT_S = 60

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="BROWSER TEST SKIPPED: needs Debian's chromium and chromium-driver "
    "(apt-get install chromium chromium-driver; .ci/run installs them)",
)

RECORD_ORDER = """
window.seen = [];
new MutationObserver((mutations) => {
  for (const m of mutations) for (const n of m.addedNodes) {
    if (n.nodeType !== 1) continue;
    if (n.matches("li.step")) window.seen.push("step");
    if (n.matches("ol.cards")) window.seen.push("cards");
  }
}).observe(document.querySelector("#log"), { childList: true, subtree: true });
"""


@pytest.fixture(scope="module")
def services(ml100k_stack: Stack) -> Services:
    settings = load_settings(home=ml100k_stack.workspace.root)
    return load_services(ml100k_stack.workspace, settings, "ml-100k", build_missing=False)


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium must never fetch a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_ask_see_steps_then_cards_dislike_and_more(
    browser, services: Services, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_S)
    with running(make_backend(services, tmp_path / "sessions.sqlite")) as url:
        browser.get(url)
        wait.until(ec.text_to_be_present_in_element((By.ID, "mode"), "offline planner"))
        wait.until(ec.text_to_be_present_in_element((By.ID, "user-note"), "no user"))
        browser.execute_script(RECORD_ORDER)

        box = browser.find_element(By.ID, "text")
        box.send_keys("dark sci-fi from the 80s", Keys.ENTER)  # the keyboard sends
        first = wait.until(
            ec.presence_of_all_elements_located((By.CSS_SELECTOR, "section.turn .card"))
        )
        seen = browser.execute_script("return window.seen")
        assert "cards" in seen and seen.index("step") < seen.index("cards"), seen
        assert seen.count("step") >= 3
        steps = [
            s.get_attribute("textContent")
            for s in browser.find_elements(By.CSS_SELECTOR, "li.step")
        ]
        assert any("searching items for" in s for s in steps), steps
        assert len(first) == 10
        titles = [c.find_element(By.TAG_NAME, "h3").text for c in first]
        assert all(any(f"(198{d})" in t for d in range(10)) for t in titles), titles
        assert all("Sci-Fi" in c.find_element(By.CLASS_NAME, "genres").text for c in first)

        top = first[0]
        disliked = top.get_attribute("data-item-id")
        top.find_element(By.CLASS_NAME, "why").click()
        wait.until(lambda _: top.find_elements(By.CSS_SELECTOR, ".evidence li"))
        evidence = top.find_element(By.CLASS_NAME, "evidence").text
        assert evidence.strip() and "(" in evidence
        shot = Path(os.environ.get("RECAGENT_SCREENSHOT") or tmp_path / "web-chat.png")
        shot.parent.mkdir(parents=True, exist_ok=True)
        browser.execute_script("window.scrollTo(0, 0)")
        browser.find_element(By.CSS_SELECTOR, "details.steps summary").click()  # show the steps
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

        dislike = top.find_element(By.CLASS_NAME, "dislike")
        dislike.send_keys(Keys.ENTER)  # a focused button works from the keyboard
        wait.until(ec.text_to_be_present_in_element((By.ID, "log"), "Noted: “I didn't like"))
        assert dislike.get_attribute("aria-pressed") == "true"
        assert "disliked" in (top.get_attribute("class") or "")

        browser.find_element(By.ID, "text").send_keys("more", Keys.ENTER)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "section.turn")) == 2)
        second = wait.until(
            lambda d: (
                d.find_elements(By.CSS_SELECTOR, "section.turn:nth-of-type(2) .card")
                or d.find_elements(By.CSS_SELECTOR, "section.turn ~ section.turn .card")
            )
        )
        again = {c.get_attribute("data-item-id") for c in second}
        assert again and disliked not in again
        assert not again & {c.get_attribute("data-item-id") for c in first}  # "more": new ones

        # the plan that ran, under each answer
        plan = browser.find_element(By.CSS_SELECTOR, "section.turn details.plan")
        browser.execute_script("arguments[0].open = true", plan)
        assert "the planner's plan" in plan.text and "search_items" in plan.text

        # a verdict on one title, and the person's taste: each shown as what it is
        browser.find_element(By.ID, "text").send_keys("is Heat a good pick for me?", Keys.ENTER)
        verdict = wait.until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "section.turn .verdict"))
        )
        assert "Heat" in verdict.text and verdict.find_elements(By.CSS_SELECTOR, "ul li")
        assert verdict.find_element(By.CLASS_NAME, "label").text in (
            "Good pick",
            "Maybe",
            "Probably not",
        )
        box = browser.find_element(By.ID, "text")
        box.send_keys("what do you know about my taste?", Keys.ENTER)
        profile = wait.until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "section.turn .profile"))
        )
        assert "In this conversation" in profile.text  # what it learned: the dislike

        browser.set_window_size(390, 844)  # a phone
        fits = browser.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1"
        )
        assert fits, "the page scrolls sideways at phone width"
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
