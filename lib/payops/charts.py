"""Show a matplotlib Figure in a notebook as a PNG, whatever the kernel's matplotlib backend.

Report code builds :class:`matplotlib.figure.Figure` objects without pyplot's global state; a bare
Figure has no inline display hook, so notebooks pass it through :func:`show` (the PNG is then
embedded in the executed notebook and its HTML rendering).
"""

from __future__ import annotations

import io

from IPython.display import Image
from matplotlib.figure import Figure


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def show(fig: Figure | None, dpi: int = 110) -> Image | str:
    """The figure as an IPython PNG image; a short note when there is nothing to draw."""
    if fig is None:
        return "(no chart: nothing to draw)"
    return Image(data=png_bytes(fig, dpi), format="png")
