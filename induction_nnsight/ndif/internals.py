"""The only place this package touches nnsight's private names: one function each.

nnsight 0.8 has no public way to do these four things, and NDIF's own server code
uses the same names (its model actor calls ``_remoteable_persistent_objects`` and
reads ``_saves``), so they are as stable as the remote protocol itself. Each lives
in exactly one function below and nowhere else in :mod:`induction_nnsight.ndif`
(``tests/remote/test_nnsight_internals.py`` checks both that, and that every name
still exists and behaves as used, naming the attribute when nnsight changes it).

==================================================  ================================
private name                                         function
==================================================  ================================
``nnsight.modeling.huggingface._ID_CACHE``           :func:`pin_repo_id`
``Remotable._remoteable_get_env``                    :func:`request_env`
``Remotable._remoteable_persistent_objects``         :func:`persistent_objects`
``nnsight.tracing.tracer._saves``                    :func:`saved_values`
``NNsight._module`` (an instance attribute)          :func:`wrapped_module`
==================================================  ================================

When one is gone, these functions raise an ``InductionError`` naming it rather
than an ``AttributeError`` from deep inside a trace.
"""

from __future__ import annotations

from typing import Any

from ..errors import InductionError

#: Every private nnsight name used, as ``(module or class, attribute)``.
PRIVATE_NAMES = (
    ("nnsight.modeling.huggingface", "_ID_CACHE"),
    ("nnsight.modeling.mixins.remotable.Remotable", "_remoteable_get_env"),
    ("nnsight.modeling.mixins.remotable.Remotable", "_remoteable_persistent_objects"),
    ("nnsight.tracing.tracer", "_saves"),
)


def _changed(name: str) -> InductionError:
    import nnsight

    return InductionError(
        f"nnsight {nnsight.__version__} no longer has {name}, which induction_nnsight.ndif.internals "
        "uses; install the nnsight version pinned in pyproject.toml"
    )


def pin_repo_id(repo: str) -> None:
    """Make nnsight key a local model directory ``repo`` as itself, without asking the Hub.

    ``HuggingFaceModel._remoteable_model_key`` canonicalizes the repo id through
    the Hub and caches the answer in ``_ID_CACHE``; a directory (served by a
    self-hosted NDIF) has no Hub id, so its cache entry is pre-set to its path.
    """
    import nnsight.modeling.huggingface as hf

    cache = getattr(hf, "_ID_CACHE", None)
    if not isinstance(cache, dict):
        raise _changed("nnsight.modeling.huggingface._ID_CACHE")
    cache.setdefault(repo, repo)


def request_env(model) -> dict:
    """The per-request environment nnsight sends with a remote request of ``model``."""
    get_env = getattr(model, "_remoteable_get_env", None)
    if get_env is None:
        raise _changed(f"{type(model).__name__}._remoteable_get_env")
    return get_env()


def persistent_objects(model) -> dict:
    """The objects a serialized trace of ``model`` refers to by id (the interleaver, each module)."""
    objects = getattr(model, "_remoteable_persistent_objects", None)
    if objects is None:
        raise _changed(f"{type(model).__name__}._remoteable_persistent_objects")
    return objects()


def saved_values(namespace: dict[str, Any]) -> dict[str, Any]:
    """The entries of a trace body's ``namespace`` that it marked with ``nnsight.save``.

    As NDIF's model actor collects them: by identity, from this thread's saved set
    (``nnsight.tracing.tracer._saves``), which is only filled inside a trace.
    """
    import nnsight.tracing.tracer as tracer

    saves = getattr(tracer, "_saves", None)
    if saves is None:
        raise _changed("nnsight.tracing.tracer._saves")
    ids = saves()
    return {name: value for name, value in namespace.items() if id(value) in ids}


def wrapped_module(model):
    """The torch module an nnsight model wraps (``model._module``: the plan counts its parameters and
    hooks its blocks)."""
    try:
        return model._module
    except AttributeError as error:
        raise _changed("NNsight._module") from error
