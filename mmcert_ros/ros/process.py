"""The life cycle shared by every executable node of the package."""
from __future__ import annotations

import sys
from collections.abc import Callable

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
