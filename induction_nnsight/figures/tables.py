"""How result objects show themselves: plain rows in, a short ``repr`` or an HTML table out.

Every result class of :mod:`~induction_nnsight.scores`, :mod:`~induction_nnsight.causal` and
:mod:`~induction_nnsight.dynamics` describes itself once, as a :class:`Summary` (what it is, its
shape, its best rows, a few key numbers), and inherits from :class:`Displayable` a one-line
``__repr__``, ``_repr_html_`` (Jupyter's rich display: an escaped HTML table), ``figures()`` (name
-> ``go.Figure``, drawn by the builders of this package from the result's numbers) and ``figure()``
(the main one, or one by name). The rows come ranked by the caller, so this module imports nothing
of the package.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, ClassVar

import plotly.graph_objects as go

from ..strict_json import DECIMALS

REPR_ROWS = 3
"""Rows named in a ``repr``."""
HTML_ROWS = 10
"""Rows of an HTML table."""


@dataclass
class Summary:
    """What a result shows of itself.

    Attributes:
        kind: The class name.
        model: The model's name or path (a path is shown by its last part); None when unknown.
        shape: What the result covers, e.g. ``"30 layers x 9 heads"``.
        columns: Column titles; the first names what a row is (``"head"``, ``"k"``, ``"step"``).
        rows: Best first: ``[label, value, ...]``; the ``repr`` names the label and first value of the
            first :data:`REPR_ROWS`, the HTML table shows the first ``max_rows``.
        numbers: Key numbers, ``(name, value)``, shown before the rows.
        rows_title: What the ``repr`` calls its rows (``"top"``, ``"strongest"``).
        brief: Rows the ``repr`` names instead of ``rows`` (None: the first of ``rows``).
        max_rows: Rows of the HTML table.
    """

    kind: str
    model: str | None
    shape: str
    columns: list[str]
    rows: list[list[Any]]
    numbers: list[tuple[str, Any]] = field(default_factory=list)
    rows_title: str = "top"
    brief: list[list[Any]] | None = None
    max_rows: int = HTML_ROWS


def plain(values: Any) -> Any:
    """A tensor or nested lists of numbers as nested lists of floats rounded to :data:`DECIMALS`
    (NaN stays NaN, None stays None), so a figure holds the numbers its results file holds.

    Example:
        >>> plain([[0.1234567, None], [float("nan"), 2]])
        [[0.123457, None], [nan, 2.0]]
    """
    if hasattr(values, "tolist"):
        values = values.tolist()
    if isinstance(values, (list, tuple)):
        return [plain(v) for v in values]
    return None if values is None else round(float(values), DECIMALS)


def short_name(name: str | None) -> str | None:
    """A model's name for display: a local path by its last part, anything else as given.

    Example:
        >>> short_name("/root/.cache/induction-nnsight/smollm2-135m"), short_name("gpt2")
        ('smollm2-135m', 'gpt2')
    """
    if not name:
        return None
    if name.startswith(("/", "./", "../", "~")):
        return PurePath(name.rstrip("/")).name or name
    return name


def titled(text: str, model: str | None) -> str:
    """A chart title in the house style: what it shows, then ``— model`` when the model is known.

    Example:
        >>> titled("Induction score per head", "/cache/smollm2-135m"), titled("Recovery", None)
        ('Induction score per head — smollm2-135m', 'Recovery')
    """
    name = short_name(model)
    return f"{text} — {name}" if name else text


def cell(value: Any, digits: int = 3) -> str:
    """One value as text: floats to ``digits`` decimals (``n/a`` for NaN and None), pairs as ``[a, b]``.

    Example:
        >>> cell(0.90234), cell(float("nan")), cell([0.5, 0.75]), cell(7)
        ('0.902', 'n/a', '[0.500, 0.750]', '7')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(cell(v, digits) for v in value) + "]"
    return str(value)


def _head_line(summary: Summary) -> list[str]:
    model = short_name(summary.model)
    return ([model] if model else []) + ([summary.shape] if summary.shape else [])


def summary_text(summary: Summary) -> str:
    """The one-line ``repr``: kind, model, shape, key numbers and the first rows.

    Example:
        >>> summary_text(Summary("ScanResult", "gpt2", "2 layers x 4 heads", ["head", "score"],
        ...                      [["L1H2", 0.9], ["L0H1", 0.25]]))
        'ScanResult(gpt2, 2 layers x 4 heads, top: L1H2 0.900, L0H1 0.250)'
    """
    parts = _head_line(summary) + [f"{name} {cell(value)}" for name, value in summary.numbers]
    rows = summary.rows if summary.brief is None else summary.brief
    shown = rows[:REPR_ROWS]
    if shown:
        more = ", ..." if len(rows) > REPR_ROWS else ""
        parts.append(
            f"{summary.rows_title}: "
            + ", ".join(f"{row[0]} {cell(row[1])}" if len(row) > 1 else str(row[0]) for row in shown)
            + more
        )
    return f"{summary.kind}({', '.join(parts)})"


def summary_html(summary: Summary) -> str:
    """An HTML table of the rows under a line naming the result and its key numbers, every text escaped."""
    esc = html.escape
    head = ", ".join(esc(part) for part in _head_line(summary))
    numbers = "".join(f"<li>{esc(name)}: {esc(cell(value))}</li>" for name, value in summary.numbers)
    header = "".join(f"<th>{esc(title)}</th>" for title in ["#", *summary.columns])
    body = "".join(
        "<tr>" + f"<td>{i}</td>" + "".join(f"<td>{esc(cell(value))}</td>" for value in row) + "</tr>"
        for i, row in enumerate(summary.rows[: summary.max_rows], 1)
    )
    return (
        f"<div><p><strong>{esc(summary.kind)}</strong> {head}</p>"
        + (f"<ul>{numbers}</ul>" if numbers else "")
        + f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table></div>"
    )


class Displayable:
    """Mixin of the result classes: ``repr``, HTML and figures from ``_summary()`` and ``_figure()``.

    A subclass (a dataclass declared with ``repr=False``, so this ``__repr__`` is kept) defines
    ``FIGURES`` (figure names, the main one first) or ``_figure_names()``, ``_summary()`` and
    ``_figure(name, **options)``, where ``options`` override the figure builder's defaults.
    """

    FIGURES: ClassVar[tuple[str, ...]] = ()

    def _summary(self) -> Summary:
        raise NotImplementedError

    def _figure_names(self) -> list[str]:
        return list(self.FIGURES)

    def _figure(self, name: str, **options) -> go.Figure:
        raise NotImplementedError

    def figures(self, titles: dict[str, str] | None = None) -> dict[str, go.Figure]:
        """Every figure of this result by name, the main one first.

        Args:
            titles: ``name -> title`` replacing the default titles.
        """
        titles = titles or {}
        return {
            name: self._figure(name, **({"title": titles[name]} if name in titles else {}))
            for name in self._figure_names()
        }

    def figure(self, name: str | None = None, **options) -> go.Figure:
        """One figure: the main one, or the one ``figures()`` calls ``name``.

        Args:
            name: Which figure (the main one when None).
            options: Keyword arguments of the figure's builder (``title`` and the like) overriding its defaults.
        """
        names = self._figure_names()
        if name is None and names or name in names:
            return self._figure(name or names[0], **options)
        raise ValueError(f"{type(self).__name__} has no figure {name!r}: pass one of {', '.join(names) or 'none'}")

    def __repr__(self) -> str:
        return summary_text(self._summary())

    def _repr_html_(self) -> str:
        return summary_html(self._summary())
