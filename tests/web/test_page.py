"""The page in headless Chromium (Debian's, driven by Playwright): results equal hat-sr upscale's, bad files get a
message and the server goes on; a click on the LAM tab's image places the box it explains."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.web.conftest import SET5, start_server, upscale_with_cli

pytest.importorskip('gradio', reason="hat-sr serve needs the web extra: pip install '.[web]'")
sync_api = pytest.importorskip('playwright.sync_api', reason="the page's tests drive Chromium with playwright")
CHROMIUM = shutil.which('chromium')
TIMEOUT_MS = 90_000
# Set to a path (docs/web_app.png, docs/web_lam.png) to keep the screenshot of the page after a run, of its LAM tab.
SCREENSHOT_ENV = 'HAT_WEB_SCREENSHOT'
LAM_SCREENSHOT_ENV = 'HAT_WEB_LAM_SCREENSHOT'

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")]


@pytest.fixture(scope='module')
def server(checkpoint):
    server = start_server(checkpoint)
    yield server
    server.stop()


@pytest.fixture(scope='module')
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)  # the system's browser, none downloaded
        yield browser
        browser.close()


def open_page(browser, server):
    page = browser.new_page(viewport={'width': 1280, 'height': 900}, accept_downloads=True)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server.url)
    page.wait_for_selector('#run')
    return page


def upload_and_run(page, files: list[Path]) -> None:
    page.locator('#images input[type=file]').set_input_files([str(f) for f in files])
    for file in files:  # uploaded once the list shows it
        page.locator(f'#images td.filename[aria-label="{file.name}"]').wait_for()
    page.click('#run')


def result_link(page, name: str):
    """The download link (the file size) in the row of ``name`` in the results list."""
    return page.locator(f'#results tr:has(td.filename[aria-label="{name}"]) a')


def download(page, name: str, folder: Path) -> Path:
    with page.expect_download() as info:
        result_link(page, name).click()
    path = folder / name
    info.value.save_as(path)
    return path


def test_the_page_gives_what_hat_sr_upscale_gives_pixel_for_pixel(server, browser, checkpoint, tmp_path):
    deep = tmp_path / 'bird16.png'  # 16 bits per channel: kept as 16 bits, as the command keeps them
    cv2.imwrite(str(deep), cv2.imread(str(SET5 / 'bird.png')).astype(np.uint16) * 257 + 3)
    images = [SET5 / 'baby.png', deep]
    upscale_with_cli(checkpoint, images, tmp_path / 'cli')

    page = open_page(browser, server)
    upload_and_run(page, images)
    page.locator('#status').get_by_text('Upscaled 2 image(s).').wait_for()
    result_link(page, 'results.zip').wait_for()
    page.wait_for_timeout(500)  # the slider's images
    page.screenshot(path=str(tmp_path / 'web_app.png'), full_page=True)
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(tmp_path / 'web_app.png', os.environ[SCREENSHOT_ENV])

    for name in ('baby_x4.png', 'bird16_x4.png'):
        downloaded = cv2.imread(str(download(page, name, tmp_path)), cv2.IMREAD_UNCHANGED)
        expected = cv2.imread(str(tmp_path / 'cli' / name), cv2.IMREAD_UNCHANGED)
        assert downloaded.dtype == expected.dtype and downloaded.shape == expected.shape
        np.testing.assert_array_equal(downloaded, expected)
    assert cv2.imread(str(tmp_path / 'bird16_x4.png'), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    archive = download(page, 'results.zip', tmp_path)
    shutil.unpack_archive(archive, tmp_path / 'unzipped')
    assert sorted(p.name for p in (tmp_path / 'unzipped').iterdir()) == ['baby_x4.png', 'bird16_x4.png']
    page.close()


def test_a_file_that_is_not_an_image_gets_a_message_and_the_next_upload_works(server, browser, tmp_path):
    fake = tmp_path / 'notes.png'
    fake.write_text('these are notes, not pixels')
    page = open_page(browser, server)
    upload_and_run(page, [fake])
    message = page.locator('#status').get_by_text('notes.png: cannot read')
    message.wait_for()
    assert 'not an image' in message.inner_text() and str(server.workspace) not in message.inner_text()

    page.locator('#images button[aria-label="Clear"]').first.click()
    upload_and_run(page, [SET5 / 'head.png'])
    page.locator('#status').get_by_text('Upscaled 1 image(s).').wait_for()
    result_link(page, 'head_x4.png').wait_for()
    assert server.process.poll() is None
    page.close()


def test_lam_tab_places_the_box_where_the_image_is_clicked_and_shows_the_di(server, browser, tmp_path):
    page = open_page(browser, server)
    page.get_by_role('tab', name='Attribution (LAM)').click()
    page.locator('#lam-upload input[type=file]').set_input_files(str(SET5 / 'head.png'))  # 70x70, x4
    shown = page.locator('#lam-view img')
    shown.wait_for()
    page.wait_for_function("document.querySelector('#lam-view img').naturalWidth === 70")
    # Where the image is drawn in its element (Gradio's object-fit: scale-down, centred): then click the input pixel
    # (column 50, row 20); the 16-pixel box is centred on its x4 output, at 202-16/2 and 82-16/2.
    box = shown.bounding_box()
    drawn = min(1.0, box['width'] / 70, box['height'] / 70) * 70
    left, top = box['x'] + (box['width'] - drawn) / 2, box['y'] + (box['height'] - drawn) / 2
    page.mouse.click(left + (50 + 0.5) * drawn / 70, top + (20 + 0.5) * drawn / 70)
    page.wait_for_function("document.querySelector('#lam-x input').value === '194'")
    assert page.locator('#lam-y input').input_value() == '74'
    page.locator('#explain').click()
    status = page.locator('#lam-status').get_by_text('for the box x=194, y=74, 16x16 of the output')
    status.wait_for()
    assert status.inner_text().startswith('DI ')
    page.locator('#lam-figure img').wait_for()
    page.wait_for_timeout(500)  # the figure drawn
    page.screenshot(path=str(tmp_path / 'web_lam.png'), full_page=True)
    if os.environ.get(LAM_SCREENSHOT_ENV):
        shutil.copyfile(tmp_path / 'web_lam.png', os.environ[LAM_SCREENSHOT_ENV])
    page.close()
