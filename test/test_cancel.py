"""The engine's cancel token: a frame in flight stops at the next micro-batch, by any thread
or by a deadline, and nothing partial comes back."""
import threading
import time

import numpy as np
import pytest
import torch

from mmcert_ros.certify import CancelToken, CertifiedSegmenter, CertifyConfig, FrameCancelled


class CountingModel(torch.nn.Module):
    """Votes class 0 everywhere; counts its forward passes and can cancel from inside one."""

    num_classes = 2

    def __init__(self, cancel_at_call=None, token=None):
        super().__init__()
        self.calls = 0
        self.cancel_at_call = cancel_at_call
        self.token = token

    def forward(self, rgb, rgb_keep, depth, depth_keep):
        self.calls += 1
        if self.calls == self.cancel_at_call:
            threading.Thread(target=self.token.cancel, args=('parameter change',)).start()
            time.sleep(0.05)  # the other thread has set the flag before this batch ends
        return torch.zeros(rgb.shape[0], 2, *rgb.shape[-2:])


def frame():
    return np.zeros((6, 8, 3), np.uint8), np.ones((3, 4), np.float32)


def test_cancel_from_another_thread_stops_at_the_next_micro_batch():
    token = CancelToken()
    model = CountingModel(cancel_at_call=3, token=token)
    segmenter = CertifiedSegmenter(model, CertifyConfig(num_samples=100, batch_size=10, seed=0))
    with pytest.raises(FrameCancelled, match='parameter change') as raised:
        segmenter.certify(*frame(), cancel=token)
    assert raised.value.reason == 'parameter change'
    assert model.calls == 3  # of 10 micro-batches: none after the one running at the cancel


def test_a_cancelled_token_runs_no_forward_pass_and_a_fresh_one_runs_all():
    token = CancelToken()
    token.cancel()
    model = CountingModel()
    segmenter = CertifiedSegmenter(model, CertifyConfig(num_samples=20, batch_size=5, seed=0))
    with pytest.raises(FrameCancelled):
        segmenter.certify(*frame(), cancel=token)
    assert model.calls == 0 and token.cancelled
    certificate = segmenter.certify(*frame(), cancel=CancelToken())
    assert model.calls == 4 and certificate.top_counts.max() == 20


def test_a_passed_deadline_abandons_the_frame():
    token = CancelToken(deadline_s=time.monotonic() - 1.0)
    with pytest.raises(FrameCancelled, match='time budget exceeded'):
        CertifiedSegmenter(CountingModel(), CertifyConfig(num_samples=4)).certify(*frame(),
                                                                                  cancel=token)
    assert not token.cancelled
    assert CancelToken.with_budget(None).deadline_s is None
    assert CancelToken.with_budget(0).deadline_s is None
    assert CancelToken.with_budget(10.0).deadline_s > time.monotonic() + 9.0


def test_the_l2_certificate_checks_the_token_before_every_batch():
    from mmcert_ros.certify.l2.certifier import L2Certifier, L2Settings
    from mmcert_ros.models import NetworkConfig, build_model
    torch.manual_seed(0)
    model = build_model(NetworkConfig(width=4, feature_dim=4))
    calls = []
    features = model.features_kept  # the l2 path of a model that reads only kept pixels

    def counting_features(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            token.cancel('shutdown')
        return features(*args, **kwargs)

    model.features_kept = counting_features
    token = CancelToken()
    rgb, depth = np.zeros((16, 24, 3), np.uint8), np.ones((8, 12), np.float32)
    certifier = L2Certifier(model, L2Settings(sigma=0.25),
                            CertifyConfig(num_samples=64, batch_size=8, seed=0))
    with pytest.raises(FrameCancelled, match='shutdown'):
        certifier.certify(rgb, depth, cancel=token)
    assert len(calls) == 2          # no batch after the one running at the cancel
    expired = CancelToken(deadline_s=time.monotonic() - 1.0)
    with pytest.raises(FrameCancelled, match='time budget exceeded'):
        certifier.certify(rgb, depth, cancel=expired)
