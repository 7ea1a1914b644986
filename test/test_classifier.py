"""MMCert for multimodal classifiers: bounds against oracles, the sampler, and a toy model."""
from __future__ import annotations

from fractions import Fraction
from math import comb

import numpy as np
import pytest
import torch
from scipy.special import gammaln, xlogy
from statsmodels.stats.proportion import proportion_confint

from mmcert_ros.certify import (CancelToken, CertifiedClassifier, FrameCancelled, Modality,
                                ablate, class_probability_bounds, delta, largest_ray_budget)
from mmcert_ros.certify.l0.sampling import make_generator

torch.set_num_threads(1)


@pytest.mark.parametrize('seed', range(5))
def test_bounds_are_bonferroni_clopper_pearson_intervals(seed):
    rng = np.random.default_rng(seed)
    num_classes = int(rng.integers(2, 6))
    total = int(rng.choice([1, 7, 100, 1000]))
    counts = rng.multinomial(total, rng.dirichlet(np.full(num_classes, 0.5)))
    alpha = float(rng.choice([0.001, 0.05, 0.3]))
    bounds = class_probability_bounds(counts, alpha)
    low, high = proportion_confint(counts, total, alpha=alpha / num_classes, method='beta')
    low, high = np.nan_to_num(low, nan=0.0), np.nan_to_num(high, nan=1.0)
    label = int(np.argmax(counts))
    others = [c for c in range(num_classes) if c != label]
    assert bounds.label == label and counts[bounds.runner_up] == counts[others].max()
    assert bounds.p_a_lower == pytest.approx(low[label], rel=1e-9, abs=1e-12)
    assert bounds.p_b_upper == pytest.approx(min(high[others].max(), 1 - low[label]),
                                             rel=1e-9, abs=1e-12)


def test_bounds_edge_cases_and_errors():
    unanimous = class_probability_bounds([50, 0], 0.01)
    assert unanimous.label == 0 and unanimous.runner_up == 1
    assert unanimous.p_a_lower == pytest.approx((0.01 / 4) ** (1 / 50))  # CP lower at x = n
    assert unanimous.p_b_upper == pytest.approx(1 - (0.01 / 4) ** (1 / 50))
    assert class_probability_bounds([3, 3, 1], 0.1).label == 0  # ties: smallest class id
    for bad in ([5], [[1, 2]], [1.0, 2.0], [-1, 3], [0, 0]):
        with pytest.raises(ValueError):
            class_probability_bounds(bad, 0.1)
    with pytest.raises(ValueError, match='alpha'):
        class_probability_bounds([3, 1], 1.0)


def _compositions(total, parts):
    if parts == 1:
        return np.array([[total]])
    return np.array([[first, *rest] for first in range(total + 1)
                     for rest in _compositions(total - first, parts - 1)])


@pytest.mark.parametrize('num_classes,num_samples', [(2, 15), (3, 12), (4, 9)])
def test_the_selected_class_bounds_fail_with_probability_at_most_alpha(num_classes,
                                                                       num_samples):
    """Exact multinomial enumeration: P(p_A < p_A_lower or some p_B > p_B_upper) <= alpha for
    A picked from the same votes, on random and corner probability vectors."""
    rng = np.random.default_rng(num_classes)
    votes = _compositions(num_samples, num_classes)
    log_coef = gammaln(num_samples + 1) - gammaln(votes + 1).sum(axis=1)
    vectors = np.concatenate([rng.dirichlet(np.ones(num_classes), 300),
                              np.full((1, num_classes), 1 / num_classes),
                              np.eye(num_classes)[:1] * 0.5 + 0.5 / num_classes])
    for alpha in (0.05, 0.3):
        bounds = [class_probability_bounds(v, alpha) for v in votes]
        for p in vectors:
            pmf = np.exp(log_coef + sum(xlogy(votes[:, j], p[j]) for j in range(num_classes)))
            fails = np.array([p[b.label] < b.p_a_lower
                              or max(np.delete(p, b.label)) > b.p_b_upper for b in bounds])
            assert pmf[fails].sum() <= alpha + 1e-12, (alpha, p)


def _exact_delta(n, k, r):
    survival = Fraction(1)
    for n_i, k_i, r_i in zip(n, k, r):
        survival *= Fraction(comb(n_i - r_i, k_i), comb(n_i, k_i))
    return 1 - survival


def test_delta_for_four_modalities_matches_exact_rationals():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = rng.integers(1, 300, 4)
        k = [int(rng.integers(1, n_i + 1)) for n_i in n]
        r = [int(rng.integers(0, n_i - k_i + 2)) for n_i, k_i in zip(n, k)]
        expected = _exact_delta(n.tolist(), k, [min(r_i, n_i) for r_i, n_i in zip(r, n)])
        assert delta(n, k, r) == pytest.approx(float(expected), rel=1e-12, abs=1e-15)


