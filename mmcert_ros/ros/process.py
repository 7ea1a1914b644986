"""The life cycle shared by every executable node of the package."""
from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import rclpy
import yaml
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node

from mmcert_ros.errors import UserError
from mmcert_ros.ros.parameter_descriptors import report_unknown_parameters

#: ROS arguments whose value must read ``name:=value``
_RULE_FLAGS = {'-p': 'parameter', '--param': 'parameter', '-r': 'remap', '--remap': 'remap'}


def run_node(name: str, create: Callable[[], Node], spin: Callable[[Node], None],
             args: list[str] | None = None) -> int:
    """Initialise rclpy, build the node, ``spin`` it, and shut down cleanly.

    :returns: the exit status: 0 after Ctrl-C, ``SIGTERM``, an external shutdown or ``spin``
        returning; 2 after one line ``<name>: error: <reason>`` on stderr when the start-up
        configuration cannot be used (a bad ROS argument or params file, a parameter of the
        wrong type or out of range, a missing or unusable checkpoint, an unavailable device:
        any :class:`~mmcert_ros.errors.UserError`). Start-up values matching no parameter
        are reported in one WARN and ignored. A node with a ``close()`` method gets it
        called before it is destroyed.
    """
    stop = _StopSignals()
    try:
        check_ros_arguments(sys.argv if args is None else args)
        _init(args)
    except UserError as error:
        return _user_error(name, error)
    except KeyboardInterrupt:        # stopped before rclpy was up
        rclpy.try_shutdown()
        return 0
    node = None
    try:
        node = create()
        report_unknown_parameters(node)
        stop.begin_spin()
        spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (UserError, InvalidParameterTypeException, InvalidParameterValueException) as error:
        return _user_error(name, error)
    except Exception:
        if rclpy.ok():
            raise
        # a callback or timer that raced shutdown (its handles already destroyed): a clean stop
    finally:
        stop.begin_shutdown()
        if node is not None:
            getattr(node, 'close', lambda: None)()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


class _StopSignals:
    """What SIGINT and SIGTERM do in each phase of a node's life.

    Installed before ``rclpy.init``, so rclpy's own handlers run first and chain to it: they
    shut the context down, which wakes every executor and ends ``spin`` at a point of rclpy's
    choosing. This handler adds only what rclpy cannot do:

    - while the node is being built (loading a model can take seconds), the first signal
      raises KeyboardInterrupt, so start-up is abandoned at once;
    - while it spins, the signal raises nothing: an exception thrown into the main thread at
      an arbitrary point of the executor, while its worker threads still run callbacks,
      can leave rclpy handles half torn down (a crash at exit);
    - once shutdown has begun, further signals are ignored: a terminal's Ctrl-C reaches every
      process of a ``ros2 launch`` group and launch then sends each node its own SIGINT, and
      that second one must not interrupt ``close()`` or ``destroy_node()``. Cleanup is bounded
      (the worker stops at its next micro-batch); SIGKILL still ends the process.
    """

    def __init__(self) -> None:
        self._phase = 'starting'
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)

    def begin_spin(self) -> None:
        """The node is built; from now on rclpy's shutdown alone ends ``spin``."""
        if self._phase == 'starting':
            self._phase = 'spinning'

    def begin_shutdown(self) -> None:
        """From now on every SIGINT and SIGTERM is ignored."""
        self._phase = 'stopping'

    def _on_signal(self, _signum: int, _frame) -> None:
        phase, self._phase = self._phase, 'stopping'
        if phase == 'starting':
            raise KeyboardInterrupt


def check_ros_arguments(args: Sequence[str]) -> None:
    """Check what rclpy would otherwise reject with a traceback: every ``--params-file``
    exists and holds a YAML mapping, every ``-p`` / ``-r`` reads ``name:=value``.

    Only the ``--ros-args`` sections (up to ``--``) are looked at, as rcl does.

    :raises UserError: naming the file or argument and the reason.
    """
    in_ros = False
    tokens = list(args)
    for index, token in enumerate(tokens):
        if token == '--ros-args':
            in_ros = True
            continue
        if token == '--':
            in_ros = False
        if not in_ros or token not in ('--params-file', *_RULE_FLAGS):
            continue
        value = tokens[index + 1] if index + 1 < len(tokens) else None
        if value is None or value.startswith('-'):
            raise UserError(f'ROS argument {token} needs a value')
        if token == '--params-file':
            check_params_file(Path(value))
        elif ':=' not in value:
            raise UserError(f'ROS argument {token} {value}: a {_RULE_FLAGS[token]} reads '
                            'name:=value')


class _TagBlindLoader(yaml.SafeLoader):
    """YAML as rcl reads a params file: tags are ignored (``ros2 launch`` writes its
    temporary params files with ``!!python/tuple`` for every list value)."""


def _untagged(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_TagBlindLoader.add_multi_constructor('', _untagged)  # only tags without a constructor


def check_params_file(path: Path) -> None:
    """:raises UserError: ``path`` is missing, unreadable, not YAML, or not a mapping of node
    names (what rcl needs of a ``--params-file``)."""
    try:
        document = yaml.load(path.read_text(), Loader=_TagBlindLoader)
    except OSError as error:
        raise UserError(f'params file {path}: {error.strerror or error}') from None
    except yaml.YAMLError as error:
        mark = getattr(error, 'problem_mark', None)
        where = f' (line {mark.line + 1}, column {mark.column + 1})' if mark else ''
        problem = getattr(error, 'problem', None) or str(error).splitlines()[0]
        raise UserError(f'params file {path} is not valid YAML: {problem}{where}') from None
    if not isinstance(document, dict):
        raise UserError(f'params file {path} must map node names to ros__parameters, '
                        f'got {type(document).__name__}')


def _init(args: list[str] | None) -> None:
    """``rclpy.init``; a command line that rcl cannot parse is the user's mistake."""
    try:
        rclpy.init(args=args)
    # the arguments checked above cover the common cases
    except rclpy_implementation.RCLError as error:
        message = str(error)
        if "Couldn't parse" not in message:
            raise
        raise UserError(re.sub(r', at \S+:\d+', '', message)) from None


def _user_error(name: str, error: Exception) -> int:
    print(f'{name}: error: {error}', file=sys.stderr, flush=True)
    return 2


def exit_process(status: int) -> NoReturn:
    """End the process with ``status`` now that :func:`run_node` has shut everything down.

    The node is destroyed, rclpy shut down and its context destroyed (the DDS participant
    leaves the graph), and stdout/stderr are flushed; what is skipped is Python's own
    finalization of every loaded module, which takes 0.5 to 2 s with torch loaded on a busy
    CPU and would break the promise that the node ends within 2 s of SIGINT or SIGTERM.
    Only for an executable's entry point: it never returns.
    """
    context = rclpy.get_default_context()
    if not context.ok():
        context.destroy()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
