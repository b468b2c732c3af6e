"""The house style: one seaborn theme, a colour-blind palette, two-column paper sizes."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

from landscape.errors import LandscapeError

matplotlib.use("Agg")  # figures are files; never open a window

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

COLUMN_WIDTH = 3.25  # inches: one column of a two-column paper (ICML/NeurIPS-style)
FULL_WIDTH = 6.75  # inches: both columns
PALETTE = "colorblind"


def apply_style() -> None:
    """Set the theme every figure of the project uses."""
    sns.set_theme(
        context="paper",
        style="whitegrid",
        palette=PALETTE,
        font_scale=0.9,
        rc={
            "figure.dpi": 150,
            "savefig.dpi": 300,
            "savefig.bbox": "tight",
            "axes.titlesize": 9,
            "legend.fontsize": 7,
            "legend.frameon": False,
            "lines.linewidth": 1.4,
            "pdf.fonttype": 42,  # editable text in the PDF
        },
    )


def new_figure(ncols: int = 1, width: float = COLUMN_WIDTH, height: float = 2.2, **kw):
    """A figure with ``ncols`` axes side by side, in the house style."""
    apply_style()
    fig, axes = plt.subplots(1, ncols, figsize=(width, height), squeeze=False, **kw)
    return fig, list(axes[0])


def save_figure(fig: plt.Figure, stem: str | os.PathLike) -> list[Path]:
    """Save ``fig`` as ``<stem>.pdf`` and ``<stem>.png``, close it, return both paths.

    The stem is taken as written (``figs/lr0.1`` gives ``figs/lr0.1.pdf``); a trailing
    ``.pdf`` or ``.png`` is dropped.
    """
    text = str(stem) if isinstance(stem, (str, os.PathLike)) else ""
    folder = text.endswith(("/", os.sep)) or Path(text).is_dir()
    if not text or folder or Path(text).name in ("", ".", ".."):
        plt.close(fig)
        raise LandscapeError(
            f"a figure needs a file stem such as figs/barrier (it writes .pdf and .png), "
            f"got {stem!r}"
        )
    stem = Path(text)
    if stem.suffix in (".pdf", ".png"):
        stem = stem.with_suffix("")
    paths = [stem.with_name(stem.name + ".pdf"), stem.with_name(stem.name + ".png")]
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
        for path in paths:
            tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
            # no creation date: the same figure gives the same bytes, so galleries diff cleanly
            meta = {"CreationDate": None} if path.suffix == ".pdf" else {"Software": None}
            try:
                fig.savefig(tmp, metadata=meta)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
    except OSError as err:
        raise LandscapeError(
            f"cannot write the figure {stem}.pdf/.png: {err.strerror or err}; choose another --out"
        ) from None
    finally:
        plt.close(fig)
    return paths
