"""The one settings loader: a params file plus overrides -> validated :class:`NodeSettings`.

The segmenter node gets its values from rcl (params file, ``-p``) and every offline tool
(``mmcert-ros evaluate``, ``certify``, ``bench``) gets them from :func:`load_settings`; both
hand them to :meth:`NodeSettings.from_parameters`, after the same per-parameter check
(:meth:`ParameterSpec.conform`: type, range, an integer taken for a float), so one file gives
the same engine, l2 certificate, model and booster everywhere: the same defaults (device
``auto``), ``~`` expanded in every path, the same errors.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmcert_ros.certify.config import PARAMETER_FIELDS, read_parameters
from mmcert_ros.errors import UserError
from mmcert_ros.pipeline.parameters import PARAMETERS, NodeSettings

_LOG = logging.getLogger(__name__)
_SPECS = {spec.name: spec for spec in PARAMETERS}
#: CertifyConfig field name (a plain config mapping) -> its parameter name
_PARAMETER_OF_FIELD = {field: name for name, field in PARAMETER_FIELDS.items()}
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
    :raises UserError: the file is missing or unreadable, or a value has the wrong type, is
        out of range, names a missing checkpoint or booster, or a device this machine lacks
        (the message names the parameter).
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
