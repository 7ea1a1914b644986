"""The segmenter's parameters on a ROS node: the ``rcl_interfaces/ParameterDescriptor`` of
each entry of the table (:mod:`mmcert_ros.segmenter.parameters`), :func:`declare_parameters`
(the start-up checks every node of the package shares) and the report of unknown ones.
"""
from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from mmcert_ros.segmenter.parameters import ParameterSpec


def descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    """The ``rcl_interfaces/ParameterDescriptor`` announced for ``spec``."""
    result = ParameterDescriptor(name=spec.name, description=spec.description,
                                 additional_constraints=spec.constraints,
                                 read_only=spec.read_only)
    if spec.low is not None and isinstance(spec.default, int):
        result.integer_range = [IntegerRange(
            from_value=int(spec.low), to_value=int(spec.high), step=1)]
    elif spec.low is not None:
        result.floating_point_range = [FloatingPointRange(
            from_value=float(spec.low), to_value=float(spec.high), step=0.0)]
    return result


def declare_parameters(node, specs: tuple[ParameterSpec, ...]) -> dict[str, Any]:
    """Declare ``specs`` on ``node`` with the values given at start-up (params files, ``-p``).

    Each given value is first conformed to its parameter (:meth:`ParameterSpec.conform`), so a
    wrong type or a value out of range stops the node with one line naming the parameter,
    instead of rclpy's exception.

    :returns: ``{name: value}`` of the declared parameters.
    :raises UserError: a start-up value of the wrong type or out of range.
    """
    given = _start_up_values(node)
    values = {}
    for spec in specs:
        described = descriptor(spec)
        if spec.name in given:
            parameter = node.declare_parameter(spec.name, spec.conform(given[spec.name]),
                                               described, ignore_override=True)
        else:
            parameter = node.declare_parameter(spec.name, spec.default, described)
        values[spec.name] = parameter.value
    return values


def report_unknown_parameters(node) -> list[str]:
    """Log one WARN naming the start-up values (params file entries for this node, ``-p``
    overrides) that match no declared parameter: a typo would otherwise be ignored silently.

    Call once every parameter is declared. :returns: the unknown names, sorted.
    """
    unknown = sorted(name for name in _start_up_values(node) if not node.has_parameter(name))
    if unknown:
        node.get_logger().warning(
            f'ignoring unknown parameter(s) {", ".join(unknown)} given at start-up '
            f'(params file or -p); `ros2 param list {node.get_fully_qualified_name()}` '
            'lists the declared ones')
    return unknown


def _start_up_values(node) -> dict[str, Any]:
    """``{name: value}`` given to ``node`` at start-up. rclpy keeps them in
    ``Node._parameter_overrides`` (from Humble to Kilted) and offers no public accessor."""
    return {name: parameter.value
            for name, parameter in getattr(node, '_parameter_overrides', {}).items()}
