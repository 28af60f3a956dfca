"""The Hopfield results page: the figures redrawn from the data folder's tables and copied beside the page."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from amtheory.reports.hopfield.data import HopfieldData, basin_targets, capacity_patterns


def make_figures(data: HopfieldData, out_dir: Path, max_kb: int = 300) -> list[Path]:
    """Draw the capacity, dense-scaling and basin figures (``amtheory.figures``) from the per-pattern tables rebuilt
    from ``data`` into a scratch folder and copy the PNGs to ``out_dir``, shrinking any PNG over ``max_kb`` KB (the
    figure code itself saves at 200 dpi)."""
    from PIL import Image

    from amtheory.figures.basins import plot_basins
    from amtheory.figures.capacity import plot_capacity
    from amtheory.figures.dense_scaling import plot_dense_scaling

    tables = {
        "capacity": (capacity_patterns, plot_capacity),
        "dense_scaling": (lambda cells: cells, plot_dense_scaling),
        "basins_vs_load": (basin_targets, plot_basins),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (table, fn) in tables.items():
            if name not in data.cells:
                continue
            for p in fn(table(data.cells[name]), tmp):
                if p.suffix != ".png":
                    continue
                dst = out_dir / p.name
                shutil.copyfile(p, dst)
                scale = 1.0
                while dst.stat().st_size > max_kb * 1024 and scale > 0.2:
                    # Re-save from the original at a smaller size: palette PNGs of line plots compress well.
                    scale *= 0.8
                    with Image.open(p) as im:
                        w, h = im.size
                        small = im.convert("RGB").resize((int(w * scale), int(h * scale)), Image.LANCZOS)
                        small.quantize(colors=128).save(dst, optimize=True)
                written.append(dst)
    return written
