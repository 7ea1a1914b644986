"""The real ROS 2 user tools in tests: a colcon workspace holding the package, ``ros2 launch``
and the ``ros2`` CLI run in it as separate processes.

The tools are those of a ROS distro, or the upstream wheels of ``../shared/ros-tools`` that
``make setup`` installs into the venv; :func:`missing_tools` says what is absent (the tests
then skip with that reason). Every process gets ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``,
the test module's own domain (:func:`ros_harness.shifted_domain`) and a private ``ROS_HOME``
(logs), and sees the package only through the workspace: not through the source checkout.
Nodes run torch on one thread (``OMP_NUM_THREADS=1``): on a shared 2-core machine torch's
thread pool turns a 5 ms test frame into a 1 s one now and then, which would drop frames.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from helpers.ros_harness import REPO, WAIT_S, shifted_domain

#: a venv's own ``bin`` (where the ros-tools wheels put ``ros2`` and ``colcon``), if any
VENV_BIN = Path(sys.executable).parent if sys.prefix != sys.base_prefix else None


def tool(name: str) -> str | None:
    """Path of an executable on PATH or in this venv's ``bin``."""
    found = shutil.which(name)
    if found is None and VENV_BIN is not None and (VENV_BIN / name).is_file():
        found = str(VENV_BIN / name)
    return found


def missing_tools() -> str | None:
    """Why the workspace cannot be built and driven here, or None if it can."""
    missing = [name for name in ('colcon', 'ros2') if tool(name) is None]
    missing += [module for module in ('launch', 'launch_ros', 'ros2cli')
                if importlib.util.find_spec(module) is None]
    if not missing:
        return None
    return (f'ROS 2 user tools missing ({", ".join(missing)}): source a ROS 2 distro, or run '
            f'`make setup` with ../shared/ros-tools beside the repository')


@dataclass
class Workspace:
    """A colcon workspace with the package built and installed (``--merge-install``).

    :ivar root: the workspace folder (``build/``, ``install/``, ``log/``).
    :ivar sourced: the environment after ``source install/setup.bash``.
    """

    root: Path
    sourced: dict[str, str]

    @classmethod
    def build(cls, root: Path) -> 'Workspace':
        """``colcon build`` of the repository into ``root`` (what a user runs), then source it.

        :raises AssertionError: with colcon's output when the build fails.
        """
        env = dict(os.environ)
        if VENV_BIN is not None:
            env['PATH'] = os.pathsep.join([str(VENV_BIN), env.get('PATH', '')])
        result = subprocess.run(
            [tool('colcon'), 'build', '--merge-install', '--paths', str(REPO),
             '--build-base', str(root / 'build'), '--install-base', str(root / 'install')],
            cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f'colcon build failed:\n{result.stdout}\n{result.stderr}'
        dump = subprocess.run(['bash', '-c', f'source {root}/install/setup.bash && env -0'],
                              env=env, capture_output=True, check=True, timeout=60).stdout
        sourced = dict(item.split('=', 1) for item in dump.decode().split('\0') if '=' in item)
        if VENV_BIN is not None:   # the ros-* wheels' ament index lives in the venv prefix
            sourced['AMENT_PREFIX_PATH'] = os.pathsep.join(
                filter(None, [sourced.get('AMENT_PREFIX_PATH'), sys.prefix]))
        # the package comes from the workspace only, never from the checkout's folder
        sourced['PYTHONPATH'] = os.pathsep.join(
            entry for entry in sourced.get('PYTHONPATH', '').split(os.pathsep)
            if entry and Path(entry).resolve() != REPO.resolve())
        return cls(root, sourced)

    @property
    def install(self) -> Path:
        return self.root / 'install'

    def env(self, domain_id: int) -> dict[str, str]:
        """The sourced environment on the private, machine-local test domain ``domain_id``."""
        ros_home = self.root / 'ros_home'
        ros_home.mkdir(exist_ok=True)
        return dict(self.sourced, ROS_DOMAIN_ID=str(shifted_domain(domain_id)),
                    ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', ROS_HOME=str(ros_home),
                    PYTHONUNBUFFERED='1', RCUTILS_COLORIZED_OUTPUT='0', OMP_NUM_THREADS='1')

    def ros2(self, domain_id: int, *args: str, timeout_s: float = 60.0
             ) -> subprocess.CompletedProcess:
        """Run ``ros2 ARGS`` (text output); never spawns the ``ros2`` daemon."""
        args = list(args)
        if args[:1] in (['node'], ['param']):
            args.insert(2, '--no-daemon')
        return subprocess.run(['ros2', *args], env=self.env(domain_id), cwd=self.root,
                              capture_output=True, text=True, timeout=timeout_s)

    def ros2_until(self, domain_id: int, *args: str, ok=lambda result: result.returncode == 0,
                   what: str = '') -> subprocess.CompletedProcess:
        """Repeat ``ros2 ARGS`` until ``ok(result)`` (discovery takes a while on a busy machine).

        :raises AssertionError: with the last output after :data:`WAIT_S` seconds.
        """
        deadline = time.monotonic() + WAIT_S
        while True:
            result = self.ros2(domain_id, *args)
            if ok(result):
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f'ros2 {" ".join(args)} never gave {what or "success"}:\n'
                                     f'{result.stdout}\n{result.stderr}')
            time.sleep(0.5)


class Launch:
    """``ros2 launch mmcert_ros FILE name:=value ...`` in its own process group, the way a
    terminal runs it (Ctrl-C there is SIGINT to the whole group); output goes to ``log_path``."""

    def __init__(self, workspace: Workspace, domain_id: int, launch_file: str,
                 arguments: dict[str, object], log_path: Path) -> None:
        command = ['ros2', 'launch', 'mmcert_ros', launch_file,
                   *(f'{name}:={value}' for name, value in arguments.items())]
        self.workspace, self.domain_id = workspace, domain_id
        self.log_path = log_path
        self._log = open(log_path, 'wb')
        self.process = subprocess.Popen(command, env=workspace.env(domain_id), cwd=workspace.root,
                                        stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors='replace')

    def alive(self) -> bool:
        return self.process.poll() is None

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the launch process and every node it started."""
        os.killpg(self.process.pid, signal.SIGINT)

    def wait(self, timeout_s: float = WAIT_S) -> int:
        """Exit status once the launch ends (``TimeoutExpired`` after ``timeout_s``)."""
        return self.process.wait(timeout=timeout_s)

    def wait_for_log(self, pattern: str, timeout_s: float = WAIT_S) -> re.Match:
        """The first match of ``pattern`` in the output, waiting for it to appear."""
        deadline = time.monotonic() + timeout_s
        while (match := re.search(pattern, self.log())) is None:
            if time.monotonic() > deadline or not self.alive() and \
                    re.search(pattern, self.log()) is None:
                raise AssertionError(f'no {pattern!r} in the launch output:\n{self.log()}')
            time.sleep(0.2)
        return match

    def stop(self) -> int | None:
        """End the launch if it still runs: SIGINT to the launch process, which stops its
        nodes (then SIGKILL to the group after 30 s)."""
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        return self.process.returncode
