"""The life cycle shared by every executable node of the package."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

import rclpy
from rclpy.exceptions import InvalidParameterValueException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def run_node(name: str, create: Callable[[], Node], spin: Callable[[Node], None],
             args: list[str] | None = None) -> int:
    """Initialise rclpy, build the node, ``spin`` it, and shut down cleanly.

    :returns: the exit status: 0 after Ctrl-C, ``SIGTERM``, an external shutdown or ``spin``
        returning; 2 after a one-line error on stderr when the node rejects its configuration
        (an invalid parameter value, a missing checkpoint). A node with a ``close()`` method
        gets it called before it is destroyed.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = create()
        spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, FileNotFoundError, InvalidParameterValueException) as error:
        print(f'{name}: error: {error}', file=sys.stderr, flush=True)
        return 2
    except Exception:
        if rclpy.ok():
            raise
        # a callback or timer that raced shutdown (its handles already destroyed): a clean stop
    finally:
        if node is not None:
            getattr(node, 'close', lambda: None)()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


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
