"""Command-line options declared once, on the job configs' fields.

A config field declared with :func:`option` carries everything argparse, the JSON ``settings``
and the docs' option tables need: its flag, how a string parses, its default (the field's own)
and its help. :func:`add_options` adds a config's options to a parser, :func:`config_from` builds
the config back from the parsed namespace, and the docs' ``{options}`` directive renders the
same :class:`Option` list as a table, so the three cannot drift apart (SAELens' way).

>>> from dataclasses import dataclass
>>> @dataclass
... class Demo:
...     batch: int = option(10, help="rows", parse=int)
...     bos: bool = option(True, help="prepend BOS")
>>> parser = argparse.ArgumentParser()
>>> add_options(parser, Demo)
>>> config_from(Demo, parser.parse_args(["--batch", "3", "--no-bos"]))
Demo(batch=3, bos=False)
>>> [o.help_text for o in config_options(Demo)]
['rows (default 10)', 'prepend BOS']
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from typing import Any

__all__ = [
    "Option",
    "add_options",
    "config_from",
    "config_options",
    "count",
    "exact_losses_arg",
    "int_list",
    "like",
    "no_option",
    "option",
    "option_of",
    "positive",
    "seconds",
    "word_list",
    "word_tuple",
]

GROUPS = {"NDIF": "run the traces on NDIF; the API key comes from NDIF_API_KEY"}
"""Argument groups by title: their descriptions in ``--help``."""


@dataclass(frozen=True)
class Option:
    """One command-line option: what argparse, the docs' table and a config's settings read.

    Attributes:
        help: What the option does (a callable for text known only when the parser is built); the
            default is appended, so the text never repeats it.
        flag: ``--name`` (default: the field's name with dashes; ``--no-name`` for a switch that is
            on by default); a name without dashes is a positional argument.
        parse: String -> value (argparse's ``type``; None: the string itself).
        choices: The values allowed.
        metavar: The value's name in ``--help``.
        nargs: argparse's ``nargs``.
        required: The option must be given.
        default_text: How the help and the docs show the default, where the value alone would not say it.
        group: Title of the argument group it is listed under (see ``GROUPS``).
        finish: Parsed value -> the field's value (applied unless the value is None).
        implies: A boolean field this option switches on when it is given.
        cli_default: The command line's default where it differs from the field's (the Python API keeps the field's).
        dest: The field (or namespace attribute) it fills; set by :func:`config_options`.
        default: The default the command line uses; set by :func:`config_options`.
        type_name: The type shown in the docs' tables (default: the field's annotation).
    """

    help: str | Callable[[], str]
    flag: str | None = None
    parse: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    nargs: str | None = None
    required: bool = False
    default_text: str | None = None
    group: str | None = None
    finish: Callable[[Any], Any] | None = None
    implies: str | None = None
    cli_default: Any = field(default_factory=lambda: MISSING)  # MISSING: the field's default
    dest: str = ""
    default: Any = None
    type_name: str = ""

    @property
    def switch(self) -> bool:
        """A flag without a value: it stores the opposite of its boolean default."""
        return isinstance(self.default, bool) and self.parse is None and self.choices is None

    @property
    def positional(self) -> bool:
        return not self.name.startswith("-")

    @property
    def name(self) -> str:
        """The flag as typed (``--seq-len``, ``--no-bos``, or a positional's name)."""
        if self.flag is not None:
            return self.flag
        dashed = self.dest.replace("_", "-")
        return f"--no-{dashed}" if self.switch and self.default else f"--{dashed}"

    def shown_default(self) -> str | None:
        """The default as the help and the docs show it (None: not shown, e.g. for a switch)."""
        if self.default_text is not None:
            return self.default_text
        if self.switch or self.required or self.default in (None, "", [], ()):
            return None
        if isinstance(self.default, (list, tuple)):
            return ",".join(str(v) for v in self.default)
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)

    @property
    def help_text(self) -> str:
        """The help with the default appended: ``rows of random tokens (default 10)``."""
        text = self.help() if callable(self.help) else self.help
        shown = self.shown_default()
        return f"{text} (default {shown})" if shown is not None else text

    def add_to(self, parser: argparse.ArgumentParser | Any) -> None:
        """Add this option to ``parser`` (or to an argument group)."""
        kwargs: dict[str, Any] = {"help": self.help_text.replace("%", "%%")}
        if self.switch:
            kwargs["action"] = "store_false" if self.default else "store_true"
        else:
            kwargs |= {"default": self.default, "type": self.parse, "choices": self.choices}
            kwargs |= {"metavar": self.metavar, "nargs": self.nargs}
            kwargs = {k: v for k, v in kwargs.items() if v is not None or k == "default"}
        if self.positional:
            parser.add_argument(self.name, **kwargs)
            return
        if self.required:
            kwargs["required"] = True
        if not self.switch and self.metavar is None and self.flag is not None:  # argparse's, from the flag
            kwargs["metavar"] = self.name.lstrip("-").replace("-", "_").upper()
        parser.add_argument(self.name, dest=self.dest, **kwargs)


def option(default: Any = MISSING, *, default_factory: Callable[[], Any] | Any = MISSING, **facts: Any):
    """A dataclass field that is also a command-line option (``facts``: :class:`Option`'s attributes).

    Example:
        ``batch: int = option(10, help="rows of random tokens", parse=positive)``
    """
    return field(default=default, default_factory=default_factory, metadata={"option": Option(**facts)})


def no_option(default: Any):
    """A field that is not on the command line, also where a base class declares an option for it.

    Example:
        ``top: int = no_option(ScanConfig.top)`` (a job that lists no heads)
    """
    return field(default=default, metadata={"option": None})


def option_of(config: type, name: str) -> Option | None:
    """The :class:`Option` declared for field ``name`` of ``config`` or of the nearest base declaring one.

    A subclass may redeclare a field with a plain new default (``batch: int = 4``) and keep its option.
    """
    for klass in config.__mro__:
        declared = getattr(klass, "__dataclass_fields__", {}).get(name)
        if declared is not None and "option" in declared.metadata:
            return declared.metadata["option"]
    return None


def like(config: type, name: str, default: Any = MISSING, **changes: Any):
    """A field declared as ``config``'s field ``name`` (same option and default), with ``changes``.

    For a config that shares options without inheriting them, e.g. ``batch: int = like(ScanConfig, "batch")``.
    """
    metadata = {"option": replace(option_of(config, name), **changes)}
    if default is MISSING:
        source = config.__dataclass_fields__[name]
        if source.default_factory is not MISSING:
            return field(default_factory=source.default_factory, metadata=metadata)
        default = source.default
    return field(default=default, metadata=metadata)


def config_options(config: type) -> list[Option]:
    """Every command-line option of the dataclass ``config``, in field order, resolved (dest, default, type).

    Fields without an option (anywhere in the bases) are not on the command line.
    """
    if not is_dataclass(config):
        raise TypeError(f"{config!r} is not a dataclass")
    found = []
    for f in fields(config):
        declared = option_of(config, f.name)
        if declared is None:
            continue
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        if declared.cli_default is not MISSING:
            default = declared.cli_default
        type_name = declared.type_name or str(f.type).replace(" | None", "")
        found.append(replace(declared, dest=f.name, default=default, type_name=type_name))
    return found


def _target(parser: argparse.ArgumentParser, title: str | None):
    """``parser`` itself, or its argument group ``title`` (made on first use)."""
    if title is None:
        return parser
    for group in parser._action_groups:
        if group.title == title:
            return group
    return parser.add_argument_group(title, GROUPS.get(title))


def add_options(parser: argparse.ArgumentParser, config: type | Iterable[Option], only: Iterable[str] = ()) -> None:
    """Add ``config``'s options (a config dataclass, or resolved :class:`Option` s) to ``parser``.

    Args:
        parser: The (sub)parser.
        config: A dataclass with :func:`option` fields, or options already resolved.
        only: Field names to add (default: every option).
    """
    chosen = set(only)
    for opt in config_options(config) if isinstance(config, type) else list(config):
        if not chosen or opt.dest in chosen:
            opt.add_to(_target(parser, opt.group))


def config_from(config: type, args: argparse.Namespace):
    """The ``config`` that parsed arguments describe; options the parser did not have keep the field default."""
    values = {}
    options = [o for o in config_options(config) if hasattr(args, o.dest)]
    for opt in options:
        value = getattr(args, opt.dest)
        values[opt.dest] = opt.finish(value) if opt.finish is not None and value is not None else value
    for opt in options:
        if opt.implies is not None and values[opt.dest]:
            values[opt.implies] = True
    return config(**values)


def positive(text: str) -> int:
    """An integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def count(text: str) -> int:
    """An integer of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def seconds(text: str) -> float:
    """A positive number of seconds."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def int_list(text: str) -> list[int]:
    """Comma- or space-separated integers: ``16,17,18``."""
    try:
        return [int(part) for part in text.replace(",", " ").split()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from error


def exact_losses_arg(text: str) -> int | None:
    """``--exact-losses``: ``all`` (None: every loss effect exact) or a count of at least 0."""
    if text == "all":
        return None
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 'all' or at least 0, got {value}")
    return value


def word_list(text: str) -> list[str]:
    """Comma- or space-separated words: ``heads,residual``."""
    return text.replace(",", " ").split()


def word_tuple(text: str) -> tuple[str, ...]:
    """Comma- or space-separated words as a tuple: ``k,v``."""
    return tuple(word_list(text))
