"""MMCert for classifiers with any number of modalities (docs/classification.md).

A base classifier ``f(m_1, ..., m_T) -> logits (B, C)`` takes T inputs, each with *element
axes*: the axes whose positions are the elements an attacker may change and the sampler keeps
or drops (the pixels of an image, the frames of an audio clip or a video, the points of a
cloud); every other axis (channels, mel bins) belongs to the element. Each of N samples keeps
exactly ``k_i`` of the ``n_i`` elements of modality i, uniformly without replacement and
independently per sample and modality (:func:`mmcert_ros.certify.l0.sampling.draw_keep_masks`),
and sets every other element to 0. The votes of the N samples give the certificate of
:func:`~mmcert_ros.certify.l0.bounds.class_probability_bounds`: with probability at least
``1 - alpha`` over the sampling, the label is the smoothed classifier's prediction under
every attack within a certified budget. Nothing here imports the ROS client library.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mmcert_ros.certify.l0.bounds import (ClassBounds, class_probability_bounds, delta,
                                          largest_ray_budget)
from mmcert_ros.certify.cancel import CancelToken
from mmcert_ros.certify.l0.sampling import draw_keep_masks, kept_count, make_generator
from mmcert_ros.device import resolve_device


@dataclass(frozen=True)
class Modality:
    """How one input of the classifier is sub-sampled.

    :ivar element_axes: axes of the *un-batched* input that index its elements, ascending:
        ``(0, 1)`` for an ``(H, W, 3)`` image (pixels), ``(0,)`` for a ``(frames, mels)``
        spectrogram or a ``(frames, H, W, 3)`` video (whole frames).
    :ivar keep_fraction: share of the elements kept per sample, ``k = round(f n)``, in [1, n].
    """

    element_axes: tuple[int, ...]
    keep_fraction: float

    def __post_init__(self) -> None:
        axes = tuple(int(a) for a in self.element_axes)
        if not axes or any(a < 0 for a in axes) or list(axes) != sorted(set(axes)):
            raise ValueError(f'element_axes must be distinct non-negative axes in ascending '
                             f'order, got {self.element_axes!r}')
        object.__setattr__(self, 'element_axes', axes)
        if not 0.0 < self.keep_fraction <= 1.0:
            raise ValueError(f'keep_fraction must lie in (0, 1], got {self.keep_fraction}')

    def num_elements(self, shape: Sequence[int]) -> int:
        """n: elements of an un-batched input of this ``shape``."""
        if self.element_axes[-1] >= len(shape):
            raise ValueError(f'element axes {self.element_axes} do not fit an input of shape '
                             f'{tuple(shape)}')
        return math.prod(int(shape[a]) for a in self.element_axes)

    def kept(self, shape: Sequence[int]) -> int:
        """k: elements kept per sample for an input of this ``shape``."""
        return kept_count(self.keep_fraction, self.num_elements(shape))


def ablate(inputs: Sequence[torch.Tensor], modalities: Sequence[Modality],
           generator: torch.Generator) -> list[torch.Tensor]:
    """Sub-sample a batch of inputs, one independent exact-k mask per row and modality.

    The same function serves certification (one input expanded to a batch) and training, so a
    model can be trained on exactly the input distribution it is certified with.

    :param inputs: T tensors, modality i of shape ``(B, *shape_i)``.
    :returns: T tensors of the same shapes, every dropped element (all its entries) set to 0.
    """
    if len(inputs) != len(modalities):
        raise ValueError(f'{len(modalities)} modalities configured, {len(inputs)} inputs given')
    ablated = []
    for values, modality in zip(inputs, modalities):
        batch, shape = values.shape[0], values.shape[1:]
        keep = draw_keep_masks(batch, modality.num_elements(shape), modality.kept(shape),
                               generator, values.device, values.dtype)
        mask_shape = [size if axis in modality.element_axes else 1
                      for axis, size in enumerate(shape)]
        ablated.append(values * keep.view(batch, *mask_shape))
    return ablated


@dataclass(frozen=True)
class ClassCertificate:
    """The certified prediction of one multimodal input.

    With probability at least ``1 - alpha`` over the N samples, for every budget
    ``r = (r_1, ..., r_T)`` at which :meth:`certified_at` is True, the smoothed classifier
    (the most likely vote of the sub-sampled base classifier) predicts ``label`` at every
    input that differs from this one in at most ``r_i`` elements of modality i.

    :ivar label: the top class A of the votes (ties: smallest class id).
    :ivar counts: ``(C,)`` int64 votes per class.
    :ivar bounds: p_A lower and p_B upper bounds
        (:class:`~mmcert_ros.certify.l0.bounds.ClassBounds`).
    :ivar n: elements per modality; ``k``: kept per sample.
    """

    label: int
    counts: np.ndarray
    bounds: ClassBounds
    n: tuple[int, ...]
    k: tuple[int, ...]
    num_samples: int
    alpha: float

    @property
    def gap(self) -> float:
        """``p_A_lower - p_B_upper``."""
        return self.bounds.p_a_lower - self.bounds.p_b_upper

    def certified_at(self, budget: Sequence[int]) -> bool:
        """True iff ``p_A_lower - p_B_upper > 2 delta(n, k, budget)``."""
        return self.gap > 2.0 * delta(self.n, self.k, budget)

    def radius(self, ray: Sequence[int]) -> int:
        """Largest t certified on the ray ``r(t) = t * ray``; -1 = not certified at t = 0."""
        return largest_ray_budget(self.gap, self.n, self.k, ray)


class CertifiedClassifier:
    """MMCert certification of a base classifier over T modalities.

    :param model: ``model(m_1, ..., m_T) -> logits (B, C)``, each ``m_i`` of shape
        ``(B, *shape_i)`` with dropped elements 0 (a torch module is put in eval mode).
    :param modalities: one :class:`Modality` per input, in the model's argument order.
    :param num_samples: N, sub-sampled copies per input.
    :param alpha: error probability of each certificate.
    :param batch_size: samples per forward pass.
    :param seed: fixed seed for reproducible evaluation; None = fresh OS entropy per input
        (deployment: an attacker must not predict the masks).
    :param device: 'cpu', 'cuda', 'cuda:N' or 'auto'.
    """

    def __init__(self, model: Callable[..., torch.Tensor], modalities: Sequence[Modality],
                 num_samples: int = 100, alpha: float = 0.001, batch_size: int = 16,
                 seed: int | None = None, device: str = 'cpu') -> None:
        if not modalities:
            raise ValueError('need at least one modality')
        for name, value in (('num_samples', num_samples), ('batch_size', batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be a positive integer, got {value!r}')
        if not 0.0 < alpha < 1.0:
            raise ValueError(f'alpha must lie in (0, 1), got {alpha}')
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval() if isinstance(model, torch.nn.Module) else model
        self.modalities = tuple(modalities)
        self.num_samples, self.alpha = num_samples, float(alpha)
        self.batch_size, self.seed = batch_size, seed

    def certify(self, *inputs: torch.Tensor | np.ndarray,
                cancel: CancelToken | None = None) -> ClassCertificate:
        """Certify one input given as T un-batched tensors (or arrays), one per modality.

        :param cancel: checked before every micro-batch; cancelled or past its deadline, the
            input is abandoned with :class:`~mmcert_ros.certify.cancel.FrameCancelled`.
        """
        tensors = [torch.as_tensor(x, device=self.device) for x in inputs]
        if len(tensors) != len(self.modalities):
            raise ValueError(f'{len(self.modalities)} modalities configured, '
                             f'{len(tensors)} inputs given')
        n = tuple(m.num_elements(x.shape) for m, x in zip(self.modalities, tensors))
        k = tuple(m.kept(x.shape) for m, x in zip(self.modalities, tensors))
        counts = self._vote(tensors, cancel or CancelToken())
        bounds = class_probability_bounds(counts, self.alpha)
        return ClassCertificate(label=bounds.label, counts=counts, bounds=bounds, n=n, k=k,
                                num_samples=self.num_samples, alpha=self.alpha)

    def _vote(self, inputs: list[torch.Tensor], cancel: CancelToken) -> np.ndarray:
        """Votes per class over the N samples, ``(C,)`` int64."""
        generator = make_generator(self.seed, self.device)
        counts = None
        for first in range(0, self.num_samples, self.batch_size):
            cancel.check()
            batch = min(self.batch_size, self.num_samples - first)
            expanded = [x.unsqueeze(0).expand(batch, *x.shape) for x in inputs]
            with torch.inference_mode():
                logits = self.model(*ablate(expanded, self.modalities, generator))
            if logits.ndim != 2 or logits.shape[0] != batch or logits.shape[1] < 2:
                raise ValueError(f'model returned logits of shape {tuple(logits.shape)}, '
                                 f'expected ({batch}, C >= 2)')
            votes = torch.bincount(logits.argmax(dim=1), minlength=logits.shape[1])
            counts = votes if counts is None else counts + votes
        return counts.cpu().numpy().astype(np.int64)
