"""Give a two-class network trained with a free cosine head the antipodal head.

A checkpoint written before the antipodal head existed has two free unit prototypes
``p_0, p_1``. :func:`with_antipodal_head` rebuilds the network with ``head='antipodal'`` and the
axis ``a = normalize(p_1) - normalize(p_0)`` (normalised): the trunk and temperature are copied,
and the head's decision is unchanged, since for unit prototypes ``<f, p_1> > <f, p_0>``
exactly when ``<f, a> > 0``. Only the logits' values change (``scale * (-<f, a>, <f, a>)``),
and with them the angular margins the l2 certificate sees: a feature on ``p_1`` has margin
pi - 2 angle(p_1, a), no more than before, until features are pulled onto ``(-a, a)`` by
fine-tuning or by a booster (docs/model.md).
"""
from __future__ import annotations

import dataclasses

import torch

from mmcert_ros.models.network import SparseRGBDNet


def with_antipodal_head(model: SparseRGBDNet) -> SparseRGBDNet:
    """A copy of a two-class ``model`` with the antipodal head and the same decisions.

    :raises ValueError: the model does not have two classes.
    """
    if model.num_classes != 2:
        raise ValueError(f'the antipodal head needs 2 classes, the model has {model.num_classes}')
    config = dataclasses.replace(model.config, head='antipodal')
    converted = SparseRGBDNet(config).to(next(model.parameters()).device)
    state = {name: value for name, value in model.state_dict().items()
             if not name.startswith(('prototypes', 'parametrizations.prototypes'))}
    missing, unexpected = converted.load_state_dict(state, strict=False)
    if unexpected or any(not name.startswith('parametrizations.prototypes') for name in missing):
        raise ValueError(f'weights do not fit: missing {missing}, unexpected {unexpected}')
    with torch.no_grad():
        converted.prototypes = model.prototypes.detach().clone()
    return converted.train(model.training)
