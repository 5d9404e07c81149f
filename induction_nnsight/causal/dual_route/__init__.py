"""The dual route of induction (Feucht, Todd, Wallace, Bau 2025) in one place: token and concept
induction heads, measured as the paper's code measures them.

- :mod:`.entities`: real multi-token names from offline data (``pycountry``);
- :mod:`.prompts`: the rows (30 tokens before the newline, the span at a random start), random tokens
  as shuffled chunks of a text or uniform ids;
- :mod:`.attention`: value-weighted attention from the last position to chosen keys;
- :mod:`.copying`: one head's output patched at one position from clean into corrupt rows;
- :mod:`.dissociation`: the top-k mean-ablation curves on word-list copying of meaning and of tokens;
- :mod:`.probe`: all of it run on one model (:func:`dual_route`), with intervals and reliabilities.

Its charts are drawn by :mod:`induction_nnsight.figures.dual_route` and its command is
:mod:`induction_nnsight.app.dual_route_job`. Part of :mod:`induction_nnsight.causal`: may import what
that stage may import.
"""

from .entities import ENTITY_SOURCE, Entity, entity_names, tokenized_entities
from .probe import GRIDS, MEASURES, DualRouteProbe, DualRouteResult, dual_route, pick_entities, separator_id
from .prompts import RandomTokens

__all__ = [
    "ENTITY_SOURCE",
    "GRIDS",
    "MEASURES",
    "DualRouteProbe",
    "DualRouteResult",
    "Entity",
    "RandomTokens",
    "dual_route",
    "entity_names",
    "pick_entities",
    "separator_id",
    "tokenized_entities",
]
