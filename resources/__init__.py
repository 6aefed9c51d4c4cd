"""Bundled resources of VQ Studio: the sample photo, icons and the desktop entry.

Installed as the ``vq_resources`` package so that the app, the CLI and a frozen bundle find
them in the same way, through :func:`quantize.resources.sample_image_path`.
"""
