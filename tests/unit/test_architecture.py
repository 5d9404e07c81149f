"""The package's import rule (issue 12, point 3): imports run only down the data flow.

models/ -> probes/ -> ndif/ -> scores/ -> causal/ -> app/, with errors.py and names.py usable by all and
figures/ (plain data in, Plotly figures out) by the stages whose results draw themselves. The rule
is read from the source with ``ast`` (module-level imports, imports inside functions,
relative ``from ..x import`` and absolute ``induction_nnsight.x`` alike), so a lazy import
added to dodge a cycle is caught as surely as one at the top of a file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import induction_nnsight

PACKAGE = "induction_nnsight"
ROOT = Path(induction_nnsight.__file__).parent
SUBPACKAGES = ("figures", "models", "probes", "training", "ndif", "scores", "dynamics", "causal", "app")
ALLOWED = {
    "figures": set(),  # plain data in, figures out: drawable from every stage
    "models": {"errors"},
    "probes": {"models", "errors"},
    "ndif": {"models", "errors"},
    "training": {"models", "probes", "errors"},
    "scores": {"models", "probes", "ndif", "errors", "figures"},
    "dynamics": {"models", "probes", "ndif", "scores", "errors", "figures"},
    "causal": {"models", "probes", "ndif", "scores", "errors", "figures"},
    "app": {*SUBPACKAGES, "errors"},
    "": {*SUBPACKAGES, "errors"},  # the top-level __init__ re-exports everything
    "errors": set(),
    "names": {"errors"},
    "version": set(),
    "strict_json": set(),
    "stats": set(),
    "__main__": {"app"},  # python -m induction_nnsight: the command line
}
# errors.py, names.py (how a head is named), strict_json.py (how a number is written), stats.py (how an
# interval and a correction are computed) and version.py sit below
# every stage: each may import them.
BOTTOM = {"names", "stats", "strict_json", "version"}
for _stage in SUBPACKAGES + ("",):
    ALLOWED[_stage] = ALLOWED[_stage] | BOTTOM
# Inside causal/, the same rule between its parts: the flat modules (metrics, pairs, variants, head outputs and
# weights, intervals, cost, composition, the QK fix) at the bottom; ablation/, patching/ and dual_route/ on them;
# paths/ (path patching) also on ablation/ (how a head is removed); circuit.py on top. An import under
# ``if TYPE_CHECKING:`` runs never and is not counted.
CAUSAL_PARTS = ("ablation", "patching", "paths", "dual_route", "circuit")
CAUSAL_ALLOWED = {
    "flat": set(),
    "ablation": {"flat"},
    "patching": {"flat"},
    "dual_route": {"flat"},
    "paths": {"flat", "ablation"},
    "circuit": {"flat", "ablation", "paths"},
}
MAX_LINES = 500  # a module holds one concept; this is a generous ceiling, not a size to cut to
# Modules allowed over MAX_LINES (relative paths); empty since the app split (ablate_job, patch_job, arguments).
KNOWN_LONG: set[str] = set()


def module_name(path: Path) -> str:
    """``induction_nnsight/scores/heads.py`` -> ``induction_nnsight.scores.heads``."""
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def stage(module: str) -> str | None:
    """The part of the package ``induction_nnsight.<stage>...`` belongs to (``""`` for the top level)."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import in ``source``, at any depth of the tree.

    ``from . import x`` yields ``<package>.x`` (``x`` may be a submodule), so a sibling
    subpackage reached through ``from .. import scores`` is seen too.
    """
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None or stage(target) == "":  # from . import x / from induction_nnsight import x
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return found


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Imports in ``source`` (the text of ``module``) that run back up the data flow."""
    own = stage(module)
    allowed = ALLOWED[own] | {own}
    bad = []
    for line, target in imported_modules(source, module, is_package):
        other = stage(target)
        if other is None or other in allowed:
            continue
        if other not in ALLOWED:  # `from induction_nnsight import load_model`: a name re-exported from the top
            other = ""
        if other not in allowed:
            bad.append(
                f"{module}:{line} imports {target} ({own or 'top level'} may import "
                f"{', '.join(sorted(ALLOWED[own])) or 'nothing of the package'})"
            )
    return bad


MODULES = sorted(ROOT.rglob("*.py"))


def test_every_module_is_checked():
    names = {module_name(p) for p in MODULES}
    for sub in SUBPACKAGES:
        assert f"{PACKAGE}.{sub}" in names, sub
    assert {f"{PACKAGE}.errors", PACKAGE, f"{PACKAGE}.scores.heads", f"{PACKAGE}.app.jobs"} <= names
    for path in MODULES:
        assert stage(module_name(path)) in ALLOWED, path


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_only_down_the_data_flow(path):
    source = path.read_text()
    assert violations(source, module_name(path), path.name == "__init__.py") == []


