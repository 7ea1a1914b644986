"""The one settings loader: a params file plus overrides -> validated :class:`NodeSettings`.

The segmenter node gets its values from rcl (params file, ``-p``) and every offline tool
(``mmcert-ros evaluate``, ``certify``, ``bench``) gets them from :func:`load_settings`; both
hand them to :meth:`NodeSettings.from_parameters`, after the same per-parameter check
(:meth:`ParameterSpec.conform`: type, range, an integer taken for a float), so one file gives
the same engine, l2 certificate, model and booster everywhere: the same defaults (device
``auto``), ``~`` expanded in every path, the same errors. :func:`read_parameters` is the one
reader of such a file (a ROS 2 params file or a plain mapping).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mmcert_ros.certify.config import CertifyConfig
from mmcert_ros.errors import UserError
from mmcert_ros.segmenter.parameters import PARAMETERS, NodeSettings

_LOG = logging.getLogger(__name__)
_SPECS = {spec.name: spec for spec in PARAMETERS}
#: CertifyConfig field name (a plain config mapping) -> the parameter that feeds it
_PARAMETER_OF_FIELD = {spec.feeds[1]: spec.name for spec in PARAMETERS
                       if spec.feeds[0] is CertifyConfig}
#: Node whose section of a ROS parameter file is read when a file holds several nodes.
DEFAULT_NODE = 'mmcert_segmenter'
#: keys a ROS params file may hold for any node; not the segmenter's own parameters
_ROS_STANDARD = ('use_sim_time', 'qos_overrides.')


def load_settings(path: str | Path | None = None,
                  overrides: Mapping[str, Any] | None = None) -> NodeSettings:
    """The segmenter's settings from ``path`` with ``overrides`` applied.

    :param path: the node's ROS 2 params file (``config/mmcert.yaml``: the
        ``mmcert_segmenter`` section, or the only one) or a plain mapping of parameter names
        (``certify.num_samples``, nested ``certify: {num_samples: ...}``) and/or
        :class:`~mmcert_ros.certify.CertifyConfig` field names (``num_samples``); None = the
        node's defaults. Keys matching no parameter are ignored with one WARN, as on the node.
    :param overrides: ``{parameter name: value}`` applied after the file (a tool's command
        line options); ``None`` values are skipped.
    :raises UserError: the file is missing or unreadable, a key is given twice (as a
        parameter and as a field name), or a value has the wrong type, is out of range,
        names a missing checkpoint or booster, or a device this machine lacks (the message
        names the parameter).
    """
    given: dict[str, Any] = {}
    if path is not None:
        try:
            flat = read_parameters(Path(path).expanduser())
        except (OSError, ValueError) as error:
            raise UserError(str(error)) from None
        given.update(_parameter_names(flat, path))
    given.update({name: value for name, value in (overrides or {}).items() if value is not None})
    unknown = sorted(set(given) - set(_SPECS))
    if unknown:
        raise ValueError(f'unknown parameter override(s): {", ".join(unknown)}')
    values = {spec.name: spec.default for spec in PARAMETERS}
    values.update({name: _SPECS[name].conform(value) for name, value in given.items()})
    return NodeSettings.from_parameters(values)


def _parameter_names(flat: Mapping[str, Any], path: str | Path) -> dict[str, Any]:
    """``flat`` keyed by parameter names; unknown keys dropped with one WARN."""
    named: dict[str, Any] = {}
    unknown = []
    for key, value in flat.items():
        if value is None:       # YAML ``~`` / empty: the default
            continue
        name = key if key in _SPECS else _PARAMETER_OF_FIELD.get(key)
        if name is None:
            if not key.startswith(_ROS_STANDARD):
                unknown.append(key)
            continue
        if name in named:
            raise UserError(f'{path}: {name} is given twice (as {key} and as a parameter)')
        named[name] = value
    if unknown:
        _LOG.warning('%s: ignoring unknown parameter(s) %s', path, ', '.join(sorted(unknown)))
    return named


def read_parameters(path: str | Path, node: str = DEFAULT_NODE) -> dict[str, Any]:
    """Flat ``{dotted.name: value}`` of a YAML config file: plain mapping or ROS params file
    (the section of ``node``, else ``/**``, else the only one).

    :raises FileNotFoundError: no such file.
    :raises ValueError: not YAML, not a mapping, or sections for other nodes only.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'config file not found: {path}')
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f'config file {path} is not valid YAML: {error}') from error
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ValueError(f'config file {path} must hold a mapping, got {type(document).__name__}')
    sections = {name: body['ros__parameters'] for name, body in document.items()
                if isinstance(body, dict) and 'ros__parameters' in body}
    if not sections:
        return _flatten(document)
    for candidate in (node, f'/{node}', '/**'):
        if candidate in sections:
            return _flatten(sections[candidate] or {})
    if len(sections) == 1:
        return _flatten(next(iter(sections.values())) or {})
    raise ValueError(f'config file {path} has parameters for {sorted(sections)}, none for {node}')


def _flatten(values: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f'{prefix}{key}'
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f'{name}.'))
        else:
            flat[name] = value
    return flat
