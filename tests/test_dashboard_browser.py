"""The dashboard in a real browser: Debian's Chromium, headless, driven with Selenium, on a
server under load. Every chart must have drawn points for the last seconds, and the model
table must list the models.

It skips, saying why, where no Chromium and chromedriver are installed (``.ci/browser``
installs Debian's ``chromium`` and ``chromium-driver`` where root can). A screenshot of the
page is left in the test's temporary directory.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nvml_fakes import nvml_init_error
from support import RunningServer, start_server, wait_until

WINDOW = (1400, 2000)
# How far back "the last seconds" reach, and how many points each line must have there.
RECENT_S = 10
RECENT_POINTS = 3
SERVER_CHARTS = {"server:cpu", "server:memory"}
VERSION_CHARTS = ("traffic", "latency", "queue", "batches", "workers")
MODELS = [("other", "1.0"), ("probe", "1.0")]
# Each chart's lines: how many points they have in the last RECENT_S seconds of the chart, and
# whether uPlot built their paths (it does when it draws them).
CHARTS_SCRIPT = """
const recentSeconds = arguments[0];
return [...window.dashboard.charts.values()].map((chart) => {
  if (!chart.uplot) return { id: chart.id, placeholder: chart.box.textContent };
  const u = chart.uplot;
  const times = u.data[0];
  const newest = times[times.length - 1];
  return {
    id: chart.id,
    newest,
    lines: u.series.slice(1).map((line, index) => ({
      label: line.label,
      recent: (u.data[index + 1] || []).filter(
        (value, at) => value != null && times[at] >= newest - recentSeconds).length,
      drawn: line._paths != null,
    })),
  };
});
"""


def chromium_driver() -> Any:
    """A headless Chromium under Selenium; skips where either is missing."""
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')"
    )
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.skip(
            "no chromium and chromedriver: .ci/browser installs Debian's chromium and "
            "chromium-driver (apt-get, as root)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=chromedriver)
    return webdriver.Chrome(service=service, options=options)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    driver = chromium_driver()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, model_store: Path) -> Iterator[RunningServer]:
    """A server with two models, sent requests (a few of them failing) until the module ends."""
    server = start_server(
        tmp_path_factory.mktemp("browser"),
        model_store,
        models=["probe=probe.mar", "other=other.mar"],
        config={"default_workers_per_model": "1"},
    )
    stop = threading.Event()

    def send() -> None:
        with httpx.Client(base_url=server.inference, timeout=60) as client:
            sent = 0
            while not stop.is_set():
                client.post("/predictions/probe", json={"sleep": 0.002})
                body = {"fail": "on purpose"} if sent % 10 == 0 else {}
                client.post("/predictions/other", json=body)
                sent += 1

    senders = [threading.Thread(target=send) for _ in range(2)]
    for sender in senders:
        sender.start()
    try:
        yield server
    finally:
        stop.set()
        for sender in senders:
            sender.join()
        server.stop()


def charts(browser: Any) -> list[dict[str, Any]]:
    return browser.execute_script(CHARTS_SCRIPT, RECENT_S)


def undrawn(found: list[dict[str, Any]]) -> list[str]:
    """The charts, and lines, without points drawn for the last seconds."""
    missing = []
    for chart in found:
        if "placeholder" in chart:
            continue
        if chart["newest"] is None or chart["newest"] < time.time() - RECENT_S:
            missing.append(f"{chart['id']}: nothing in the last {RECENT_S} s")
        for line in chart["lines"]:
            if line["recent"] < RECENT_POINTS or not line["drawn"]:
                missing.append(f"{chart['id']} {line['label']}: {line}")
    return missing


def drawn_recently(browser: Any) -> list[dict[str, Any]]:
    """The charts, once every line of every chart has recent points that uPlot drew."""

    def all_drawn() -> list[dict[str, Any]] | None:
        found = charts(browser)
        return found if found and not undrawn(found) else None

    try:
        return wait_until(all_drawn, 60, interval=0.5)
    except AssertionError:
        pytest.fail(f"charts without recent points: {undrawn(charts(browser))}")


def test_every_chart_draws_the_last_seconds_and_the_table_lists_the_models(
    browser: Any, loaded: RunningServer, tmp_path: Path
) -> None:
    browser.get(loaded.metrics + "/")
    found = drawn_recently(browser)

    gpu_error = nvml_init_error()
    expected = SERVER_CHARTS | {
        f"version:{model}/{version}:{chart}"
        for model, version in MODELS
        for chart in VERSION_CHARTS
    }
    if gpu_error is None:
        expected |= {"server:gpu-utilization", "server:gpu-memory"}
    else:
        expected.add("server:gpu")
        (placeholder,) = [chart for chart in found if "placeholder" in chart]
        assert placeholder["id"] == "server:gpu"
        assert "no GPU seen" in placeholder["placeholder"]
    assert {chart["id"] for chart in found} == expected
    rows = [
        [cell.text for cell in row.find_elements("css selector", "td")]
        for row in browser.find_elements("css selector", "#models tbody tr")
    ]
    assert [tuple(cells[:2]) for cells in rows] == MODELS
    assert all(cells[3] == "AVAILABLE" and cells[4] == "1 / 1" for cells in rows), rows
    tiles = browser.find_element("id", "summary").text
    assert "requests/s" in tiles and "failed" in tiles
    browser.save_screenshot(str(tmp_path / "dashboard.png"))
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == []


def test_the_range_switch_redraws_every_chart_from_the_longer_history(
    browser: Any, loaded: RunningServer
) -> None:
    browser.get(loaded.metrics + "/")
    drawn_recently(browser)
    browser.find_element("css selector", "button[data-range='hours']").click()

    def hours_drawn() -> bool:
        if browser.execute_script("return window.dashboard.series.range") != "hours":
            return False
        drawn = [chart for chart in charts(browser) if "lines" in chart]
        return bool(drawn) and all(
            line["drawn"] and line["recent"] >= 1 for chart in drawn for line in chart["lines"]
        )

    wait_until(hours_drawn, 30, interval=0.5)
    pressed = browser.find_element("css selector", "button[aria-pressed='true']")
    assert pressed.get_attribute("data-range") == "hours"
