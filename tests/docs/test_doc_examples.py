"""The Python examples of the docs pages and the README run against the real SmolLM2.

In each page, in order and sharing one namespace like a notebook: ```python blocks are
executed, ```pycon blocks are doctests whose printed output must match. Other fences
(bash, text) are not run.
"""

import doctest
import io

import pytest

from induction_nnsight.scores.registry import score_names
from tests.docs.helpers import DOCS, ROOT, example_blocks

PAGES = [p for p in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))] if example_blocks(p.read_text())]

pytestmark = pytest.mark.slow


@pytest.fixture
def shared_models(smollm2, monkeypatch):
    """``load_model`` returns the session's SmolLM2 for the default call, so pages do not reload it."""
    import induction_nnsight

    real = induction_nnsight.load_model
    cache = {("smollm2-135m", ()): smollm2}

    def load_model(name, **kwargs):
        key = (name, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = real(name, **kwargs)
        return cache[key]

    monkeypatch.setattr(induction_nnsight, "load_model", load_model)


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_examples_run(page, shared_models):
    before = score_names()  # a page passes its scores as objects, or unregisters what it registered
    namespace = {"__name__": f"docs_{page.stem}"}
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    for block in example_blocks(page.read_text()):
        where = f"{page.relative_to(ROOT)}:{block.line}"
        if block.language == "python":
            exec(compile(block.code, where, "exec"), namespace)
            continue
        test = doctest.DocTestParser().get_doctest(block.code, namespace, where, str(page), block.line - 1)
        report = io.StringIO()
        result = doctest.DocTestRunner(optionflags=flags).run(test, out=report.write, clear_globs=False)
        namespace.update(test.globs)
        assert result.failed == 0, f"{where}: example output differs\n{report.getvalue()}"
    assert score_names() == before, f"{page.name} left the registry changed: {score_names()}"
