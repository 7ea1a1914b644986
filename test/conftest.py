"""The session's colcon workspace: the package built once per test run, as a user builds it."""
import pytest

from ros2_tools import Workspace, missing_tools


@pytest.fixture(scope='session')
def colcon_workspace(tmp_path_factory) -> Workspace:
    """``colcon build`` of this repository into a temporary workspace, sourced (skips, with
    the reason, where colcon or the ROS 2 CLI is not installed)."""
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    return Workspace.build(tmp_path_factory.mktemp('colcon_ws'))
