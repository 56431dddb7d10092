"""The no-clean-reference training loss of EMSR (paper eq. 16).

    L = l1 * l(f(y), x) + l2 * l(f(y'), x) + l3 * l(f(y), f(y'))

x is the noisy HR reference, y the LR input, y' a noisier copy of y sent through the same weights,
l the mean absolute (L1) or mean squared (L2) error.
"""

from __future__ import annotations

import torch

__all__ = ["pixel_loss", "emsr_loss"]


def pixel_loss(a: torch.Tensor, b: torch.Tensor, norm: str) -> torch.Tensor:
    """Mean |a - b| (``"l1"``) or mean (a - b)^2 (``"l2"``)."""
    if norm == "l1":
        return (a - b).abs().mean()
    if norm == "l2":
        return (a - b).square().mean()
    raise ValueError(f"loss must be 'l1' or 'l2', got {norm!r}")


def emsr_loss(
    out: torch.Tensor,
    target: torch.Tensor,
    out_noisier: torch.Tensor | None = None,
    *,
    norm: str = "l1",
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its terms.

    Parameters
    ----------
    out, target : Tensor
        f(y) and the reference x, same shape.
    out_noisier : Tensor or None
        f(y'); None trains without the noisier branch (only the first term).
    norm : {"l1", "l2"}
    weights : (l1, l2, l3)
        The lambdas of eq. 16 (paper: all 1).

    Returns
    -------
    total : Tensor
        The weighted sum, for ``backward()``.
    terms : dict
        ``{"ref": l(f(y), x), "noisier_ref": l(f(y'), x), "consistency": l(f(y), f(y')), "total": ...}``
        as floats (the last two are absent without the noisier branch).
    """
    w1, w2, w3 = weights
    ref = pixel_loss(out, target, norm)
    total = w1 * ref
    terms = {"ref": ref.item()}
    if out_noisier is not None:
        noisier_ref = pixel_loss(out_noisier, target, norm)
        consistency = pixel_loss(out, out_noisier, norm)
        total = total + w2 * noisier_ref + w3 * consistency
        terms.update(noisier_ref=noisier_ref.item(), consistency=consistency.item())
    terms["total"] = total.item()
    return total, terms