def test_the_checker_flags_upward_imports():
    """Self-test: each form of an upward import is caught, and the allowed ones are not."""
    upward = {
        "from ..scores.heads import head_scores\n": "induction_nnsight.scores.heads",
        "from ..app import jobs\n": "induction_nnsight.app",
        "from .. import causal\n": "induction_nnsight.causal",
        "import induction_nnsight.scores.scan\n": "induction_nnsight.scores.scan",
        "from induction_nnsight.probes.tokens import Probe\n": "induction_nnsight.probes.tokens",
        "from induction_nnsight import load_model\n": "induction_nnsight.load_model",
        "def f():\n    if True:\n        from ..ndif.settings import Remote\n": "induction_nnsight.ndif.settings",
    }
    for source, target in upward.items():
        found = violations(source, "induction_nnsight.models.loading")
        assert len(found) == 1 and f"imports {target} " in found[0], source
    # a function-level import in a subpackage __init__ resolves against the package itself
    assert len(violations("def f():\n    from .cli import main\n", "induction_nnsight.models", True)) == 0
    assert len(violations("def f():\n    from ..app.cli import main\n", "induction_nnsight.models", True)) == 1
    allowed = (
        "from ..errors import InductionError\nfrom .layout import model_facts\nimport torch\n"
        "from induction_nnsight.errors import InductionError\nfrom . import cache\n"
    )
    assert violations(allowed, "induction_nnsight.models.loading") == []
    assert violations("from ..scores.losses import token_losses\n", "induction_nnsight.causal.metrics") == []
    assert len(violations("from ..causal.metrics import pearson\n", "induction_nnsight.scores.heads")) == 1


@pytest.mark.parametrize("sub", SUBPACKAGES)
def test_each_subpackage_docstring_says_what_it_may_import(sub):
    doc = ast.get_docstring(ast.parse((ROOT / sub / "__init__.py").read_text()))
    assert doc, f"{sub}/__init__.py has no docstring"
    text = " ".join(doc.split()).replace("May import", "may import")
    assert "may import" in text, sub
    if sub == "app":
        assert "every other subpackage" in text
        return
    claims = {
        other for other in (*SUBPACKAGES, "errors") if f"induction_nnsight.{other}`" in text.split("may import")[1]
    }
    assert claims == ALLOWED[sub] - BOTTOM, f"{sub}'s docstring says it may import {sorted(claims)}"


def causal_part(module: str) -> str | None:
    """The part of causal/ ``module`` belongs to (``"flat"`` for its flat modules; None outside causal/)."""
    parts = module.split(".")
    if parts[:2] != [PACKAGE, "causal"]:
        return None
    return parts[2] if len(parts) > 2 and parts[2] in CAUSAL_PARTS else "flat"


def runtime_source(source: str) -> str:
    """``source`` without its ``if TYPE_CHECKING:`` blocks (imports for annotations only)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = [ast.Pass()]
    return ast.unparse(tree)


def causal_violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Imports in ``source`` (the text of a module of causal/) that run back up causal/'s parts."""
    own = causal_part(module)
    allowed = CAUSAL_ALLOWED[own] | {own}
    may = ", ".join(sorted(CAUSAL_ALLOWED[own])) or "no other part"
    return [
        f"{module}:{line} imports {target} ({own} may import {may})"
        for line, target in imported_modules(runtime_source(source), module, is_package)
        if causal_part(target) not in (None, *allowed)
    ]


CAUSAL_MODULES = [p for p in MODULES if causal_part(module_name(p)) is not None]


@pytest.mark.parametrize("path", CAUSAL_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_causal_imports_run_only_down_its_parts(path):
    assert causal_violations(path.read_text(), module_name(path), path.name == "__init__.py") == []


def test_the_causal_checker_flags_upward_imports():
    assert len(causal_violations("from .paths.traces import Run\n", "induction_nnsight.causal.cost")) == 1
    assert len(causal_violations("from ..circuit import circuit\n", "induction_nnsight.causal.paths.search")) == 1
    assert len(causal_violations("from ..patching import patch\n", "induction_nnsight.causal.ablation.sweep")) == 1
    typing_only = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .paths.traces import Run\n"
    assert causal_violations(typing_only, "induction_nnsight.causal.cost") == []
    assert (
        causal_violations("from ..ablation.method import Ablation\n", "induction_nnsight.causal.paths.patching") == []
    )
    assert causal_violations("from ..metrics import as_metric\n", "induction_nnsight.causal.patching.engine") == []


def test_modules_stay_short():
    """A module holds one concept: about 500 lines at most, a generous ceiling rather than a size to cut to
    (any exception is listed in KNOWN_LONG); a concept that outgrows it wants a subpackage."""
    long = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in MODULES}
    over = {path for path, n in long.items() if n > MAX_LINES}
    assert over <= KNOWN_LONG, f"new modules over {MAX_LINES} lines: {sorted(over - KNOWN_LONG)}"
