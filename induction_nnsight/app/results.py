"""Typed job results: what a job built, in fields, and the results file written from them.

Every job returns a :class:`JobResult` subclass: a dataclass whose fields are the keys of its results
file in the order the file lists them. The job fills the fields; :meth:`JobResult.to_json` writes the
file; the command line prints from the fields (``result.mean_loss_repeated_half``), never from a dict read
back by string key. A field made with :func:`optional` is left out of the file while it is None (a section
the settings skipped); a field made with :func:`unwritten` is carried but never written (a chart, a text).

A job needs three things::

    @dataclass(eq=False)
    class ScanJobResult(JobResult):
        model: str
        mean_loss_first_half: float | None
        ndif: dict | None = optional()

    result = ScanJobResult(model=config.model, mean_loss_first_half=rounded(first))
    files["scan_results.json"] = result.to_json()

A result also reads as the mapping its file holds (``result["model"]``, ``dict(result)``, ``==`` against a
dict), so code written against the plain dicts of earlier versions keeps working.

>>> from dataclasses import dataclass
>>> @dataclass(eq=False)
... class Demo(JobResult):
...     model: str
...     loss: float | None
...     extra: dict | None = optional()
>>> Demo("m", 1.5).to_json()
'{\\n "model": "m",\\n "loss": 1.5\\n}'
>>> Demo("m", None, {"a": 1}) == {"model": "m", "loss": None, "extra": {"a": 1}}
True
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from ..strict_json import to_json

__all__ = ["JobResult", "optional", "plain", "unwritten"]

_OPTIONAL = "written_unless_none"
_UNWRITTEN = "unwritten"


def optional(default: Any = None) -> Any:
    """A result field left out of the results file while it is None (``default`` None)."""
    return field(default=default, metadata={_OPTIONAL: True})


def unwritten(default: Any = None, *, default_factory: Any = None) -> Any:
    """A result field carried with the result but never written to its file (a chart, a printed text)."""
    if default_factory is not None:
        return field(default_factory=default_factory, repr=False, metadata={_UNWRITTEN: True})
    return field(default=default, repr=False, metadata={_UNWRITTEN: True})


def plain(value: Any) -> Any:
    """``value`` as the plain data a results file holds: a nested result or dataclass as its dict (recursively,
    in field order), anything else as it is (not copied)."""
    if isinstance(value, JobResult):
        return value.as_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()} if any(is_dataclass(v) for v in value.values()) else value
    if isinstance(value, list) and any(is_dataclass(v) for v in value):
        return [plain(v) for v in value]
    return value


@dataclass(eq=False)
class JobResult(Mapping):
    """Base of every job's typed result (see the module docstring): subclasses are ``@dataclass(eq=False)``
    whose fields are the results file's keys, in its order."""

    def _written(self) -> Iterator[tuple[str, Any]]:
        for f in fields(self):
            if f.metadata.get(_UNWRITTEN):
                continue
            value = getattr(self, f.name)
            if value is None and f.metadata.get(_OPTIONAL):
                continue
            yield f.name, value

    def as_dict(self) -> dict:
        """The results file's content: every written field, in field order, as plain data."""
        return {name: plain(value) for name, value in self._written()}

    def to_json(self) -> str:
        """The results file's text (strict JSON: NaN as null, :func:`~induction_nnsight.strict_json.to_json`)."""
        return to_json(self.as_dict())

    def __getitem__(self, key: str) -> Any:
        for name, value in self._written():
            if name == key:
                return plain(value)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._written())

    def __len__(self) -> int:
        return sum(1 for _ in self._written())
