"""The page in headless Chromium (Debian's, driven by Playwright): results equal hat-sr upscale's and carry its names,
bad files get a message and the server goes on; long model names are readable; one progress bar per run; a closed
tab stops its run; nothing is fetched from outside the server; a click on the LAM tab's scaled-up image places the
box it explains, drawn where the click was, at two image sizes."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest

from hat_arch.web.aim import BOX_COLOUR, aim_factor
from tests.web.conftest import SET5, start_server, upscale_with_cli
from tests.web.test_load import RUN_LINE

pytest.importorskip('gradio', reason="hat-sr serve needs the web extra: pip install '.[web]'")
sync_api = pytest.importorskip('playwright.sync_api', reason="the page's tests drive Chromium with playwright")
CHROMIUM = shutil.which('chromium')
TIMEOUT_MS = 90_000
# Set to a path (docs/web_app.png, docs/web_lam.png) to keep the screenshot of the page after a run, of its LAM tab.
SCREENSHOT_ENV = 'HAT_WEB_SCREENSHOT'
LAM_SCREENSHOT_ENV = 'HAT_WEB_LAM_SCREENSHOT'

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")]


# A released checkpoint's name (the same tiny weights): the model menu must show its whole description.
LONG_NAME = 'HAT-L_SRx4_ImageNet-pretrain.pth'
# A tab closed mid-run: the next run starts within a tile or two (3-12 s each on this loaded shared machine).
NEXT_RUN_BOUND_SECONDS = 40


@pytest.fixture(scope='module')
def server(checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp('models')
    shutil.copyfile(checkpoint, folder / checkpoint.name)
    shutil.copyfile(checkpoint, folder / LONG_NAME)  # listed first: the page's default
    server = start_server(folder)
    yield server
    server.stop()


@pytest.fixture(scope='module')
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)  # the system's browser, none downloaded
        yield browser
        browser.close()


def open_page(browser, server, hosts: set[str] | None = None):
    """The page; ``hosts`` collects the host of every request it makes."""
    page = browser.new_page(viewport={'width': 1280, 'height': 900}, accept_downloads=True)
    page.set_default_timeout(TIMEOUT_MS)
    if hosts is not None:
        page.on('request', lambda request: hosts.add(urlsplit(request.url).netloc))
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

    for name in ('baby.png', 'bird16.png'):  # the names hat-sr upscale gives
        downloaded = cv2.imread(str(download(page, name, tmp_path)), cv2.IMREAD_UNCHANGED)
        expected = cv2.imread(str(tmp_path / 'cli' / name), cv2.IMREAD_UNCHANGED)
        assert downloaded.dtype == expected.dtype and downloaded.shape == expected.shape
        np.testing.assert_array_equal(downloaded, expected)
    assert cv2.imread(str(tmp_path / 'bird16.png'), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    archive = download(page, 'results.zip', tmp_path)
    shutil.unpack_archive(archive, tmp_path / 'unzipped')
    assert sorted(p.name for p in (tmp_path / 'unzipped').iterdir()) == ['baby.png', 'bird16.png']
    page.close()


def test_a_file_that_is_not_an_image_gets_a_message_and_the_next_upload_works(server, browser, tmp_path):
    fake = tmp_path / 'notes.png'
    fake.write_text('these are notes, not pixels')
    page = open_page(browser, server)
    upload_and_run(page, [fake])
    message = page.locator('#status').get_by_text('cannot read notes.png: not an image')
    message.wait_for()
    assert message.inner_text().count('notes.png') == 1 and str(server.workspace) not in message.inner_text()

    page.locator('#images button[aria-label="Clear"]').first.click()
    upload_and_run(page, [SET5 / 'head.png'])
    page.locator('#status').get_by_text('Upscaled 1 image(s).').wait_for()
    result_link(page, 'head.png').wait_for()
    assert server.process.poll() is None
    page.close()


def test_the_page_fetches_nothing_from_outside_and_shows_whole_model_names(server, browser):
    hosts: set[str] = set()
    page = open_page(browser, server, hosts)
    page.wait_for_timeout(1000)  # fonts, icons, the queue's connection
    assert hosts == {urlsplit(server.url).netloc}  # no CDN, font service or analytics: works offline
    # The chosen model's whole description fits in the menu, left of its arrow.
    shown = page.evaluate("""() => {
        const input = document.querySelector('#model input'), style = getComputedStyle(input);
        const context = document.createElement('canvas').getContext('2d');
        context.font = style.font;
        const box = input.getBoundingClientRect();
        return {value: input.value, textRight: box.left + parseFloat(style.paddingLeft) +
                    context.measureText(input.value).width,
                arrowLeft: document.querySelector('#model .icon-wrap').getBoundingClientRect().left};
    }""")
    assert shown['value'].startswith(LONG_NAME) and shown['value'].endswith('0.37 M parameters')
    assert shown['textRight'] < shown['arrowLeft']
    page.locator('#model input').click()
    options = page.get_by_role('option')
    options.first.wait_for()
    assert options.count() == 2
    assert page.evaluate("""() => [...document.querySelectorAll('[role=option]')].every(
        item => item.scrollWidth <= item.clientWidth && item.textContent.trim().endsWith('M parameters'))""")
    page.close()


def run_events(server, after: int = 0) -> list[str]:
    """'started' / 'ended' for each run in the server's log after its first ``after`` lines."""
    return [match.group(2) for match in map(RUN_LINE.match, server.log[after:]) if match]


