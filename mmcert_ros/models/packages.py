"""Optional packages of the exported backends (ONNX, ONNX Runtime, OpenVINO, NNCF), imported
on first use so that the torch backend needs none of them."""
from __future__ import annotations


def require_package(package: str, needed_by: str):
    """Import ``package``, or say what needs it and how to install it (ValueError)."""
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError as error:
        raise ValueError(f'{needed_by} needs the {package} package (requirements-test.txt: '
                         f'pip install onnx onnxruntime openvino nncf)') from error
