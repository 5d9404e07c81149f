"""Sphinx extension and checker: numbers in the docs read from the committed results files.

In a docs page (MyST Markdown), write a number as a role naming its source::

    The repeated-half loss falls to {result}`charts/dynamics_results.json:checkpoints.-1.loss_repeated_half:.2f` nats.

The role's text is ``FILE:KEY:FORMAT``: ``FILE`` a JSON file relative to the repository root, ``KEY`` a
dotted path into it (list items by index, negative from the end: ``checkpoints.-1.step``, or by their
fields: ``edges.source=L16H0&target=L18H6&path=k.effect``), ``FORMAT``
a Python format spec (``.2f``, ``,``, ``.0%``; none: the value as it is). At build time the role is
replaced by the formatted value, so a changed results file changes the page; a file, key or format
that does not resolve is a Sphinx warning (an error under ``-W``).

The README is not built by Sphinx: there the number is written out, followed by an HTML comment
naming its source, ``4.18<!-- data: charts/dynamics_results.json:checkpoints.0.loss_first_half:.2f -->``,
and :func:`check_markers` (run by ``tests/docs/test_quoted_numbers.py`` and
``python docs/_ext/data_quote.py``) fails when the number written is not what the file says.
``python docs/_ext/data_quote.py --fix`` rewrites the README's marked numbers from their files (after
the results were regenerated) and writes out ``<<FILE:KEY:FORMAT>>`` placeholders: as the role in a
docs page, as the value and its marker in the README.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROLE = re.compile(r"\{result\}`([^`]+)`")
"""A ``{result}`FILE:KEY:FORMAT``` role in a MyST page."""
MARKER = re.compile(r"(?P<number>[-+−]?[0-9][0-9,]*(?:\.[0-9]+)?%?)(?P<space>\s*)<!-- data: (?P<spec>[^>]+?) -->")
"""A number followed by ``<!-- data: FILE:KEY:FORMAT -->`` in the README (no space between them)."""


PLACEHOLDER = re.compile(r"<<([^<>\s]+\.json:[^<>\s]*)>>")  # FILE ends in .json
"""A ``<<FILE:KEY:FORMAT>>`` placeholder (a quote not yet written out): :func:`fill` turns it into a role or marker."""


class QuoteError(ValueError):
    """A quote whose file, key or format does not resolve."""


def _select(items: list, part: str, spec: str):
    """The first item of ``items`` (dicts) whose fields match ``part``, ``name=value&name=value``."""
    wanted = dict(pair.split("=", 1) for pair in part.split("&"))
    for item in items:
        if isinstance(item, dict) and all(str(item.get(k)) == v for k, v in wanted.items()):
            return item
    raise QuoteError(f"{spec}: no item with {part} in a list of {len(items)}")


def _lookup(value, key: str, spec: str):
    for part in key.split(".") if key else []:
        if isinstance(value, list) and "=" in part:
            value = _select(value, part, spec)
        elif isinstance(value, list):
            try:
                value = value[int(part)]
            except (ValueError, IndexError):
                raise QuoteError(f"{spec}: no item {part!r} in a list of {len(value)}") from None
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            keys = ", ".join(list(value)[:12]) if isinstance(value, dict) else type(value).__name__
            raise QuoteError(f"{spec}: no key {part!r} (there: {keys})")
    return value


def quote(spec: str, root: Path = ROOT) -> str:
    """The text of quote ``FILE:KEY[:FORMAT]``: the value in the file, formatted.

    Example:
        >>> quote("charts/dynamics_results.json:settings.batch")
        '10'

    Raises:
        QuoteError: Naming the missing file, key or the bad format.
    """
    parts = spec.strip().split(":")
    if len(parts) not in (2, 3):
        raise QuoteError(f"{spec!r} is not FILE:KEY or FILE:KEY:FORMAT")
    name, key, form = (*parts, "")[:3]
    path = root / name
    try:
        data = json.loads(path.read_text())
    except OSError:
        raise QuoteError(f"{spec}: no results file {name}") from None
    except json.JSONDecodeError as error:
        raise QuoteError(f"{spec}: {name} is not JSON ({error})") from None
    value = _lookup(data, key, spec)
    if isinstance(value, dict | list) or value is None:
        raise QuoteError(f"{spec}: the value is {json.dumps(value)[:60]}, not a number or a string")
    try:
        return format(value, form)
    except (ValueError, TypeError) as error:
        raise QuoteError(f"{spec}: format {form!r} does not apply to {value!r} ({error})") from None


def check_markers(text: str, root: Path = ROOT) -> list[str]:
    """Each README marker whose number is not what its file says, as ``"line N: wrote X, FILE:KEY says Y"``."""
    problems = []
    for match in MARKER.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        spec = match["spec"]
        if match["space"]:
            problems.append(f"line {line}: a space between {match['number']} and its marker")
            continue
        try:
            expected = quote(spec, root)
        except QuoteError as error:
            problems.append(f"line {line}: {error}")
            continue
        if match["number"].replace("−", "-") != expected:
            problems.append(f"line {line}: wrote {match['number']}, {spec} says {expected}")
    orphans = text.count("<!-- data:") - len(MARKER.findall(text))
    if orphans:
        problems.append(f"{orphans} marker(s) with no number right before them")
    return problems


def check_roles(text: str, root: Path = ROOT) -> list[str]:
    """Each ``{result}`` role of a docs page that does not resolve, as ``"line N: why"``."""
    problems = []
    for match in ROLE.finditer(text):
        try:
            quote(match[1], root)
        except QuoteError as error:
            problems.append(f"line {text.count(chr(10), 0, match.start()) + 1}: {error}")
    return problems


def _placeholders(text: str) -> list[str]:
    return [f"a placeholder <<{m[1]}>>: run python docs/_ext/data_quote.py --fix" for m in PLACEHOLDER.finditer(text)]


def check_all(root: Path = ROOT) -> list[str]:
    """Every README marker and docs role that is wrong, and every placeholder left, prefixed with its file."""
    readme = (root / "README.md").read_text()
    found = [f"README.md {p}" for p in check_markers(readme, root) + _placeholders(readme)]
    for page in sorted((root / "docs").glob("*.md")):
        text = page.read_text()
        found += [f"docs/{page.name} {p}" for p in check_roles(text, root) + _placeholders(text)]
    return found


def fill(text: str, readme: bool, root: Path = ROOT) -> str:
    """``text`` with each ``<<FILE:KEY:FORMAT>>`` placeholder written out, and (README) each marked number
    rewritten from its file: a docs page gets the ``{result}`` role, the README the value and its marker.

    Example:
        >>> fill("batch <<charts/dynamics_results.json:settings.batch>>", readme=True)
        'batch 10<!-- data: charts/dynamics_results.json:settings.batch -->'

    Raises:
        QuoteError: For a placeholder or marker that does not resolve.
    """
    if not readme:
        return PLACEHOLDER.sub(lambda m: "{result}`" + m[1] + "`", text)
    text = PLACEHOLDER.sub(lambda m: f"{quote(m[1], root)}<!-- data: {m[1]} -->", text)
    return MARKER.sub(lambda m: f"{quote(m['spec'], root)}<!-- data: {m['spec']} -->", text)


def fix_all(root: Path = ROOT) -> list[str]:
    """Write out the placeholders and rewrite the README's marked numbers in place; the files changed."""
    changed = []
    for path in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        text = path.read_text()
        new = fill(text, path.name == "README.md" and path.parent == root, root)
        if new != text:
            path.write_text(new)
            changed.append(str(path.relative_to(root)))
    return changed


def data_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """The ``result`` role (``data`` is the Python domain's): the formatted value, or a warning saying why not."""
    from docutils import nodes

    env = getattr(inliner.document.settings, "env", None)
    root = Path(env.config.data_quote_root) if env is not None else ROOT
    if env is not None:  # a changed results file rebuilds the page
        env.note_dependency(str(root / text.split(":")[0]))
    try:
        return [nodes.Text(quote(text, root))], []
    except QuoteError as error:
        message = inliner.reporter.warning(f"result role: {error}", line=lineno)
        return [nodes.problematic(rawtext, rawtext)], [message]


def setup(app):
    app.add_config_value("data_quote_root", str(ROOT), "env")  # where FILE paths start: the repository root
    app.add_role("result", data_role)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    if "--fix" in sys.argv[1:]:  # after regenerating results: write the numbers out again
        print("\n".join(f"rewrote {name}" for name in fix_all()) or "nothing to rewrite")
    wrong = check_all()
    print("\n".join(wrong) or "every quoted number is what its results file says")
    sys.exit(1 if wrong else 0)
