"""Views of VQ Studio: compare, convergence, palette, soft maps, colour space, metrics."""

import app._compat  # noqa: F401, E402  (PySide6 6.12 emit refcount bug)
