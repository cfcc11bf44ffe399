"""Several independently trained networks run as one: their per-angle median is the output.

This module owns :class:`MedianEnsemble` (the torch module of a spec with ``members`` > 1),
:func:`median_angles` (the combining rule, written with ``sort`` so it exports to ONNX as
``TopK``) and :func:`build_network` (an :class:`~emgd.model.network.EmgNet` for one member,
an ensemble of them otherwise). Why: one training run's seed and early stop can leave a
network that misreads a gesture the others read well; the median of three ignores the one
that strays, where a mean would be pulled a third of the way towards it. Every member sees
the same window and the same history (the ensemble's own previous outputs in closed loop).
Imported only to train, export or benchmark (torch is the ``train`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor, nn

from emgd.errors import ModelError
from emgd.model.network import EmgNet
from emgd.model.spec import ModelSpec


def median_angles(values: Tensor) -> Tensor:
    """Median over the first axis; the mean of the two middle values for an even count.

    ``values`` has shape ``(members, B, n_outputs)``; the result ``(B, n_outputs)``.
    """
    count = values.shape[0]
    ordered = torch.sort(values, dim=0).values
    low, high = ordered[(count - 1) // 2], ordered[count // 2]
    return low if count % 2 else 0.5 * (low + high)


class MedianEnsemble(nn.Module):
    """Members of one spec, each a full :class:`EmgNet`, combined by :func:`median_angles`.

    Parameters
    ----------
    members:
        At least two networks whose specs are equal (``members = 1`` each). The ensemble's
        :attr:`spec` is theirs with ``members`` set to their count.
    """

    def __init__(self, members: Sequence[EmgNet]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ModelError(f"MedianEnsemble needs at least 2 members, got {len(members)}")
        first = members[0].spec
        for index, member in enumerate(members):
            if member.spec != first:
                raise ModelError(
                    f"MedianEnsemble: member {index}'s spec differs from member 0's "
                    "(every member must be the same network)"
                )
        self.members = nn.ModuleList(members)
        self.spec = replace(first, members=len(members))

    @property
    def nets(self) -> tuple[EmgNet, ...]:
        """The members, typed (``self.members`` is a plain ``nn.ModuleList``)."""
        return tuple(net for net in self.members if isinstance(net, EmgNet))

    def forward(self, emg: Tensor, history_deg: Tensor) -> Tensor:
        """The per-angle median of the members' angles (shapes as :meth:`EmgNet.forward`)."""
        return median_angles(torch.stack([net(emg, history_deg) for net in self.nets]))


def member_seed(seed: int, index: int, count: int) -> int:
    """The seed of member ``index`` of ``count`` for a run seeded ``seed``.

    ``seed·count + index``: a single network keeps ``seed``, and two runs with different
    seeds share no member.
    """
    return seed * count + index


def build_network(spec: ModelSpec, seed: int | None = None) -> EmgNet | MedianEnsemble:
    """The torch module of ``spec``: one :class:`EmgNet`, or a :class:`MedianEnsemble`.

    Member ``i`` is initialised from :func:`member_seed` (``None``: torch's generator).
    """
    if spec.members == 1:
        return EmgNet(spec, seed=seed)
    return MedianEnsemble(
        [
            EmgNet(spec.member, seed=None if seed is None else member_seed(seed, i, spec.members))
            for i in range(spec.members)
        ]
    )
