"""Inference backends: what runs the base model's forward passes inside the engine.

``prepare_model(model, precision, backend, device)`` turns the base model into the object
the engine calls (``CertifyConfig.precision`` and ``CertifyConfig.backend``):

- backend ``'torch'``: a model with ``for_inference`` (``SparseRGBDNet``) runs as its inference
  copy: batch norm folded, channels-last, weights in float32 ('fp32', the exact mode: same
  votes as the unfolded model up to float32 rounding), bfloat16 ('bf16', the fastest mode on
  CPUs with AVX-512 BF16 or AMX) or float16 ('fp16', for GPUs). Any other model runs as it
  is, under autocast for 'fp16' / 'bf16'.
- backends ``'onnxruntime'`` and ``'openvino'``: the dense part of ``SparseRGBDNet`` (pyramid
  in, grid logits out) exported to ONNX (:func:`export_onnx`) and run by ONNX Runtime (fp32)
  or OpenVINO (fp32, bf16, or 'int8': post-training quantized convolutions,
  :mod:`mmcert_ros.models.quantization`) on the CPU; densification stays in torch. They need
  the ``onnx`` and ``onnxruntime`` / ``openvino`` (and for int8 ``nncf``) packages
  (requirements-test.txt). The exported file also lets other engines (TensorRT, ...) run
  the model.

Every backend is a deterministic function of the sub-sampled input, so the certificate's
guarantee holds for it as for any base model: the certificate speaks about the ensemble of
the model as that backend runs it. fp32 backends differ only in the last bits; bf16 and int8
change the labels of some near-tied cells (README, Performance).
"""
from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from mmcert_ros.certify.config import BACKENDS
from mmcert_ros.models.packages import require_package

#: the backends that run the ONNX export of the dense part
EXPORTED_BACKENDS = ('onnxruntime', 'openvino')

PRECISION_DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def prepare_model(model: nn.Module, precision: str, backend: str, device: torch.device,
                  calibration: Callable[[nn.Module], list] | None = None) -> nn.Module:
    """The object the engine runs for ``model`` (see the module docstring); ``precision`` and
    ``backend`` as validated by :class:`~mmcert_ros.certify.CertifyConfig`; ``calibration``
    gives the int8 calibration inputs of a network (:class:`OpenVinoNet`; default
    :func:`mmcert_ros.models.calibration.calibration_levels`)."""
    if backend in EXPORTED_BACKENDS:  # the combination was validated by CertifyConfig
        if not all(callable(getattr(model, name, None))
                   for name in ('for_inference', 'pyramid_inputs', 'grid_logits_from_levels')):
            raise ValueError(f'backend {backend!r} exports SparseRGBDNet-like models only '
                             f'(for_inference, pyramid_inputs, grid_logits_from_levels); '
                             f'got {type(model).__name__}')
        if device.type != 'cpu':
            raise ValueError(f"backend {backend!r} runs on the CPU here; use device 'cpu'")
        if backend == 'openvino':
            return OpenVinoNet(model, precision, calibration=calibration)
        return OnnxRuntimeNet(model)
    if backend != 'torch':
        raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
    if callable(getattr(model, 'for_inference', None)):
        return model.for_inference(PRECISION_DTYPES[precision]).to(device)
    return model