def test_largest_ray_budget_matches_a_linear_scan():
    n, k = (40, 9, 300), (8, 2, 12)
    for ray in ((1, 0, 0), (2, 1, 5), (0, 1, 0), (1, 1, 1)):
        for gap in (-0.1, 0.0, 0.05, 0.3, 0.7, 0.99, 1.0):
            best = -1
            for t in range(0, 400):
                if gap > 2 * float(_exact_delta(n, k, [min(t * a, n_i)
                                                       for a, n_i in zip(ray, n)])):
                    best = t
                else:
                    break
            assert largest_ray_budget(gap, n, k, ray) == best, (ray, gap)
    with pytest.raises(ValueError, match='ray'):
        largest_ray_budget(0.5, n, k, (0, 0, 0))


def test_ablate_keeps_exactly_k_whole_elements_per_row_and_modality():
    image = torch.rand(6, 10, 12, 3) + 0.1      # elements: pixels (axes 0, 1 of (H, W, 3))
    video = torch.rand(6, 8, 4, 4, 3) + 0.1     # elements: frames (axis 0)
    spectrogram = torch.rand(6, 5, 30) + 0.1    # elements: frames on axis 1 of (mels, frames)
    modalities = [Modality((0, 1), 0.1), Modality((0,), 0.25), Modality((1,), 0.2)]
    out = ablate([image, video, spectrogram], modalities, make_generator(3, 'cpu'))
    assert [o.shape for o in out] == [image.shape, video.shape, spectrogram.shape]
    pixel_kept = out[0].ne(0).any(dim=3)
    assert (pixel_kept.sum(dim=(1, 2)) == 12).all()          # round(0.1 * 120)
    assert torch.equal(out[0].ne(0), pixel_kept[..., None].expand_as(out[0]))
    frame_kept = out[1].ne(0).flatten(2).any(dim=2)
    assert (frame_kept.sum(dim=1) == 2).all()
    assert torch.equal(out[1].ne(0), frame_kept[:, :, None, None, None].expand_as(out[1]))
    audio_kept = out[2].ne(0).any(dim=1)
    assert (audio_kept.sum(dim=1) == 6).all()
    torch.testing.assert_close(out[2], spectrogram * audio_kept[:, None, :])
    assert not torch.equal(frame_kept[0], frame_kept[1]) or not torch.equal(frame_kept[1],
                                                                            frame_kept[2])
    with pytest.raises(ValueError, match='ascending'):
        Modality((1, 0), 0.5)
    with pytest.raises(ValueError, match='do not fit'):
        ablate([torch.ones(2, 3)], [Modality((1,), 0.5)], make_generator(0, 'cpu'))


# --- a small audio-visual toy model, trained here --------------------------------------------

AUDIO_FRAMES, MELS, VIDEO_FRAMES, VIDEO_DIM, CLASSES = 200, 6, 32, 12, 3
MODALITIES = [Modality((0,), 0.05), Modality((0,), 0.0625)]   # k = 10 of 200, 2 of 32


def _toy_data(count, rng, means):
    labels = rng.integers(0, CLASSES, count)
    audio = means[0][labels][:, None, :] + rng.normal(0, 1.0, (count, AUDIO_FRAMES, MELS))
    video = means[1][labels][:, None, :] + rng.normal(0, 1.0, (count, VIDEO_FRAMES, VIDEO_DIM))
    return (torch.tensor(audio, dtype=torch.float32), torch.tensor(video, dtype=torch.float32),
            torch.tensor(labels))


