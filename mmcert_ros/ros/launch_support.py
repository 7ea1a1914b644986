"""What the launch files share: the values a parameter file gives one node, wherever it runs.

A section keyed by the bare node name (``mmcert_segmenter:``, as in ``config/*.yaml``)
applies only to a node in the root namespace when the file is handed to the node with
``--params-file``: launched with a ``namespace``, the node would silently run on its built-in
defaults. The launch files therefore read the node's values here and pass them to the node
as values, which applies them under any namespace.
"""
from __future__ import annotations

from pathlib import Path

#: the segmenter executable's flag (before ``--ros-args``) that runs its lifecycle variant
LIFECYCLE_FLAG = '--lifecycle'


def node_parameters(params_file: str | Path, node_name: str, namespace: str = '') -> dict:
    """``{parameter name: value}`` that ``params_file`` gives node ``node_name`` running in
    ``namespace``, by ROS's rules: the ``/**`` section first, overridden by the node's own
    section (``name`` or ``/name``; ``/namespace/name`` in a namespace). Empty when the file
    has no section for the node.

    :raises RuntimeError: the file is not a ROS parameter file (rclpy's message).
    """
    from rclpy.parameter import parameter_dict_from_yaml_file, parameter_value_to_python
    namespace = namespace.strip('/')
    targets = [node_name] + ([f'/{namespace}/{node_name}'] if namespace else [])
    try:
        parameters = parameter_dict_from_yaml_file(str(params_file), use_wildcard=True,
                                                   target_nodes=targets)
    except RuntimeError as error:
        if 'does not contain any valid parameters' in str(error):
            return {}
        raise
    return {name: parameter_value_to_python(message.value)
            for name, message in parameters.items()}
