"""Real multi-token entities from offline data: country, language and currency names.

The names come from ``pycountry`` (the ISO 3166 country, ISO 639 language and ISO 4217 currency
tables that the Debian ``iso-codes`` project maintains), so no network is needed. Each name is
tokenized as it appears mid-text (after a space) and kept when the tokenizer splits it into
``min_tokens`` to ``max_tokens`` tokens: a multi-token word or name, the unit a concept induction
head copies (Feucht et al. 2025 use CounterFact subjects, which are not available offline).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import InductionError

__all__ = ["ENTITY_SOURCE", "Entity", "entity_names", "tokenized_entities"]

ENTITY_SOURCE = "pycountry (ISO 3166 countries, ISO 639 languages with a two-letter code, ISO 4217 currencies)"
"""Where :func:`entity_names` takes its names from, as results name it."""


@dataclass(frozen=True)
class Entity:
    """One entity: its text and its tokens.

    Attributes:
        name: The text (``"Guatemala"``).
        ids: Its token ids as they appear after a space, 2 to 5 of them.
    """

    name: str
    ids: tuple[int, ...]


def entity_names() -> list[str]:
    """Country, language and currency names from ``pycountry``, deduplicated, in a fixed order.

    Countries give their common name where ISO has one (``"Bolivia"``), else their name; languages
    only those with a two-letter ISO 639-1 code (the widely spoken ones, not the 7,900 of ISO 639-3).
    Names with a comma or parentheses (``"Korea, Republic of"``) are left out.

    Raises:
        InductionError: When ``pycountry`` is not installed, naming the fix.
    """
    try:
        import pycountry
    except ImportError as error:  # a dependency: only a broken install lacks it
        raise InductionError("the entity list needs pycountry: pip install pycountry") from error
    names = [getattr(c, "common_name", None) or c.name for c in pycountry.countries]
    names += [lang.name for lang in pycountry.languages if hasattr(lang, "alpha_2")]
    names += [c.name for c in pycountry.currencies]
    seen: dict[str, None] = {}
    for name in names:
        if not any(ch in name for ch in ",()") and name not in seen:
            seen[name] = None
    return list(seen)


def tokenized_entities(
    tokenizer, names: list[str], *, min_tokens: int = 2, max_tokens: int = 5, vocab_size: int | None = None
) -> list[Entity]:
    """The names the tokenizer splits into ``min_tokens``..``max_tokens`` tokens (after a space).

    Args:
        tokenizer: A Hugging Face tokenizer.
        names: Candidate names (e.g. :func:`entity_names`).
        min_tokens: Fewest tokens kept (at least 2: a one-token name is not multi-token).
        max_tokens: Most tokens kept.
        vocab_size: When given, names with an id outside ``[0, vocab_size)`` are dropped.

    Returns:
        The kept :class:`Entity` objects, in the order of ``names``.
    """
    if not 2 <= min_tokens <= max_tokens:
        raise InductionError(f"entities need 2 <= min_tokens <= max_tokens, got {min_tokens}..{max_tokens}")
    kept = []
    for name in names:
        ids = tuple(tokenizer.encode(" " + name, add_special_tokens=False))
        if min_tokens <= len(ids) <= max_tokens and (vocab_size is None or max(ids) < vocab_size):
            kept.append(Entity(name, ids))
    return kept