def test_one_progress_bar_and_a_closed_tab_stops_its_run(server, browser, tmp_path):
    large = tmp_path / 'large.png'  # 512x512 in 64-pixel tiles: minutes of work
    cv2.imwrite(str(large), np.tile(cv2.imread(str(SET5 / 'baby.png')), (4, 4, 1)))
    page = open_page(browser, server)
    page.locator('#images input[type=file]').set_input_files(str(large))
    page.locator('#images td.filename[aria-label="large.png"]').wait_for()
    page.get_by_label('Tile size (input pixels)').click()
    page.get_by_role('option', name='64', exact=True).click()
    mark = len(server.log)
    page.click('#run')
    while run_events(server, mark) != ['started']:
        time.sleep(0.1)
    page.wait_for_timeout(3000)  # its first tiles reported
    # One bar, on the slider: not also on the Compare menu and the results list.
    showing = page.evaluate("""() => [...document.querySelectorAll('[data-testid="status-tracker"]')]
        .filter(tracker => !tracker.classList.contains('hide') && tracker.getBoundingClientRect().height > 0)
        .map(tracker => tracker.closest('[id]').id)""")
    assert showing == ['compare']

    page.close()  # the tab goes, its run with it
    closed = time.monotonic()
    second = open_page(browser, server)
    upload_and_run(second, [SET5 / 'head.png'])
    deadline = closed + NEXT_RUN_BOUND_SECONDS
    while time.monotonic() < deadline and len(run_events(server, mark)) < 3:
        time.sleep(0.1)
    waited = time.monotonic() - closed
    print(f'the next run started {waited:.1f} s after the tab closed (loaded shared machine)')
    assert run_events(server, mark)[:3] == ['started', 'ended', 'started'], server.log[mark:]
    assert any(line.rstrip().endswith('cancelled, its client disconnected') for line in server.log[mark:])
    second.locator('#status').get_by_text('Upscaled 1 image(s).').wait_for()
    second.close()


def click_input_pixel(page, column: int, row: int, width: int, height: int) -> None:
    """Click the centre of input pixel (column, row) on the aiming view, drawn as Gradio draws it: its natural size
    (the input times :func:`aim_factor`) or less, centred in its element."""
    factor = aim_factor(width, height)
    shown = page.locator('#lam-view img')
    page.wait_for_function(f"document.querySelector('#lam-view img')?.naturalWidth === {width * factor}")
    box = shown.bounding_box()
    ratio = min(box['width'] / (width * factor), box['height'] / (height * factor), 1.0)
    left = box['x'] + (box['width'] - width * factor * ratio) / 2
    top = box['y'] + (box['height'] - height * factor * ratio) / 2
    page.mouse.click(left + (column + 0.5) * factor * ratio, top + (row + 0.5) * factor * ratio)


