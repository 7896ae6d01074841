"""A linear-chain conditional random field over per-token tag scores (Lafferty et al. 2001; Lample et al. 2016).

The score of a tag sequence ``y`` of a sentence of length ``n`` with emissions ``e`` (the encoder's ``(n, C)``
tag scores) is ``start[y_1] + sum_t e_t[y_t] + sum_{t>1} trans[y_{t-1}, y_t] + end[y_n]``; training minimises
``log Z - score(gold)``, with ``log Z`` from the forward algorithm, and decoding is Viterbi. All in log space.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CRF(nn.Module):
    """Transition scores between tags, plus start and end scores.

    Masks are right-padded prefixes (True at real tokens); every sentence has at least one token.

    Args:
        num_tags: number of tags ``C``.
    """

    def __init__(self, num_tags: int):
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be >= 1, got {num_tags}")
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))  # [from, to]
        self.start = nn.Parameter(torch.empty(num_tags))
        self.end = nn.Parameter(torch.empty(num_tags))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Small and uniform, so the emissions decide at first.
        for parameter in (self.transitions, self.start, self.end):
            nn.init.uniform_(parameter, -0.1, 0.1)

    def nll(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Negative log-likelihood of the gold tags.

        Args:
            emissions: ``(B, T, C)`` tag scores.
            tags: ``(B, T)`` gold tag ids; any value at padding.
            mask: ``(B, T)`` bool.

        Returns:
            ``(B,)`` per sentence.
        """
        return self.log_partition(emissions, mask) - self.score(emissions, tags, mask)

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """``(B,)`` unnormalised log-score of the tag sequences ``tags`` ``(B, T)``."""
        tags = tags.masked_fill(~mask, 0)  # padding may hold an ignore index
        weights = mask.to(emissions.dtype)  # (B, T)
        emitted = emissions.gather(-1, tags.unsqueeze(-1)).squeeze(-1)  # (B, T)
        moved = self.transitions[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
        last = tags.gather(1, (mask.sum(1, keepdim=True) - 1).clamp(min=0)).squeeze(1)  # (B,)
        return (self.start[tags[:, 0]] + (emitted * weights).sum(1) + (moved * weights[:, 1:]).sum(1)
                + self.end[last])

    def log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """``(B,)`` log of the sum of ``exp(score)`` over all tag sequences (the forward algorithm)."""
        alpha = self.start + emissions[:, 0]  # (B, C): log-sum over paths ending in each tag
        for t in range(1, emissions.shape[1]):
            step = torch.logsumexp(alpha.unsqueeze(2) + self.transitions, dim=1) + emissions[:, t]  # (B, C)
            alpha = torch.where(mask[:, t:t + 1], step, alpha)  # finished sentences keep their value
        return torch.logsumexp(alpha + self.end, dim=1)

    def viterbi(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """``(B, T)`` the highest-scoring tag sequences; 0 at padding."""
        batch, steps, num_tags = emissions.shape
        best = self.start + emissions[:, 0]  # (B, C): best score of a path ending in each tag
        stay = torch.arange(num_tags, device=emissions.device).expand(batch, num_tags)
        pointers = []
        for t in range(1, steps):
            scores, previous = (best.unsqueeze(2) + self.transitions).max(dim=1)  # (B, C) each
            running = mask[:, t:t + 1]
            best = torch.where(running, scores + emissions[:, t], best)
            # Past a sentence's end the pointer points at the same tag, so one backward pass serves all lengths.
            pointers.append(torch.where(running, previous, stay))
        tag = (best + self.end).argmax(dim=1)  # (B,)
        path = [tag]
        for previous in reversed(pointers):
            tag = previous.gather(1, tag.unsqueeze(1)).squeeze(1)
            path.append(tag)
        return torch.stack(path[::-1], dim=1).masked_fill(~mask, 0)
