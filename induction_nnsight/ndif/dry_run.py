"""The dry run of a remote request (``remote="local"``): NDIF's steps, here, on a local model.

:class:`DryRunBackend` serializes the trace exactly as for NDIF (nnsight's public
``RequestModel.serialize``, zstd-compressed), rebuilds it with
``induction_nnsight`` unimportable (:func:`hidden_package`, as on NDIF, which
does not have it), runs the rebuilt trace, and sends the values it saved through
the result's wire format (``torch.save``, zstd) before handing them back. So an
unsaved value, an unpicklable closure, or a function that was not shipped by
value fails here as it would on NDIF, and the byte counts are NDIF's.

Why not nnsight's own ``remote="local"`` (``LocalSimulationBackend`` in
``nnsight/intervention/backends/local.py``)? It serializes and deserializes with
local modules hidden, but then runs the *caller's* tracer with the rebuilt code
against the caller's globals, with this package importable again: a function that
pickled by reference but is needed at run time would pass there and fail on NDIF.
It also hides modules by a ``sys.path`` heuristic (an editable install of this
package is still found through its import hook), ships uncompressed, leaves the
saved values as live local objects (never through ``torch.save``, so an
unpicklable saved value passes), and measures no result bytes. Checked with
nnsight 0.8.1: with this package not registered for pickling by value, ``scan``
passes under ``LocalSimulationBackend`` while NDIF (and this dry run) fail with
``ModuleNotFoundError``. Those are the guarantees the dry run exists for, so it is
kept.

The two nnsight private names it needs (the model's persistent objects and the
thread's saved set) come from :mod:`~induction_nnsight.ndif.internals`.
"""

from __future__ import annotations

import importlib.abc
import io
import linecache
import sys
import time
from contextlib import contextmanager

from .internals import persistent_objects, saved_values
from .transfers import Transfer, check_size

PACKAGE = __name__.split(".")[0]


class _HidePackage(importlib.abc.MetaPathFinder):
    """Import hook that makes a package unimportable, as on a server that lacks it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name or fullname.startswith(self.name + "."):
            raise ModuleNotFoundError(f"No module named {fullname!r} (hidden: NDIF does not have it)", name=fullname)
        return None


@contextmanager
def hidden_package(name: str = PACKAGE):
    """Within the block, ``import name`` (and its submodules) fails as on NDIF."""
    finder = _HidePackage(name)
    modules = {m: sys.modules.pop(m) for m in list(sys.modules) if m == name or m.startswith(name + ".")}
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        sys.modules.update(modules)


class DryRunBackend:
    """A remote request run here: serialize, deserialize without this package, run, ship the saves back.

    The steps are those of NDIF's model actor: the trace is serialized by
    nnsight's remote path (zstd-compressed), rebuilt with ``induction_nnsight``
    unimportable, executed against the model, and the values it saved are
    ``torch.save``\\ d and loaded back. An unsaved value, an unpicklable closure or
    a function that was not shipped by value fails here as it would on NDIF.
    ``transfer`` holds the bytes each way.
    """

    def __init__(self, model) -> None:
        self.model = model
        self.transfer: Transfer | None = None
        self.max_bytes: int | None = None  # set by the session loop: a larger request is refused, as on NDIF

    def __call__(self, tracer) -> None:
        import nnsight
        import torch
        import zstandard
        from nnsight.schema.request import RequestModel
        from nnsight.tracing.util import push

        start = time.monotonic()
        blob = RequestModel.serialize(tracer, compress=True)
        check_size(len(blob), self.max_bytes)
        objects = persistent_objects(self.model)
        snapshot = dict(linecache.cache)
        try:
            with hidden_package():
                restored = RequestModel.deserialize(blob, objects, compress=True)
                restored.execute(restored.info.code)
                saved = saved_values(restored.info.frame.f_locals)
                buffer = io.BytesIO()
                torch.save(saved, buffer)
        finally:
            linecache.cache.clear()
            linecache.cache.update(snapshot)
        result = zstandard.ZstdCompressor(level=3).compress(buffer.getvalue())
        self.transfer = Transfer(len(blob), len(result), time.monotonic() - start)
        values = torch.load(io.BytesIO(zstandard.ZstdDecompressor().decompress(result)), weights_only=False)
        for value in values.values():
            nnsight.save(value)  # we are inside the outer trace's exit, so save() is allowed
        if tracer.info is not None and tracer.info.frame is not None:
            push(tracer.info.frame, values)
