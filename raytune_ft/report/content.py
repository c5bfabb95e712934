"""The page's content, as the template `templates/report.html.j2` takes it: sections of tables, figures and
sentences. Everything here is plain text; the template escapes it."""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Row:
    cells: list[str]  # plain text: the template escapes it
    color: str | None = None  # a swatch of the strategy's colour (as in the figures) before the first cell
    win: bool = False  # shaded: the leading row


@dataclass
class Table:
    header: list[str]
    rows: list[Row]
    numeric: set[int] = field(default_factory=set)  # right-aligned columns (the first is always the row's name)
    wrap: set[int] = field(default_factory=set)  # monospace columns, wrapped anywhere (error texts)


@dataclass
class Part:
    """A titled piece of a section (one train size's table or figure), with sentences under it."""
    title: str
    caption: str = ""
    table: Table | None = None
    image: str | None = None
    lines: list[str] = field(default_factory=list)


@dataclass
class Section:
    anchor: str
    title: str
    nav: str  # its link at the top of the page
    caption: str  # what it shows; with note, why it has no figure
    table: Table | None = None
    image: str | None = None  # the figure, as a data: URI
    note: bool = False
    parts: list[Part] = field(default_factory=list)


def save_png(fig, path: Path) -> bytes:
    """Write the figure to path as PNG; return the PNG's bytes (the page embeds them)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def embedded(fig, path: Path) -> str:
    """The figure saved as `path` (PNG) and as a data: URI for the page."""
    return "data:image/png;base64," + base64.b64encode(save_png(fig, path)).decode("ascii")


def figure_section(anchor: str, title: str, nav: str, drawn: tuple, out_dir: Path) -> Section:
    """A figure saved as out_dir/<anchor>.png and embedded; or, when it could not be drawn, the note why."""
    fig, caption = drawn
    png = out_dir / f"{anchor}.png"
    if fig is None:
        png.unlink(missing_ok=True)  # no stale figure from an earlier report of this run
        return Section(anchor, title, nav, caption, note=True)
    return Section(anchor, title, nav, caption, image=embedded(fig, png))
