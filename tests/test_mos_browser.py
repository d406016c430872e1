"""The rater page in a real headless browser: Debian's Chromium driven by Playwright. Calibration, keyboard ratings,
a reload that resumes at the right trial, the stored rows, and 1:1 device pixels: at devicePixelRatio 2 the image's
CSS box is half its natural size and the screen's device pixels equal the PNG's pixels exactly (also zoomed x2 and at
the fractional ratio 1.5).

Never skipped: without Chromium or Playwright the test fails and says what to install.
"""

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mos_fixtures import make_db, running, stored
from sr_lib.mos import store

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
WAIT_MS = 10_000


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: pip install -r requirements.txt (it pins playwright)")
    if not Path(CHROMIUM).is_file() and shutil.which("chromium") is None:
        pytest.fail(f"Chromium is missing ({CHROMIUM}): apt-get install -y chromium (.ci/run does this)")
    return sync_playwright


def _wait(page, phase, number):
    """Until the page shows trial ``number`` of ``phase`` with its picture loaded and input enabled."""
    page.wait_for_function("([phase, number]) => document.body.dataset.ready === '1' && document.body.dataset.phase "
                           "=== phase && document.body.dataset.number === String(number)", arg=[phase, number],
                           timeout=WAIT_MS)


def _geometry(page) -> dict:
    return page.evaluate("""() => { const img = document.getElementById('picture');
        const box = img.getBoundingClientRect();
        return {x: box.left, y: box.top, width: box.width, height: box.height, ratio: devicePixelRatio,
                naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight, src: img.src}; }""")


def _assert_one_to_one(page, db, ratio=2, zoom=1, pixels=False):
    """The image's CSS box times the ratio is its natural size (times zoom), on the device pixel grid; with
    ``pixels``, the screenshot's device pixels equal the stored PNG's (each repeated zoom x zoom times)."""
    box = _geometry(page)
    assert box["ratio"] == ratio
    for side, natural in (("width", "naturalWidth"), ("height", "naturalHeight")):
        assert abs(box[side] * ratio - box[natural] * zoom) < 0.01, box  # 1e-4 over: see page.py.
    assert (box["x"] * ratio) % 1 == 0 and (box["y"] * ratio) % 1 == 0, box
    if not pixels:
        return
    connection = store.connect(db)
    png = connection.execute("SELECT s.png FROM trials t JOIN stimuli s ON s.id = t.stimulus_id WHERE t.public_id = ?",
                             (box["src"].rsplit("/", 1)[1],)).fetchone()[0]
    connection.close()
    expected = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).repeat(zoom, 0).repeat(zoom, 1)
    screen = np.asarray(Image.open(io.BytesIO(page.screenshot(scale="device", full_page=True))).convert("RGB"))
    top, left = round(box["y"] * ratio), round(box["x"] * ratio)
    shown = screen[top:top + expected.shape[0], left:left + expected.shape[1]]
    assert np.array_equal(shown, expected), f"{np.mean(shown != expected):.1%} of the device pixels differ"


def test_rater_page_in_chromium(tmp_path):
    sync_playwright = _playwright()
    db, tokens = make_db(tmp_path, raters=1, size=160, calibration_size=160, photo=True)
    pressed = {}  # position -> score
    with running(db) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_context(device_scale_factor=2, viewport={"width": 900, "height": 700}).new_page()
            problems = []
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("response", lambda response: problems.append(f"{response.status} {response.url}")
                    if response.status >= 400 else None)
            page.goto(server.url(tokens[0]))
            for number in range(1, 7):  # Calibration: rated as labelled.
                _wait(page, "calibration", number)
                label = page.text_content("#label")
                assert label in ("this is 1 (bad)", "this is 5 (excellent)")
                assert page.text_content("#progress") == f"calibration {number} of 6"
                _assert_one_to_one(page, db, pixels=number == 1)
                if number == 1:
                    page.screenshot(path=str(tmp_path / "mos_page_calibration.png"))
                score = label[len("this is ")]
                page.keyboard.press(score)
                pressed[number - 1] = int(score)
            study_scores = [2, 4, 3, 5, 1]
            for number, score in enumerate(study_scores, 1):
                _wait(page, "study", number)
                assert page.text_content("#progress") == f"trial {number} of 17"
                assert page.text_content("#label") == ""
                _assert_one_to_one(page, db, pixels=number == 1)
                page.keyboard.press(str(score))
                pressed[5 + number] = score
            _wait(page, "study", 6)
            page.reload()  # Resumes at the next unrated trial: the state is in the database.
            _wait(page, "study", 6)
            assert page.text_content("#progress") == "trial 6 of 17"
            page.keyboard.press("+")
            _assert_one_to_one(page, db, zoom=2, pixels=True)
            page.click("button[data-zoom='3']")
            _assert_one_to_one(page, db, zoom=3)
            page.keyboard.press("-")
            page.keyboard.press("-")
            _assert_one_to_one(page, db, zoom=1)
            page.click("button[data-score='4']")  # By clicking, too.
            pressed[11] = 4
            _wait(page, "study", 7)
            page.screenshot(path=str(tmp_path / "mos_page.png"))
            page.keyboard.press("3")
            pressed[12] = 3
            _wait(page, "study", 8)
            fractional = browser.new_context(device_scale_factor=1.5).new_page()  # The same rater, elsewhere.
            fractional.goto(server.url(tokens[0]))
            _wait(fractional, "study", 8)
            _assert_one_to_one(fractional, db, ratio=1.5, pixels=True)
            assert problems == []  # No script error, no Content-Security-Policy violation, no failed request.
        finally:
            browser.close()
    assert stored(db) == {(1, position): score for position, score in pressed.items()}
    print(f"screenshots: {tmp_path / 'mos_page.png'}, {tmp_path / 'mos_page_calibration.png'}")