class _GridHead(nn.Module):
    """The dense part of ``SparseRGBDNet`` as a module of tensors only (what is exported):
    the four pyramid levels in, grid logits ``(B, C, h, w)`` out."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, level0, level1, level2, level3):
        return self.network.grid_logits_from_levels([level0, level1, level2, level3])


def export_onnx(network: nn.Module, path: str | Path | io.BytesIO | None = None) -> bytes:
    """Export the dense part of ``network`` (a ``SparseRGBDNet``) to ONNX, float32, with
    batch and spatial sizes dynamic; inputs ``level0..level3`` (``pyramid_inputs``), output
    ``grid_logits``. Writes ``path`` when given and returns the serialized model."""
    head = _GridHead(network.for_inference(torch.float32)
                     .to(memory_format=torch.contiguous_format))
    levels = [torch.zeros(2, 7 if level == 0 else 6, max(1, 24 >> level), max(1, 40 >> level))
              for level in range(4)]
    names = [f'level{level}' for level in range(4)]
    dynamic = {name: {0: 'batch', 2: f'rows{level}', 3: f'cols{level}'}
               for level, name in enumerate(names)}
    dynamic['grid_logits'] = {0: 'batch', 2: 'rows0', 3: 'cols0'}
    buffer = io.BytesIO()
    torch.onnx.export(head, tuple(levels), buffer, input_names=names,
                      output_names=['grid_logits'], dynamic_axes=dynamic, dynamo=False,
                      opset_version=17)
    data = buffer.getvalue()
    if path is not None:
        if isinstance(path, io.BytesIO):
            path.write(data)
        else:
            Path(path).write_bytes(data)
    return data


class _ExportedNet(nn.Module):
    """``SparseRGBDNet``'s engine interface (``grid_logits_kept``, bilinear upsampling) with
    the dense part run by another engine from the ONNX export; densification stays in torch
    (float32). Subclasses implement :meth:`run_levels`."""

    logit_upsampling = 'bilinear'

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    @property
    def num_classes(self) -> int:
        return self.network.num_classes

    def run_levels(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """Grid logits ``(B, C, h, w)`` from the four float32 pyramid levels."""
        raise NotImplementedError

    def pyramid_inputs(self, rgb, depth) -> list[torch.Tensor]:
        """``SparseRGBDNet.pyramid_inputs`` (densification, in torch)."""
        return self.network.pyramid_inputs(rgb, depth)

    def grid_logits_from_levels(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """``SparseRGBDNet.grid_logits_from_levels`` run by the exported engine."""
        return self.run_levels(levels)

    def grid_logits_kept(self, rgb, rgb_indices, depth, depth_indices) -> torch.Tensor:
        """As ``SparseRGBDNet.grid_logits_kept``, the dense part in the exported engine."""
        from mmcert_ros.certify.kept_pixels import KeptPixels

        return self.grid_logits_from_levels(self.pyramid_inputs(
            KeptPixels.from_indices(rgb, rgb_indices),
            KeptPixels.from_indices(depth, depth_indices)))


class OnnxRuntimeNet(_ExportedNet):
    """The dense part in ONNX Runtime (CPU execution provider, float32)."""

    def __init__(self, network: nn.Module, threads: int | None = None) -> None:
        super().__init__(network)
        onnxruntime = require_package('onnxruntime', "backend 'onnxruntime'")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = onnxruntime.InferenceSession(export_onnx(network), options,
                                                    providers=['CPUExecutionProvider'])

    def run_levels(self, levels: list[torch.Tensor]) -> torch.Tensor:
        feeds = {f'level{i}': level.contiguous().numpy() for i, level in enumerate(levels)}
        return torch.from_numpy(self.session.run(['grid_logits'], feeds)[0])


class OpenVinoNet(_ExportedNet):
    """The dense part in OpenVINO on the CPU, with inference precision float32 or bfloat16
    (bf16 needs a CPU with AVX-512 BF16 or AMX; OpenVINO keeps float32 elsewhere), or 'int8':
    the model quantized by :func:`~mmcert_ros.models.quantization.quantize_int8` (int8
    convolutions but the first; with the ONNX export about 4.5 s on two cores), or read back
    from the int8 model cache when an earlier start quantized the same network
    (:mod:`mmcert_ros.models.int8_cache`; :attr:`int8_cache_hit` tells which), with the other
    ops in bfloat16 where the CPU has it (float32 elsewhere).

    The model is compiled once per set of input shapes (a frame size and micro-batch size;
    an engine frame sees at most two: the full and the last micro-batch), with the shapes
    fixed, which OpenVINO runs faster than the dynamic-shape model, and with channels-last
    (NHWC) inputs, the layout of ``pyramid_inputs``; at most :attr:`MAX_SHAPES` compiled
    models are kept. Where the plugin cannot compile bf16 (seen with oneDNN capped below the
    CPU's ISA, ``ONEDNN_MAX_CPU_ISA=AVX2`` on an AVX-512 BF16 CPU: the plugin still plans
    bf16 from the CPU's own flags, which oneDNN then refuses), it compiles float32, as
    OpenVINO runs on CPUs without BF16; :attr:`compiled_precisions` tells which ran."""

    MAX_SHAPES = 8

    def __init__(self, network: nn.Module, precision: str = 'fp32',
                 threads: int | None = None,
                 calibration: Callable[[nn.Module], list] | None = None) -> None:
        super().__init__(network)
        openvino = require_package('openvino', "backend 'openvino'")
        self._core = openvino.Core()
        self.int8_cache_hit = False
        if precision == 'int8':
            self._model = self._int8_model(network, calibration)
        else:
            self._model = self._float_model(network)
        self._settings = {
            'INFERENCE_PRECISION_HINT': {'fp32': 'f32', 'bf16': 'bf16', 'int8': 'bf16'}[precision],
            'INFERENCE_NUM_THREADS': threads or torch.get_num_threads()}
        self._compiled: dict[tuple, tuple[object, str]] = {}

    def _float_model(self, network: nn.Module):
        """The OpenVINO model of the ONNX export of ``network``'s dense part (float32)."""
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / 'network.onnx'
            export_onnx(network, path)
            return self._core.read_model(str(path))

    def _int8_model(self, network: nn.Module, calibration):
        """The quantized dense part: read from the int8 model cache
        (:mod:`mmcert_ros.models.int8_cache`) when it holds this network's, else exported,
        quantized (:func:`~mmcert_ros.models.quantization.quantize_int8`) and stored there.
        A model calibrated by a caller's own ``calibration`` is neither read nor stored."""
        from mmcert_ros.models.int8_cache import cached_int8_model
        from mmcert_ros.models.quantization import quantize_int8

        if calibration is not None:
            return quantize_int8(self._float_model(network), calibration(network))
        from mmcert_ros.models.calibration import calibration_levels

        model, self.int8_cache_hit = cached_int8_model(
            self._core, network,
            lambda: quantize_int8(self._float_model(network), calibration_levels(network)))
        return model

    @property
    def compiled_precisions(self) -> list[str]:
        """The inference precision ('f32' or 'bf16') of each compiled shape set."""
        return [precision for _, precision in self._compiled.values()]

    def _compiled_for(self, feeds: dict):
        shapes = tuple((name, value.shape) for name, value in feeds.items())
        if shapes not in self._compiled:
            from openvino import Layout
            from openvino.preprocess import PrePostProcessor

            if len(self._compiled) >= self.MAX_SHAPES:
                self._compiled.pop(next(iter(self._compiled)))
            model = self._model.clone()
            model.reshape({name: [shape[0], shape[3], shape[1], shape[2]]
                           for name, shape in shapes})
            steps = PrePostProcessor(model)  # the tensors arrive channels-last (NHWC)
            for name, shape in shapes:
                steps.input(name).tensor().set_layout(Layout('NHWC')).set_shape(list(shape))
                steps.input(name).model().set_layout(Layout('NCHW'))
            model, hint = steps.build(), self._settings['INFERENCE_PRECISION_HINT']
            try:
                compiled = self._core.compile_model(model, 'CPU', self._settings)
            except RuntimeError:  # see the class docstring
                if hint == 'f32':
                    raise
                hint = 'f32'
                compiled = self._core.compile_model(model, 'CPU', {
                    **self._settings, 'INFERENCE_PRECISION_HINT': hint})
            self._compiled[shapes] = (compiled, hint)
        return self._compiled[shapes][0]

    def run_levels(self, levels: list[torch.Tensor]) -> torch.Tensor:
        # channels-last levels (as pyramid_inputs makes them) are fed without a copy
        feeds = {f'level{i}': level.permute(0, 2, 3, 1).contiguous().numpy()
                 for i, level in enumerate(levels)}
        return torch.from_numpy(self._compiled_for(feeds)(feeds)[0].copy())
