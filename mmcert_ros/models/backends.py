"""Inference backends: what runs the base model's forward passes inside the engine.

``prepare_model(model, precision, backend, device)`` turns the base model into the object
the engine calls (``CertifyConfig.precision`` and ``CertifyConfig.backend``):

- backend ``'torch'``: a model with ``for_inference`` (``SparseRGBDNet``) runs as its inference
  copy: batch norm folded, channels-last, weights in float32 ('fp32', the exact mode: same
  votes as the unfolded model up to float32 rounding), bfloat16 ('bf16', the fastest mode on
  CPUs with AVX-512 BF16 or AMX) or float16 ('fp16', for GPUs). Any other model runs as it
  is, under autocast for 'fp16' / 'bf16'.
- backend ``'onnxruntime'``: the dense part of ``SparseRGBDNet`` (pyramid in, grid logits out)
  exported to ONNX (:func:`export_onnx`) and run by ONNX Runtime on the CPU; densification
  stays in torch. Needs the ``onnx`` and ``onnxruntime`` packages (requirements-test.txt);
  float32 only. The exported file also lets other engines (TensorRT, OpenVINO) run the model.

Every backend is a deterministic function of the sub-sampled input, so the certificate's
guarantee holds for it as for any base model; only which labels it predicts may differ in
the last bits between backends.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn

BACKENDS = ('torch', 'onnxruntime')
PRECISION_DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def prepare_model(model: nn.Module, precision: str, backend: str,
                  device: torch.device) -> nn.Module:
    """The object the engine runs for ``model`` (see the module docstring)."""
    if backend == 'onnxruntime':
        if precision != 'fp32':
            raise ValueError(f"backend 'onnxruntime' runs fp32 only, got precision {precision!r}")
        if device.type != 'cpu':
            raise ValueError("backend 'onnxruntime' runs on the CPU here; use device 'cpu'")
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
    head = _GridHead(network.for_inference(torch.float32).to(memory_format=torch.contiguous_format))
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


class OnnxRuntimeNet(nn.Module):
    """``SparseRGBDNet``'s engine interface (``grid_logits_kept``, bilinear upsampling) with
    the dense part run by ONNX Runtime; densification runs in torch (float32)."""

    logit_upsampling = 'bilinear'

    def __init__(self, network: nn.Module, threads: int | None = None) -> None:
        super().__init__()
        try:
            import onnxruntime
        except ImportError as error:
            raise ValueError("backend 'onnxruntime' needs the onnxruntime package "
                             '(pip install onnx onnxruntime)') from error
        self.network = network
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = onnxruntime.InferenceSession(export_onnx(network), options,
                                                    providers=['CPUExecutionProvider'])

    @property
    def num_classes(self) -> int:
        return self.network.num_classes

    def pyramid_inputs(self, rgb, depth) -> list[torch.Tensor]:
        """``SparseRGBDNet.pyramid_inputs`` (densification, in torch)."""
        return self.network.pyramid_inputs(rgb, depth)

    def grid_logits_from_levels(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """``SparseRGBDNet.grid_logits_from_levels`` run by ONNX Runtime."""
        feeds = {f'level{i}': level.contiguous().numpy() for i, level in enumerate(levels)}
        return torch.from_numpy(self.session.run(['grid_logits'], feeds)[0])

    def grid_logits_kept(self, rgb, rgb_indices, depth, depth_indices) -> torch.Tensor:
        """As ``SparseRGBDNet.grid_logits_kept``, the dense part in ONNX Runtime."""
        from mmcert_ros.models.network import KeptPixels

        return self.grid_logits_from_levels(self.pyramid_inputs(
            KeptPixels.from_indices(rgb, rgb_indices), KeptPixels.from_indices(depth, depth_indices)))
