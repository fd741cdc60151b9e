"""The page: pick images and a model, upscale them one request at a time, compare input and result, download; a second
tab shows the local attribution map (LAM) of a box the user clicks."""
from __future__ import annotations

import itertools
import math
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import gradio as gr
import numpy as np

from hat_arch.api import upscale_file
from hat_arch.attribution import STEPS, check_lam_image, lam_file
from hat_arch.batch import each_file
from hat_arch.checkpoint import PRECISIONS, ModelInfo
from hat_arch.image_io import IMAGE_EXTENSIONS, for_format, output_name, read_image, write_image
from hat_arch.inference import check_tile_size
from hat_arch.web.aim import AIM_SIZE, aim_factor, aim_view, box_at, clicked_pixel, rgb8
from hat_arch.web.cancel import ClientGone, check_client, while_connected
from hat_arch.web.catalogue import ModelCache, model_menu
from hat_arch.web.messages import page_errors, public_message, without_paths
from hat_arch.web.workspace import Workspace, unique_path, zip_files

TILE_CHOICES = ['auto', '0', '64', '128', '256', '512', '1024']
# Inputs a browser shows as they are; others (TIFF, PPM) are shown through a PNG copy.
BROWSER_FORMATS = ('.png', '.jpg', '.jpeg', '.webp', '.bmp')
TILE_PAD = 32  # as hat-sr upscale's default
# Zoomed in, the slider and the LAM aiming view show pixels as squares (the browser would smooth them away). The
# model menu spans the page and keeps its text clear of the arrow; menu entries wrap, never cut.
PAGE_CSS = ('#compare img, #lam-view img { image-rendering: pixelated; }\n'
            '#model input { padding-right: 2.5em; text-overflow: ellipsis; }\n'
            '[role=listbox] [role=option] { white-space: normal; }\n')
GRADIO_CONCURRENCY_ID = 'model'  # every run of a model shares one slot: one at a time per server (one device)
LAM_BOX = 16  # output pixels, as the LAM paper's boxes
AIM_HEIGHT = AIM_SIZE + 16  # the aiming view's element: the scaled-up input at its own size, and a margin


def theme() -> gr.themes.Base:
    """Gradio's default look with the system's fonts: no web fonts to fetch, so the page works offline."""
    return gr.themes.Default(font=['ui-sans-serif', 'system-ui', 'sans-serif'], font_mono=['ui-monospace', 'monospace'])


@dataclass
class Result:
    name: str
    preview: Path  # the input as a browser shows it
    output: Path


