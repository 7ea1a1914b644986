"""The antipodal two-class head, its checkpoints and the conversion of cosine-head models."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmcert_ros.certify.l2 import feature_smoothing as fs
from mmcert_ros.certify.l0.sampling import make_generator, subsample
from mmcert_ros.models import NetworkConfig, build_model, load_model, save_checkpoint
from mmcert_ros.training.head import with_antipodal_head

torch.set_num_threads(1)


def _inputs(batch=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    rgb = torch.rand(batch, 3, 40, 64, generator=generator)
    depth = torch.rand(batch, 1, 20, 32, generator=generator) * 40
    return subsample(rgb, depth, 200, 40, make_generator(seed, 'cpu')).as_args()


def test_two_classes_get_antipodal_unit_prototypes_that_train_and_stay_antipodal():
    torch.manual_seed(0)
    model = build_model(NetworkConfig(width=4, feature_dim=6))
    assert model.config.head == 'antipodal'
    prototypes = model.prototypes
    torch.testing.assert_close(prototypes[0], -prototypes[1])
    torch.testing.assert_close(prototypes.norm(dim=1), torch.ones(2))
    labels, margin = fs.cosine_head_margin(prototypes[1].detach().numpy()[:, None],
                                           prototypes.detach().numpy())
    assert labels[0] == 1 and margin[0] == pytest.approx(math.pi, abs=1e-3)  # float32 axis
    before = prototypes.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    logits = model(*_inputs())
    F.cross_entropy(logits, torch.randint(0, 2, (4, 40, 64))).backward()
    optimizer.step()
    after = model.prototypes.detach()
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after[0], -after[1])
    torch.testing.assert_close(after.norm(dim=1), torch.ones(2))


def test_assigning_prototypes_stores_the_axis_and_keeps_decisions():
    torch.manual_seed(1)
    model = build_model(NetworkConfig(width=4, feature_dim=6))
    p = F.normalize(torch.randn(6), dim=0)
    with torch.no_grad():
        model.prototypes = torch.stack([p, -p])
    torch.testing.assert_close(model.prototypes, torch.stack([p, -p]))
    with pytest.raises(ValueError, match='2 classes'):
        with torch.no_grad():
            model.prototypes = torch.randn(3, 6)


def test_heads_are_validated_and_old_configs_load_as_cosine():
    assert NetworkConfig(num_classes=3).head == 'cosine'
    assert NetworkConfig(head='cosine').head == 'cosine'
    with pytest.raises(ValueError, match='num_classes = 2'):
        NetworkConfig(num_classes=3, head='antipodal')
    with pytest.raises(ValueError, match='head'):
        NetworkConfig(head='linear')
    legacy = NetworkConfig(head='cosine').as_dict()
    del legacy['head']
    assert NetworkConfig.from_dict(legacy).head == 'cosine'
    assert NetworkConfig.from_dict(NetworkConfig().as_dict()).head == 'antipodal'


def test_checkpoints_round_trip_both_heads(tmp_path):
    for head in ('antipodal', 'cosine'):
        torch.manual_seed(2)
        model = build_model(NetworkConfig(width=4, feature_dim=6, head=head)).eval()
        path = save_checkpoint(tmp_path / f'{head}.pt', model, {'purpose': 'test'})
        loaded = load_model(path)
        assert loaded.config.head == head
        torch.testing.assert_close(loaded.prototypes, model.prototypes)
        with torch.no_grad():
            torch.testing.assert_close(loaded(*_inputs()), model(*_inputs()))


def test_converting_a_cosine_head_keeps_every_decision():
    torch.manual_seed(3)
    cosine = build_model(NetworkConfig(width=4, feature_dim=6, head='cosine')).eval()
    converted = with_antipodal_head(cosine).eval()
    assert converted.config.head == 'antipodal' and not converted.training
    unit = F.normalize(cosine.prototypes.detach(), dim=1)
    torch.testing.assert_close(converted.prototypes[1].detach(), F.normalize(unit[1] - unit[0],
                                                                             dim=0))
    with torch.no_grad():
        for seed in range(3):
            inputs = _inputs(seed=seed)
            before, after = cosine(*inputs), converted(*inputs)
            clear = (before[:, 1] - before[:, 0]).abs() > 1e-4   # away from float ties
            assert clear.float().mean() > 0.99
            np.testing.assert_array_equal(before.argmax(1)[clear], after.argmax(1)[clear])
            torch.testing.assert_close(converted.features(*inputs), cosine.features(*inputs))
    with pytest.raises(ValueError, match='2 classes'):
        with_antipodal_head(build_model(NetworkConfig(num_classes=3, width=4, feature_dim=6)))


def test_shipped_model_has_the_antipodal_head():
    model = load_model(None)
    assert model.config.head == 'antipodal'
    torch.testing.assert_close(model.prototypes[0], -model.prototypes[1])
