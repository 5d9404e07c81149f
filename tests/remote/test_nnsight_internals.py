"""nnsight's private names that induction_nnsight.ndif relies on: still there, still as used, used once.

Each test names the private attribute in its failure message, so an nnsight
upgrade that renames or reshapes one fails here, loudly, rather than somewhere
inside a remote trace. ``induction_nnsight/ndif/internals.py`` is the only module
allowed to use them, one function each.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import nnsight
import pytest
import torch

import induction_nnsight.ndif as ndif
from induction_nnsight import repeated_tokens
from induction_nnsight.ndif import internals
from tests.conftest import TINY_BOS

NDIF_DIR = Path(ndif.__file__).parent


def owner(path: str):
    """The module or class a dotted path names."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


@pytest.mark.parametrize("where,name", internals.PRIVATE_NAMES)
def test_every_private_name_still_exists(where, name):
    assert hasattr(owner(where), name), (
        f"nnsight {nnsight.__version__} has no {where}.{name}: induction_nnsight/ndif/internals.py uses it"
    )


def test_id_cache_is_the_hub_id_cache_model_keys_read(tiny_dir):
    """``_ID_CACHE``: a dict from repo id to Hub id that ``to_model_key`` reads before asking the Hub."""
    import nnsight.modeling.huggingface as hf

    cache = getattr(hf, "_ID_CACHE", None)
    assert isinstance(cache, dict), f"nnsight.modeling.huggingface._ID_CACHE is {type(cache).__name__}, not a dict"
    from induction_nnsight import load_model

    repo = str(tiny_dir("gpt2"))
    model = load_model(repo, remote=True, progress=False)
    internals.pin_repo_id(repo)
    assert repo in model.to_model_key(), (
        "nnsight.modeling.huggingface._ID_CACHE no longer decides the repo id in to_model_key()"
    )


def test_remoteable_env_and_persistent_objects(tiny_model):
    """``_remoteable_get_env`` returns a dict; ``_remoteable_persistent_objects`` maps ids to the interleaver and
    modules."""
    model = tiny_model("gpt2", "sdpa")
    env = internals.request_env(model)
    assert isinstance(env, dict), f"Remotable._remoteable_get_env returned {type(env).__name__}, not a dict"
    objects = internals.persistent_objects(model)
    assert isinstance(objects, dict) and objects, "Remotable._remoteable_persistent_objects returned no mapping"
    assert "Interleaver" in objects and any(key.startswith("Module:") for key in objects), (
        "Remotable._remoteable_persistent_objects no longer maps 'Interleaver' and 'Module:<path>' ids"
    )


def test_saves_is_the_set_of_saved_ids_inside_a_trace(tiny_model):
    """``_saves()`` holds, inside a trace, the ids of the values ``nnsight.save`` marked."""
    model = tiny_model("gpt2", "sdpa")
    found = {}
    tokens = repeated_tokens(1, 4, seed=0, low=1, high=128, bos_token_id=TINY_BOS)

    class Probe:
        def __call__(self, tracer):
            kept, dropped = object(), object()
            nnsight.save(kept)
            found.update(internals.saved_values({"kept": kept, "dropped": dropped}))

    with model.trace(tokens, backend=Probe()):
        pass
    assert list(found) == ["kept"], "nnsight.tracing.tracer._saves() no longer holds the ids nnsight.save marks"


def test_a_missing_private_name_is_reported_by_name(monkeypatch):
    import nnsight.tracing.tracer as tracer

    monkeypatch.delattr(tracer, "_saves")
    with pytest.raises(Exception, match=r"nnsight\.tracing\.tracer\._saves"):
        internals.saved_values({})


def private_uses(path: Path) -> list[str]:
    """``_private`` attributes and ``from nnsight... import _private`` names in a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        aten = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "_aten"
        if aten:  # torch.ops.aten's op names (_to_copy ...): torch's public op namespace, not nnsight's
            continue
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nnsight"):
            if any(part.startswith("_") for part in node.module.split(".")):
                found.append(f"{path.name}:{node.lineno} {node.module}")
            found += [f"{path.name}:{node.lineno} {alias.name}" for alias in node.names if alias.name.startswith("_")]
    return found


def test_only_internals_uses_private_nnsight_names():
    others = [p for p in sorted(NDIF_DIR.glob("*.py")) if p.name != "internals.py"]
    assert others, NDIF_DIR
    leaks = [use for p in others for use in private_uses(p)]
    assert not leaks, f"private names outside ndif/internals.py: {leaks}"


def test_each_private_name_lives_in_one_internals_function():
    source = inspect.getsource(internals)
    tree = ast.parse(source)
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    for _, name in internals.PRIVATE_NAMES:
        users = [f.name for f in functions if name in ast.get_source_segment(source, f)]
        assert len(users) == 1, f"{name} is used in {users or 'no function'} of ndif/internals.py, not exactly one"


def test_the_wrapped_module_is_the_torch_model(tiny_model):
    model = tiny_model("gpt2")
    module = internals.wrapped_module(model)
    assert isinstance(module, torch.nn.Module) and not hasattr(module, "trace")  # torch's, not nnsight's