class RunLog:
    """The server's model runs, upscaling and LAM alike, one at a time, with a line in its log when each starts and
    when it ends (and why, when its client went away).

    Gradio's queue runs one request of the model at a time, but frees the slot of a cancelled request while its
    thread still finishes the tile at hand: the lock keeps the next run (and the model it may load) from starting
    beside it."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log, self.numbers, self.lock = log, itertools.count(1), threading.Lock()

    @contextmanager
    def run(self, what: str) -> Iterator[None]:
        with self.lock:
            number, start = next(self.numbers), time.perf_counter()
            self.log(f'run {number} started: {what}')
            note = ''
            try:
                check_client()  # it may have gone while this run waited for the lock
                yield
            except ClientGone:
                note = ': cancelled, its client disconnected'
                raise gr.Error('The request was cancelled.', print_exception=False) from None
            finally:
                self.log(f'run {number} ended after {time.perf_counter() - start:.2f} s{note}')


class TileProgress:
    """An image's :data:`hat_arch.progress.Progress` (network calls done, total) as Gradio progress of one image
    among several."""

    def __init__(self, report: gr.Progress, name: str, index: int, count: int) -> None:
        self.report, self.name, self.index, self.count = report, name, index, count

    def __call__(self, done: int, total: int) -> None:
        fraction = (self.index + done / max(total, 1)) / self.count
        self.report(fraction, desc=f'{self.name} ({self.index + 1}/{self.count}): tile {done}/{total}')


def build_app(checkpoints: list[ModelInfo], models: ModelCache, workspace: Workspace,
              max_pixels: int | None = None, log: Callable[[str], None] | None = None) -> gr.Blocks:
    """The page; ``max_pixels`` lifts the check of each image against the memory there is, as ``hat-sr upscale``'s
    ``--max-pixels``; ``log`` gets a line when each request's run starts and when it ends (the server's log), and
    the whole message of any failure (the page shows it without server paths)."""
    log = log or (lambda line: None)
    by_label = model_menu(checkpoints)
    runs, errors = RunLog(log), page_errors(log)
    upscale = errors(_upscale_handler(by_label, models, workspace, max_pixels, runs))
    explain = errors(_lam_handler(by_label, models, workspace, max_pixels, runs))
    preview, place, redraw = (errors(handler) for handler in _aim_handlers(by_label, workspace, max_pixels))
    with gr.Blocks(title='HAT super-resolution', analytics_enabled=False,
                   delete_cache=(600, int(workspace.keep_seconds))) as app:
        gr.Markdown('## HAT super-resolution\nUpscale images with a HAT checkpoint on this machine. Results keep '
                    'the format, bit depth, gray or colour and transparency of the input, as `hat-sr upscale`.')
        model = gr.Dropdown(choices=list(by_label), value=next(iter(by_label)), label='Model', elem_id='model')
        with gr.Tab('Upscale'):
            with gr.Row():
                with gr.Column(scale=1):
                    files = gr.File(label='Images', file_count='multiple', type='filepath',
                                    file_types=list(IMAGE_EXTENSIONS), elem_id='images')
                    tile = gr.Dropdown(choices=TILE_CHOICES, value='auto', label='Tile size (input pixels)',
                                       info='auto: the largest that fits in memory; 0: the whole image')
                    precision = gr.Radio(choices=list(PRECISIONS), value='fp32', label='Precision')
                    ensemble = gr.Checkbox(label='Self-ensemble (8 flips and transposes, x8 time)')
                    run = gr.Button('Upscale', variant='primary', elem_id='run')
                with gr.Column(scale=2):
                    status = gr.Markdown(elem_id='status')
                    compare = gr.ImageSlider(label='Input | result: drag the slider; scroll to zoom, drag to pan',
                                             type='filepath', format='png', buttons=['fullscreen', 'download'],
                                             elem_id='compare')
                    pick = gr.Dropdown(choices=[], label='Compare', interactive=True, elem_id='pick')
                    downloads = gr.File(label='Results', file_count='multiple', interactive=False, elem_id='results')
        with gr.Tab('Attribution (LAM)', elem_id='lam-tab'):
            gr.Markdown('Which input pixels the network used for one box of its output, and the diffusion index '
                        '(DI, 0-100: higher means more pixels used); Gu & Dong, CVPR 2021, as `hat-sr lam`.')
            with gr.Row():
                with gr.Column(scale=1):
                    lam_upload = gr.File(label='Image (low resolution)', file_count='single', type='filepath',
                                         file_types=list(IMAGE_EXTENSIONS), elem_id='lam-upload')
                    with gr.Row():
                        box_x = gr.Number(label='Box x', value=0, precision=0, minimum=0, elem_id='lam-x')
                        box_y = gr.Number(label='Box y', value=0, precision=0, minimum=0, elem_id='lam-y')
                        box_side = gr.Number(label='Box side', value=LAM_BOX, precision=0, minimum=1,
                                             info='output pixels', elem_id='lam-side')
                    steps = gr.Slider(1, 200, value=STEPS, step=1, label='Path steps',
                                      info='one forward and backward pass each', elem_id='lam-steps')
                    explain_button = gr.Button('Explain', variant='primary', elem_id='explain')
                with gr.Column(scale=2):
                    gr.Markdown('Click the image where the box should be; the red square is the box explained.')
                    lam_view = gr.Image(show_label=False, type='numpy', interactive=False, format='png',
                                        height=AIM_HEIGHT, buttons=[], elem_id='lam-view')
            lam_status = gr.Markdown(elem_id='lam-status')
            lam_figure = gr.Image(show_label=False, type='filepath', interactive=False, format='png',
                                  buttons=['download'], elem_id='lam-figure')
            gr.Markdown('Panels: the input with the box, the LAM, the area used, the output with the box.')
        results = gr.State([])
        lam_image = gr.State(None)  # the uploaded image (8-bit RGB), read here: no client-sent path is opened
        run.click(upscale, [files, model, tile, precision, ensemble], [status, compare, pick, downloads, results],
                  api_name='upscale', concurrency_limit=1, concurrency_id=GRADIO_CONCURRENCY_ID,
                  show_progress_on=compare)
        pick.input(_show, [pick, results], compare, api_name=False)
        box = [model, box_x, box_y, box_side, lam_image]
        lam_upload.change(preview, [lam_upload, *box], [lam_view, lam_image, box_x, box_y], api_name=False,
                          show_progress_on=lam_view)
        lam_view.select(place, [model, box_side, lam_image], [lam_view, box_x, box_y], api_name=False,
                        show_progress='hidden')
        for changed in (box_x.input, box_y.input, box_side.input, model.change):
            changed(redraw, box, lam_view, api_name=False, show_progress='hidden')
        explain_button.click(explain, [lam_upload, model, box_x, box_y, box_side, steps], [lam_status, lam_figure],
                             api_name='lam', concurrency_limit=1, concurrency_id=GRADIO_CONCURRENCY_ID,
                             show_progress_on=lam_figure)
    return app


def _show(name: str, results: list[Result]) -> tuple[str, str] | None:
    return next(((str(r.preview), str(r.output)) for r in results if r.name == name), None)


def _upscale_handler(by_label: dict[str, ModelInfo], models: ModelCache, workspace: Workspace,
                     max_pixels: int | None, runs: RunLog) -> Callable[..., tuple[Any, ...]]:
    def upscale(files: list[str] | None, model_label: str, tile: str, precision: str, ensemble: bool,
                progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        with runs.run(f'{len(files or [])} image(s)'):
            return run_request(files, model_label, tile, precision, ensemble, progress)

    def run_request(files: list[str] | None, model_label: str, tile: str, precision: str, ensemble: bool,
                    progress: gr.Progress) -> tuple[Any, ...]:
        if not files:
            raise gr.Error('Choose one or more images first.')
        checkpoint = by_label.get(model_label)
        if checkpoint is None or tile not in TILE_CHOICES or precision not in PRECISIONS:
            raise gr.Error('Unknown model, tile size or precision; reload the page.')
        progress(0, desc=f'loading {checkpoint.path.name}')
        tile_size = 'auto' if tile == 'auto' else int(tile)
        try:
            model = models.get(checkpoint, precision)
            check_tile_size(tile_size, checkpoint.window_size)
        except Exception as error:  # a checkpoint that cannot run here (precision, device): say so on the page
            raise gr.Error(f'{checkpoint.path.name}: {public_message(error)}') from None
        job = workspace.new_job()

        def upscale_one(numbered: tuple[int, str]) -> Result:
            index, upload = numbered
            name = Path(upload).name
            progress(index / len(files), desc=f'{name} ({index + 1}/{len(files)})')
            source = workspace.accept_upload(upload, job)
            target = unique_path(job / output_name(source))  # as hat-sr upscale names it
            upscale_file(model, source, target, tile=tile_size, tile_pad=TILE_PAD, ensemble=bool(ensemble),
                         max_pixels=max_pixels, warn=lambda note: gr.Warning(without_paths(note)),
                         progress=while_connected(TileProgress(progress, name, index, len(files))))
            return Result(target.name, _preview(source), target)

        try:
            outcomes = list(each_file(list(enumerate(files)), upscale_one, name=lambda numbered: Path(numbered[1]).name,
                                      explain=public_message, stop_on=(ClientGone,)))
        except ClientGone:
            workspace.discard(job)
            raise
        return _page_update([outcome.result for outcome in outcomes if not outcome.failed],
                            [outcome.error for outcome in outcomes if outcome.failed], job)

    return upscale


def _lam_handler(by_label: dict[str, ModelInfo], models: ModelCache, workspace: Workspace,
                 max_pixels: int | None, runs: RunLog) -> Callable[..., tuple[str, str]]:
    def explain(upload: str | None, model_label: str, x: float | None, y: float | None, side: float | None,
                steps: float, progress: gr.Progress = gr.Progress()) -> tuple[str, str]:
        if not upload:
            raise gr.Error('Choose an image first.')
        checkpoint = by_label.get(model_label)
        if checkpoint is None or None in (x, y, side):
            raise gr.Error('Unknown model, or the box is not filled in; reload the page.')
        box = (int(x), int(y), int(side), int(side))
        with runs.run(f'LAM of box {box}'):
            job = workspace.new_job()
            try:
                model = models.get(checkpoint, 'fp32')
                source = workspace.accept_upload(upload, job)
                result = lam_file(model, source, box, max_pixels=max_pixels, steps=int(steps),
                                  progress=while_connected(
                                      lambda done, total: progress(done / total, desc=f'step {done}/{total}')))
                figure = job / f'{source.stem}_lam.png'
                write_image(figure, result.figure(), durable=False)  # the server's temporary folder
            except ClientGone:
                workspace.discard(job)
                raise
        di = result.diffusion_index
        text = ('DI undefined: the attribution is zero everywhere (the box does not depend on the input)'
                if math.isnan(di) else f'**DI {di:.2f}**')
        return f'{text} for the box x={box[0]}, y={box[1]}, {box[2]}x{box[3]} of the output.', str(figure)

    return explain


def _aim_handlers(by_label: dict[str, ModelInfo], workspace: Workspace,
                  max_pixels: int | None) -> tuple[Callable[..., Any], ...]:
    """The LAM tab's aiming view: ``preview`` reads an upload (its size checked from its header first) and shows it
    with the box; ``place`` moves the box to a click (centred on the clicked pixel's output, kept inside it);
    ``redraw`` follows the box's numbers and the model's scale."""

    def chosen(model_label: str) -> ModelInfo:
        checkpoint = by_label.get(model_label)
        if checkpoint is None:
            raise gr.Error('Unknown model; reload the page.')
        return checkpoint

    def scale_of(model_label: str) -> int:
        return chosen(model_label).scale

    def view(image: np.ndarray, model_label: str, x: float | None, y: float | None, side: float | None) -> Any:
        return aim_view(image, scale_of(model_label), (int(x or 0), int(y or 0), int(side or LAM_BOX)))

    def preview(upload: str | None, model_label: str, x: float | None, y: float | None, side: float | None,
                _image: np.ndarray | None) -> tuple[Any, ...]:
        if not upload:
            return None, None, x, y
        job = workspace.new_job()
        try:
            source = workspace.accept_upload(upload, job)
            # From its header, before it is decoded: an image too large for LAM with this model is refused now
            check_lam_image(source, chosen(model_label), max_pixels)
            image = rgb8(read_image(source))
        finally:
            workspace.discard(job)  # the LAM reads the upload again, as sent
        height, width = image.shape[:2]
        scale, side = scale_of(model_label), int(side or LAM_BOX)
        x, y = (min(int(at or 0), max(extent * scale - side, 0)) for at, extent in ((x, width), (y, height)))
        return view(image, model_label, x, y, side), image, x, y

    def place(model_label: str, side: float | None, image: np.ndarray | None,
              event: gr.SelectData) -> tuple[Any, int, int]:
        if image is None or event.index is None:
            raise gr.Error('Choose an image first.')
        height, width = image.shape[:2]
        column, row = clicked_pixel(event.index, aim_factor(width, height))
        x, y = box_at(column, row, int(side or LAM_BOX), scale_of(model_label), width, height)
        return view(image, model_label, x, y, side), x, y

    def redraw(model_label: str, x: float | None, y: float | None, side: float | None,
               image: np.ndarray | None) -> Any:
        return gr.skip() if image is None else view(image, model_label, x, y, side)

    return preview, place, redraw


def _preview(source: Path) -> Path:
    if source.suffix.lower() in BROWSER_FORMATS:
        return source
    preview = source.with_name(f'{source.name}.preview.png')  # the slider's input side, for TIFF, PPM, GIF inputs
    write_image(preview, for_format(read_image(source), preview), durable=False)
    return preview


def _page_update(results: list[Result], failures: list[str], job: Path) -> tuple[Any, ...]:
    lines = [f'Upscaled {len(results)} image(s).' if results else 'Nothing was upscaled.']
    lines += [f'- **Not upscaled**: {failure}' for failure in failures]
    for failure in failures:
        gr.Warning(failure)
    downloads = [str(result.output) for result in results]
    if len(results) > 1:
        downloads.append(str(zip_files([result.output for result in results], job / 'results.zip')))
    first = _show(results[0].name, results) if results else None
    names = [result.name for result in results]
    return ('\n'.join(lines), first, gr.Dropdown(choices=names, value=names[0] if names else None),
            downloads or None, results)
