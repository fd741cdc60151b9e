"""``hat-sr serve``: a local web page that upscales images with HAT checkpoints, as ``hat-sr upscale`` does.

The page is a Gradio app (the ``web`` extra): Gradio's queue runs one request at a time and shows the others their
place in line, ``gr.Progress`` shows the tiles, and its upload, slider and file components give the comparison and
the downloads. Each file goes through :func:`hat_arch.api.upscale_file`, the function ``hat-sr upscale`` calls, so the
page's results equal the command's pixel for pixel; the LAM tab runs :func:`hat_arch.attribution.lam_file`, as
``hat-sr lam`` does.

Modules: :mod:`.catalogue` (the checkpoints offered and the loaded model), :mod:`.workspace` (the temporary folder that
holds uploads and results), :mod:`.app` (the page and its request handlers).
"""