class AudioVisualNet(torch.nn.Module):
    """Mean of the kept frames per modality (dropped frames are all-zero), one linear layer
    each, logits summed."""

    def __init__(self) -> None:
        super().__init__()
        self.audio = torch.nn.Linear(MELS, CLASSES)
        self.video = torch.nn.Linear(VIDEO_DIM, CLASSES)

    @staticmethod
    def kept_mean(x: torch.Tensor) -> torch.Tensor:
        kept = x.ne(0).any(dim=2, keepdim=True).to(x.dtype)
        return x.sum(dim=1) / kept.sum(dim=1).clamp(min=1)

    def forward(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        return self.audio(self.kept_mean(audio)) + self.video(self.kept_mean(video))


@pytest.fixture(scope='module')
def toy():
    rng = np.random.default_rng(0)
    means = (rng.normal(0, 1, (CLASSES, MELS)), rng.normal(0, 1, (CLASSES, VIDEO_DIM)))
    audio, video, labels = _toy_data(600, rng, means)
    torch.manual_seed(0)
    model = AudioVisualNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    generator = make_generator(1, 'cpu')
    for _ in range(150):   # trained on sub-sampled inputs, as certified
        rows = torch.randint(0, 600, (64,), generator=generator)
        inputs = ablate([audio[rows], video[rows]], MODALITIES, generator)
        loss = torch.nn.functional.cross_entropy(model(*inputs), labels[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), means


def _attacked(audio, video, means, runner_up, t):
    audio, video = audio.clone(), video.clone()
    audio[:2 * t] = torch.tensor(means[0][runner_up] * 4, dtype=torch.float32)
    video[:t] = torch.tensor(means[1][runner_up] * 4, dtype=torch.float32)
    return audio, video


def _smallest_flipping_budget(model, means, audio, video, cert, limit=40):
    """Smallest t at which the attack on ray (2, 1) changes the smoothed label."""
    estimate = CertifiedClassifier(model, MODALITIES, num_samples=2000, alpha=0.01,
                                   batch_size=1000, seed=99)
    for t in range(1, limit):
        attacked = estimate.certify(*_attacked(audio, video, means, cert.bounds.runner_up, t))
        if attacked.label != cert.label:
            return t
    return limit


def test_toy_audio_visual_model_is_certified_and_no_attack_beats_the_certificate(toy):
    model, means = toy
    audio, video, labels = _toy_data(20, np.random.default_rng(1), means)
    classifier = CertifiedClassifier(model, MODALITIES, num_samples=300, alpha=0.01,
                                     batch_size=64, seed=2)
    ray = (2, 1)   # r_audio = 2 r_video
    radii, correct = [], []
    for i in range(20):
        cert = classifier.certify(audio[i], video[i])
        assert cert.n == (200, 32) and cert.k == (10, 2) and cert.counts.sum() == 300
        radii.append(cert.radius(ray))
        correct.append(cert.label == int(labels[i]))
        t = radii[-1]
        assert cert.certified_at((t * 2, t)) == (t >= 0)
        assert t < 0 or not cert.certified_at(((t + 1) * 2, t + 1))
        if t >= 1 and i < 5:
            # the strongest simple attack on the ray: replace the changed frames by a large
            # multiple of the runner-up class's mean. The smoothed prediction (estimated with
            # many fresh samples) keeps the label within the certified budget, and the attack
            # is real: a larger budget flips it.
            smallest_flip = _smallest_flipping_budget(model, means, audio[i], video[i], cert)
            assert t < smallest_flip < 40, (i, t, smallest_flip)
    radii, correct = np.array(radii), np.array(correct)
    certified_accuracy = np.mean(correct & (radii >= 0))
    assert certified_accuracy >= 0.7, (radii, correct)
    assert (radii >= 1).sum() >= 5, radii


def test_same_seed_same_votes_fresh_seed_other_masks_and_cancel(toy):
    model, means = toy
    audio, video, _ = _toy_data(1, np.random.default_rng(2), means)
    fixed = CertifiedClassifier(model, MODALITIES, num_samples=50, seed=4, batch_size=16)
    first = fixed.certify(audio[0], video[0])
    np.testing.assert_array_equal(fixed.certify(audio[0].numpy(), video[0].numpy()).counts,
                                  first.counts)
    token = CancelToken()
    token.cancel('test')
    with pytest.raises(FrameCancelled):
        fixed.certify(audio[0], video[0], cancel=token)
    with pytest.raises(ValueError, match='2 modalities'):
        fixed.certify(audio[0])
    bad = CertifiedClassifier(lambda a, v: a.sum(dim=(1, 2)), MODALITIES, num_samples=4)
    with pytest.raises(ValueError, match='logits of shape'):
        bad.certify(audio[0], video[0])


def test_the_coupling_behind_delta_samples_avoiding_the_attack_vote_alike(toy):
    """With the same masks, a sample whose kept elements avoid every changed element gives
    the same vote on the attacked input; the share of touched samples matches delta."""
    model, means = toy
    audio, video, _ = _toy_data(1, np.random.default_rng(3), means)
    changed_audio, changed_video = audio[0].clone(), video[0].clone()
    changed_audio[:6] = 50.0
    changed_video[:2] = -50.0
    rows = 4000

    def votes_and_inputs(inputs):
        generator = make_generator(7, 'cpu')   # the same masks for both inputs
        ablated = ablate([x.unsqueeze(0).expand(rows, *x.shape) for x in inputs], MODALITIES,
                         generator)
        with torch.no_grad():
            return model(*ablated).argmax(dim=1), ablated

    clean_votes, clean = votes_and_inputs([audio[0], video[0]])
    attacked_votes, attacked = votes_and_inputs([changed_audio, changed_video])
    touched = ((attacked[0] != clean[0]).flatten(1).any(dim=1)
               | (attacked[1] != clean[1]).flatten(1).any(dim=1))
    assert torch.equal(attacked_votes[~touched], clean_votes[~touched])
    assert not torch.equal(attacked_votes, clean_votes)
    expected = delta((200, 32), (10, 2), (6, 2))
    share = touched.double().mean().item()
    assert abs(share - expected) < 4 * np.sqrt(expected * (1 - expected) / rows)


def test_modality_validation():
    with pytest.raises(ValueError, match='keep_fraction'):
        Modality((0,), 0.0)
    with pytest.raises(ValueError, match='at least one'):
        CertifiedClassifier(torch.nn.Identity(), [])
    with pytest.raises(ValueError, match='num_samples'):
        CertifiedClassifier(torch.nn.Identity(), [Modality((0,), 0.5)], num_samples=0)
    assert Modality([0, 2], 0.5).element_axes == (0, 2)
    assert Modality((0, 2), 0.5).num_elements((3, 7, 5)) == 15
