"""The page: pick images and a model, upscale them one request at a time, compare input and result, download."""
from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from hat_arch.api import upscale_file
from hat_arch.checkpoint import PRECISIONS, ModelInfo
from hat_arch.errors import first_line
from hat_arch.image_io import IMAGE_EXTENSIONS, for_format, output_extension, read_image, write_image
from hat_arch.inference import check_tile_size
from hat_arch.web.catalogue import ModelCache, label
from hat_arch.web.workspace import Workspace, unique_path, zip_files

TILE_CHOICES = ['auto', '0', '64', '128', '256', '512', '1024']
# Inputs a browser shows as they are; others (TIFF, PPM) are shown through a PNG copy.
BROWSER_FORMATS = ('.png', '.jpg', '.jpeg', '.webp', '.bmp')
TILE_PAD = 32  # as hat-sr upscale's default
# Zoomed in, the slider shows pixels as squares (the browser would smooth them away).
PAGE_CSS = '#compare img { image-rendering: pixelated; }'
GRADIO_CONCURRENCY_ID = 'model'  # every run of a model shares one slot: one at a time per server (one device)


def theme() -> gr.themes.Base:
    """Gradio's default look with the system's fonts: no web fonts to fetch, so the page works offline."""
    return gr.themes.Default(font=['ui-sans-serif', 'system-ui', 'sans-serif'], font_mono=['ui-monospace', 'monospace'])


@dataclass
class Result:
    name: str
    preview: Path  # the input as a browser shows it
    output: Path


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
    ``--max-pixels``; ``log`` gets a line when each request's run starts and when it ends (the server's log)."""
    by_label = {label(info): info for info in checkpoints}
    upscale = _upscale_handler(by_label, models, workspace, max_pixels, log or (lambda line: None))
    with gr.Blocks(title='HAT super-resolution', analytics_enabled=False,
                   delete_cache=(600, int(workspace.keep_seconds))) as app:
        gr.Markdown('## HAT super-resolution\nUpscale images with a HAT checkpoint on this machine. Results keep '
                    'the format, bit depth, gray or colour and transparency of the input, as `hat-sr upscale`.')
        with gr.Row():
            with gr.Column(scale=1):
                files = gr.File(label='Images', file_count='multiple', type='filepath',
                                file_types=list(IMAGE_EXTENSIONS), elem_id='images')
                model = gr.Dropdown(choices=list(by_label), value=next(iter(by_label)), label='Model')
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
                pick = gr.Dropdown(choices=[], label='Compare', interactive=True)
                downloads = gr.File(label='Results', file_count='multiple', interactive=False, elem_id='results')
        results = gr.State([])
        run.click(upscale, [files, model, tile, precision, ensemble], [status, compare, pick, downloads, results],
                  api_name='upscale', concurrency_limit=1, concurrency_id=GRADIO_CONCURRENCY_ID)
        pick.input(_show, [pick, results], compare, api_name=False)
    return app


def _show(name: str, results: list[Result]) -> tuple[str, str] | None:
    return next(((str(r.preview), str(r.output)) for r in results if r.name == name), None)


def _upscale_handler(by_label: dict[str, ModelInfo], models: ModelCache, workspace: Workspace,
                     max_pixels: int | None, log: Callable[[str], None]) -> Callable[..., tuple[Any, ...]]:
    runs = itertools.count(1)

    def upscale(files: list[str] | None, model_label: str, tile: str, precision: str, ensemble: bool,
                progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        run = next(runs)
        log(f'run {run} started: {len(files or [])} image(s)')
        start = time.perf_counter()
        try:
            return run_request(files, model_label, tile, precision, ensemble, progress)
        finally:
            log(f'run {run} ended after {time.perf_counter() - start:.2f} s')

    def run_request(files: list[str] | None, model_label: str, tile: str, precision: str, ensemble: bool,
                    progress: gr.Progress) -> tuple[Any, ...]:
        if not files:
            raise gr.Error('Choose one or more images first.')
        checkpoint = by_label.get(model_label)
        if checkpoint is None or tile not in TILE_CHOICES or precision not in checkpoint.precisions:
            raise gr.Error('Unknown model, tile size or precision; reload the page.')
        progress(0, desc=f'loading {checkpoint.path.name}')
        tile_size = 'auto' if tile == 'auto' else int(tile)
        try:
            model = models.get(checkpoint, precision)
            check_tile_size(tile_size, checkpoint.window_size)
        except Exception as error:  # a checkpoint that cannot run here (precision, device): say so on the page
            raise gr.Error(f'{checkpoint.path.name}: {first_line(error)}') from None
        job = workspace.new_job()
        hide_folder = lambda text: text.replace(f'{job / "inputs"}{os.sep}', '')  # noqa: E731  no server paths shown
        results, failures = [], []
        for index, upload in enumerate(files):
            name = Path(upload).name
            progress(index / len(files), desc=f'{name} ({index + 1}/{len(files)})')
            try:
                source = workspace.accept_upload(upload, job)
                target = unique_path(job / f'{source.stem}_x{checkpoint.scale}.{output_extension(source)}')
                upscale_file(model, source, target, tile=tile_size, tile_pad=TILE_PAD, ensemble=bool(ensemble),
                             max_pixels=max_pixels, warn=lambda note: gr.Warning(hide_folder(note)),
                             progress=TileProgress(progress, name, index, len(files)))
                results.append(Result(target.name, _preview(source), target))
            except Exception as error:  # one bad file: say which, go on with the others
                failures.append(f'{name}: {hide_folder(first_line(error))}')
        return _page_update(results, failures, job)

    return upscale


def _preview(source: Path) -> Path:
    if source.suffix.lower() in BROWSER_FORMATS:
        return source
    preview = source.with_name(f'{source.name}.preview.png')  # the slider's input side, for TIFF, BMP, GIF inputs
    write_image(preview, for_format(read_image(source), preview))
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
