"""How a layer's heads sit side by side in one tensor: the output projection's input (and the columns of
its weight) hold head after head, ``d_head`` features each; head ``i``'s are ``i * d_head : (i + 1) * d_head``.

:func:`split_heads` is the one definition of that split. It is a view (no copy, whatever the strides), so
code that writes into the split writes into the tensor, and numbers are those of the unsplit tensor.
"""

from __future__ import annotations

import torch

__all__ = ["split_heads"]


def split_heads(x: torch.Tensor, n_heads: int, d_head: int) -> torch.Tensor:
    """Each head's features of ``x`` on axes of their own.

    Args:
        x: ``[..., n_heads * d_head]`` (an output projection's input, or its ``[d_model, n_heads * d_head]``
            weight).
        n_heads: Heads of the layer.
        d_head: Features per head.

    Returns:
        ``[..., n_heads, d_head]``, a view of ``x``.

    Example:
        >>> split_heads(torch.arange(6.0).reshape(1, 6), n_heads=3, d_head=2)[0, 1].tolist()
        [2.0, 3.0]
    """
    return x.unflatten(-1, (n_heads, d_head))
