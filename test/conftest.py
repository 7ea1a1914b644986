"""Fixtures shared by the test modules.

* ``colcon_workspace``: the package built once per test run, as a user builds it.
* ``tiny_checkpoint`` / ``constant_checkpoint``: the small untrained network of the tests
  (:func:`ros_harness.tiny_checkpoint`), saved once per session.
* ``domain_id`` / ``fresh_domain_id``: private ROS domains, each handed out once per run, so
  no two tests can hear each other.
* every test process (and every node it starts) keeps its int8 models and compiled CPU
  kernels in a cache folder of this run (``MMCERT_ROS_CACHE``), never in the user's
  ``~/.cache``; the kernels are compiled into it once, at the start of the run.
* ``node`` / ``client``: a test module's segmenter process on its ``domain_id`` and a real
  rclpy client that has seen it; the module says how (module attributes and fixtures listed
  at each fixture).
"""
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.ros2_tools import Workspace, missing_tools
from helpers.ros_harness import (FIRST_TEST_DOMAIN, LAST_TEST_DOMAIN, NodeProcess, RosClient,
                                 tiny_checkpoint as save_tiny_checkpoint)

#: the test domains not handed out yet in this run (every id once, in order)
_FREE_DOMAINS = iter(range(FIRST_TEST_DOMAIN, LAST_TEST_DOMAIN + 1))


def _allocate_domain() -> int:
    """A ROS domain id that no other test of this run has been given."""
    try:
        return next(_FREE_DOMAINS)
    except StopIteration:
        raise RuntimeError(f'every test domain {FIRST_TEST_DOMAIN}..{LAST_TEST_DOMAIN} '
                           'is taken') from None


@pytest.fixture(scope='session', autouse=True)
def _private_model_cache(tmp_path_factory):
    """The cache folder of this test run (inherited by the processes tests start), with the
    CPU kernels compiled into it (so no node's first frame waits for the compiler)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('MMCERT_ROS_CACHE', str(tmp_path_factory.mktemp('model_cache')))
        subprocess.run([sys.executable, '-m', 'mmcert_ros.cpu_kernels'], check=True,
                       stdout=subprocess.DEVNULL)
        yield


@pytest.fixture(scope='module')
def domain_id() -> int:
    """The test module's own ROS domain (shared by its module-scoped node and client)."""
    return _allocate_domain()


@pytest.fixture
def fresh_domain_id() -> int:
    """A ROS domain of this one test (a graph that must not meet the module's)."""
    return _allocate_domain()


@pytest.fixture(scope='session')
def colcon_workspace(tmp_path_factory) -> Workspace:
    """``colcon build`` of this repository into a temporary workspace, sourced (skips, with
    the reason, where colcon or the ROS 2 CLI is not installed)."""
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    return Workspace.build(tmp_path_factory.mktemp('colcon_ws'))


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory) -> Path:
    """The small untrained SparseRGBDNet (seed 0) as a checkpoint file (fast to certify)."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp('tiny') / 'tiny.pt')


@pytest.fixture(scope='session')
def constant_checkpoint(tmp_path_factory) -> Path:
    """The same network with every logit 0: every sample votes class 0 (a certificate known
    in closed form)."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp('constant') / 'constant.pt',
                                constant=True)


@pytest.fixture(scope='module')
def node_params() -> dict:
    """Parameters the ``node`` fixture adds to the module's ``PARAMS`` (override in a module)."""
    return {}


@pytest.fixture(scope='module')
def node(request, node_params, tmp_path_factory, domain_id):
    """The segmenter in a subprocess on the module's ``domain_id`` with its ``PARAMS``
    updated by ``node_params`` and the extra arguments ``NODE_ARGS`` (if the module has
    them); it must exit 0 when stopped at the end of the module."""
    module = request.module
    process = NodeProcess('segmenter', domain_id,
                          tmp_path_factory.mktemp('log') / 'node.log',
                          dict(module.PARAMS, **node_params),
                          extra_args=getattr(module, 'NODE_ARGS', None))
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture(scope='module')
def client(request, node, domain_id):
    """A :class:`RosClient` on the module's ``domain_id`` (with the module's
    ``CLIENT_SUBSCRIPTIONS``, ``{topic: type}``) that has seen ``node`` publish on
    ``CLIENT_WAIT_TOPICS`` (default: segmentation and certification)."""
    module = request.module
    client = RosClient(domain_id,
                       extra_subscriptions=getattr(module, 'CLIENT_SUBSCRIPTIONS', None))
    wait_topics = getattr(module, 'CLIENT_WAIT_TOPICS', None)
    if wait_topics:
        client.wait_for_node(topics=wait_topics)
    else:
        client.wait_for_node()
    yield client
    client.close()