def drawn_box(page, width: int, height: int) -> tuple[float, float, float, float]:
    """Where the red outline is on the aiming view, in input pixels: left, top, right, bottom edges."""
    shown = page.locator('#lam-view img')
    box = shown.bounding_box()
    factor = aim_factor(width, height)
    ratio = min(box['width'] / (width * factor), box['height'] / (height * factor), 1.0)
    pixels = cv2.imdecode(np.frombuffer(shown.screenshot(), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]  # RGB
    red = np.argwhere((np.abs(pixels.astype(int) - BOX_COLOUR) < 60).all(axis=2))
    (top, left), (bottom, right) = red.min(axis=0), red.max(axis=0)
    x0 = (box['width'] - width * factor * ratio) / 2
    y0 = (box['height'] - height * factor * ratio) / 2
    scale = factor * ratio  # screen pixels per input pixel
    return (left - x0) / scale, (top - y0) / scale, (right + 1 - x0) / scale, (bottom + 1 - y0) / scale


@pytest.mark.parametrize(('size', 'click', 'expected'), [
    ((70, 70), (50, 20), (194, 74)),  # Set5 head, shown 7x: 490 px
    ((128, 48), (100, 46), (394, 176)),  # a strip, shown 4x: 512x192; the box kept inside the 192-pixel-high output
])
def test_lam_aim_view_is_scaled_up_and_a_click_places_and_draws_the_box(server, browser, tmp_path, size, click,
                                                                         expected):
    width, height = size
    image = tmp_path / f'input{width}x{height}.png'
    cv2.imwrite(str(image), cv2.imread(str(SET5 / 'baby.png'))[:height, :width])
    page = open_page(browser, server)
    page.get_by_role('tab', name='Attribution (LAM)').click()
    page.locator('#lam-upload input[type=file]').set_input_files(str(image))
    click_input_pixel(page, *click, width, height)
    page.wait_for_function(f"document.querySelector('#lam-x input').value === '{expected[0]}'")
    assert page.locator('#lam-y input').input_value() == str(expected[1])
    shown = page.locator('#lam-view img').bounding_box()
    assert max(shown['width'], shown['height']) >= 400  # large enough to aim
    page.wait_for_timeout(500)  # the redrawn view
    left, top, right, bottom = drawn_box(page, width, height)
    # The 16-pixel output box covers 4 input pixels from (x/4, y/4); the outline is 2 px wide on the view.
    tolerance = 2 / aim_factor(width, height) + 0.3
    assert abs(left - expected[0] / 4) < tolerance and abs(right - (expected[0] + 16) / 4) < tolerance
    assert abs(top - expected[1] / 4) < tolerance and abs(bottom - (expected[1] + 16) / 4) < tolerance
    page.close()


def test_lam_tab_explains_the_clicked_box_and_shows_its_figure(server, browser, tmp_path):
    page = open_page(browser, server)
    page.get_by_role('tab', name='Attribution (LAM)').click()
    page.locator('#lam-upload input[type=file]').set_input_files(str(SET5 / 'head.png'))  # 70x70, x4
    click_input_pixel(page, 50, 20, 70, 70)
    page.wait_for_function("document.querySelector('#lam-x input').value === '194'")
    steps = page.locator('#lam-steps input[type=number]')
    steps.fill('8')  # a short path: seconds, not minutes, on a loaded machine
    steps.press('Enter')
    page.locator('#explain').click()
    status = page.locator('#lam-status').get_by_text('for the box x=194, y=74, 16x16 of the output')
    status.wait_for(timeout=3 * TIMEOUT_MS)
    assert status.inner_text().startswith('DI ')
    page.locator('#lam-figure img').wait_for()
    page.wait_for_timeout(500)  # the figure drawn
    # Nothing over the figure's panel titles (at the top left of each of its four panels): the topmost element there
    # is the figure itself.
    page.locator('#lam-figure img').scroll_into_view_if_needed()
    assert page.evaluate("""() => {
        const figure = document.querySelector('#lam-figure img'), box = figure.getBoundingClientRect();
        return [0.01, 0.05, 0.26, 0.3, 0.51, 0.55, 0.76, 0.8].every(
            at => document.elementFromPoint(box.left + at * box.width, box.top + 4) === figure);
    }""")
    page.screenshot(path=str(tmp_path / 'web_lam.png'), full_page=True)
    if os.environ.get(LAM_SCREENSHOT_ENV):
        shutil.copyfile(tmp_path / 'web_lam.png', os.environ[LAM_SCREENSHOT_ENV])
    page.close()
