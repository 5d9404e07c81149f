"""An interactive attention view as one self-contained HTML file: plain data in, HTML text out.

The tokens are shown as text, once per chosen head (side by side, a checkbox per head).
Hovering a token shades every token by the weight the head puts on it from the hovered one
(or, with the direction toggle, by the weight it puts on the hovered one); a click locks the
selection and a second click on it unlocks. Optional targets (the induction target, the
previous token) are outlined for the selected token. The script and style
(``attention_view.js`` and ``attention_view.css`` beside this module) are inlined: the file
needs no network and no library. The same data always gives the same bytes (no random ids,
no timestamps), so a committed view can be checked against the code.

Example:
    >>> page = attention_html(["a", "b"], [[[1.0, 0.0], [0.25, 0.75]]], ["L0H0"])
    >>> page.startswith("<!DOCTYPE html>") and '"weights":[[[1.0,0.0],[0.25,0.75]]]' in page
    True
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from importlib import resources

DECIMALS = 5  # weights are embedded rounded to 1e-5
MAX_TARGETS = 3  # outline styles in attention_view.css (inv-t0 .. inv-t2)
MAX_SHOWN = 4  # heads shown side by side at first; the others wait behind their checkbox


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _plain(value):
    """Nested lists from a tensor or array (anything with ``tolist``), or ``value`` itself."""
    return value.tolist() if hasattr(value, "tolist") else value


def _weights(weights, n_heads: int, n_tokens: int) -> list[list[list[float]]]:
    """``weights`` checked to be ``[head][query][key]`` finite numbers, rounded to :data:`DECIMALS`."""
    weights = _plain(weights)
    if not isinstance(weights, Sequence) or len(weights) != n_heads:
        found = len(weights) if isinstance(weights, Sequence) else type(weights).__name__
        raise ValueError(f"weights must be [head][query][key] with {n_heads} head(s) (one per label), got {found}")
    out = []
    for h, grid in enumerate(weights):
        if not isinstance(grid, Sequence) or len(grid) != n_tokens:
            raise ValueError(f"weights[{h}] must have {n_tokens} query rows (one per token)")
        rows = []
        for q, row in enumerate(grid):
            if not isinstance(row, Sequence) or len(row) != n_tokens:
                raise ValueError(f"weights[{h}][{q}] must have {n_tokens} key weights (one per token)")
            try:
                values = [float(v) for v in row]
            except (TypeError, ValueError) as error:
                raise ValueError(f"weights[{h}][{q}] holds a non-number ({error})") from error
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"weights[{h}][{q}] holds NaN or an infinity")
            rows.append([round(v, DECIMALS) + 0.0 for v in values])
        out.append(rows)
    return out


def _targets(targets: Mapping[str, Sequence] | None, n_tokens: int) -> list[dict]:
    """``{name: [query] -> key position(s)}`` as ``[{"name", "keys": [query][positions]}]``."""
    out = []
    for name, per_query in (targets or {}).items():
        per_query = _plain(per_query)
        if len(per_query) != n_tokens:
            raise ValueError(f"target {name!r} must give {n_tokens} entries (one per query), got {len(per_query)}")
        keys = []
        for q, entry in enumerate(per_query):
            entry = [] if entry is None else [entry] if isinstance(entry, int) else list(entry)
            bad = [k for k in entry if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < n_tokens]
            if bad:
                raise ValueError(f"target {name!r} at query {q}: key {bad[0]!r} is not a position 0..{n_tokens - 1}")
            keys.append(sorted(set(entry)))
        out.append({"name": str(name), "keys": keys})
    if len(out) > MAX_TARGETS:
        raise ValueError(f"at most {MAX_TARGETS} kinds of target can be outlined, got {len(out)}")
    return out


def attention_data(
    tokens: Sequence[str],
    weights,
    head_labels: Sequence[str],
    *,
    targets: Mapping[str, Sequence] | None = None,
    title: str = "",
    shown: Sequence[int] | None = None,
) -> dict:
    """The checked, plain data a view embeds (see :func:`attention_html` for the arguments).

    Returns:
        ``{"title", "tokens", "heads", "weights" [head][query][key], "targets", "shown"}``.

    Raises:
        ValueError: On weights that are not ``[head][query][key]`` finite numbers over the
            tokens, a target outside the tokens, or a shown head outside the labels.
    """
    tokens = [str(t) for t in tokens]
    labels = [str(label) for label in head_labels]
    if not tokens:
        raise ValueError("no tokens to show")
    if not labels:
        raise ValueError("no head labels: pass one label per head")
    shown = list(range(min(len(labels), MAX_SHOWN))) if shown is None else [int(h) for h in shown]
    if any(not 0 <= h < len(labels) for h in shown):
        raise ValueError(f"shown heads must be indices 0..{len(labels) - 1}, got {shown}")
    return {
        "title": str(title),
        "tokens": tokens,
        "heads": labels,
        "weights": _weights(weights, len(labels), len(tokens)),
        "targets": _targets(targets, len(tokens)),
        "shown": shown,
    }


def _script_json(value) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>`` can end it early)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# attention_data's arguments on purpose, as attention_html's: the data, a fragment and a page of one view.
def attention_fragment(
    tokens: Sequence[str],
    weights,
    head_labels: Sequence[str],
    *,
    targets: Mapping[str, Sequence] | None = None,
    title: str = "",
    shown: Sequence[int] | None = None,
) -> str:
    """The view as an HTML fragment (style, data, script in one ``div.inv-attn``) for a notebook
    cell or a page; several fragments can share a page. Arguments as :func:`attention_html`."""
    data = attention_data(tokens, weights, head_labels, targets=targets, title=title, shown=shown)
    return (
        '<div class="inv-attn" tabindex="-1">\n'
        f"<style>\n{_asset('attention_view.css')}</style>\n"
        f'<script type="application/json" class="inv-attn-data">{_script_json(data)}</script>\n'
        "<noscript>The attention view needs JavaScript.</noscript>\n"
        f"<script>\n{_asset('attention_view.js')}</script>\n"
        "</div>\n"
    )


def attention_html(
    tokens: Sequence[str],
    weights,
    head_labels: Sequence[str],
    *,
    targets: Mapping[str, Sequence] | None = None,
    title: str = "",
    shown: Sequence[int] | None = None,
) -> str:
    """A self-contained HTML page showing where the given heads attend on one row of tokens.

    Args:
        tokens: ``[pos]`` token strings, shown as text.
        weights: ``[head][query][key]`` attention probabilities (nested lists, or a tensor or
            array with ``tolist``), one ``[pos][pos]`` grid per head; embedded rounded to 1e-5.
        head_labels: ``[head]`` names such as ``"L18H6"``.
        targets: Optional ``{name: [query] -> key position, list of positions or None}``, e.g.
            ``{"induction target": ..., "previous token": ...}``: the keys outlined for the
            selected query (at most 3 kinds).
        title: A line above the view.
        shown: Indices of the heads shown at first (default: the first 4).

    Returns:
        The page's text (UTF-8), the same for the same data.

    Raises:
        ValueError: On weights of the wrong shape (not one ``[pos][pos]`` grid per label) or
            not finite, or a target outside the tokens.
    """
    body = attention_fragment(tokens, weights, head_labels, targets=targets, title=title, shown=shown)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title or 'Attention view')}</title>\n"
        "<style>body { margin: 12px; }</style>\n"
        f"</head>\n<body>\n{body}</body>\n</html>\n"
    )
