"""The RunComfy page and task tab in headless Chromium (Debian's chromium and chromium-driver, driven by Selenium),
as a person uses them: log in on Airflow's login page, open RunComfy in the navigation, watch a clip play, open
a task instance's RunComfy tab. Screenshots go to the test's folder, and to docs/ with ``--write-report``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from airflow_provider_runcomfy.version_compat import AIRFLOW_V_3_1_PLUS

from .conftest import MARKUP_PROMPT
from .debian import ensure_chromium
from .harness import AirflowDeployment

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="the page in Airflow's UI is an external view: Airflow 3.1+"),
]
DOCS = Path(__file__).parents[2] / "docs"
# As this machine's probe runs Chromium: no background connections (the network is closed), a fresh profile.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1500,1000",
    "--mute-audio",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    chromium, chromedriver = ensure_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=ChromeService(chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: WebDriver, name: str, folder: Path, config: pytest.Config) -> Path:
    path = folder / name
    driver.save_screenshot(str(path))
    if config.getoption("write_report"):
        shutil.copy(path, DOCS / name)
    return path


def test_a_person_logs_in_opens_runcomfy_and_watches_a_clip(
    deployment: AirflowDeployment, ui_runs: dict[str, str], browser: WebDriver, tmp_path: Path, pytestconfig
):
    wait = WebDriverWait(browser, 60)
    browser.get(f"{deployment.api.url}/")  # Airflow sends a stranger to its login page
    wait.until(ready.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
    password = browser.find_element(By.NAME, "password")
    password.send_keys(deployment.passwords["admin"], Keys.ENTER)
    wait.until(lambda d: "/auth/login" not in d.current_url)

    browser.get(f"{deployment.api.url}/plugin/runcomfy")  # where the navigation's "RunComfy" entry leads
    frame = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "iframe")))
    assert "/runcomfy/" in frame.get_attribute("src")
    browser.switch_to.frame(frame)
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "tr.generation")))
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.generation")
    assert any(MARKUP_PROMPT in row.text for row in rows)  # shown as text, not run as a script
    assert not ready.alert_is_present()(browser)
    video = browser.find_element(By.CSS_SELECTOR, "tr.generation video")
    browser.execute_script("arguments[0].scrollIntoView()", video)
    wait.until(lambda d: d.execute_script("return arguments[0].readyState", video) >= 2)  # HAVE_CURRENT_DATA
    assert browser.execute_script("return arguments[0].videoWidth", video) > 0
    browser.execute_script("window.scrollTo(0, 0)")
    browser.switch_to.default_content()
    screenshot(browser, "ui-runcomfy-page.png", tmp_path, pytestconfig)

    run_id = ui_runs["ui_generations"]
    browser.get(f"{deployment.api.url}/dags/ui_generations/runs/{run_id}/tasks/generate/mapped/1/plugin/runcomfy_task")
    frame = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "iframe")))
    assert "map_index=1" in frame.get_attribute("src")
    browser.switch_to.frame(frame)
    section = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "section.task")))
    assert "Timeline" in section.text and "pixverse/pixverse/v5.5/text-to-video" in section.text
    video = browser.find_element(By.CSS_SELECTOR, "section.task video")
    wait.until(lambda d: d.execute_script("return arguments[0].readyState", video) >= 2)
    browser.switch_to.default_content()
    screenshot(browser, "ui-runcomfy-task-tab.png", tmp_path, pytestconfig)
