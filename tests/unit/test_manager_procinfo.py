"""Process identity: pid plus start time; zombies and recycled pids count as gone."""

from __future__ import annotations

import os
import subprocess
import sys

from dataset_worker.manager.procinfo import (
    LivenessWatch,
    ProcessIdentity,
    group_members,
    identity_of,
    is_alive,
    read_process,
)
from tests.support.wait import wait_until


def test_own_process_is_alive_with_its_start_time() -> None:
    me = identity_of(os.getpid())
    assert me is not None
    assert is_alive(me)
    info = read_process(os.getpid())
    assert info is not None and info.ppid == os.getppid() and info.pgrp == os.getpgrp()


def test_same_pid_with_another_start_time_is_not_the_same_process() -> None:
    me = identity_of(os.getpid())
    assert me is not None
    assert not is_alive(ProcessIdentity(me.pid, me.start_ticks + 1))


def test_missing_pid() -> None:
    assert read_process(0) is None
    assert identity_of(2**22 + 12345) is None


def test_an_unreaped_child_is_a_zombie_and_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    identity = ProcessIdentity(child.pid, read_process(child.pid).start_ticks)  # type: ignore[union-attr]
    wait_until(lambda: (info := read_process(child.pid)) is not None and info.is_zombie, 10)
    assert not is_alive(identity)
    child.wait()
    assert read_process(child.pid) is None


def test_group_members_lists_a_new_group() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], process_group=0)
    try:
        assert group_members(child.pid) == [child.pid]
    finally:
        child.kill()
        child.wait()
    assert group_members(child.pid) == []


def test_liveness_watch_sees_an_exit_and_never_a_recycled_pid() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    watch = LivenessWatch()
    try:
        identity = identity_of(child.pid)
        assert identity is not None
        assert watch.is_alive(identity) and watch.is_alive(identity)
        impostor = ProcessIdentity(child.pid, identity.start_ticks + 1)
        assert not watch.is_alive(impostor)
        child.kill()
        child.wait(timeout=30)
        assert not watch.is_alive(identity)
        assert not LivenessWatch().is_alive(identity)  # gone before it was first asked about
    finally:
        child.kill()
        child.wait(timeout=30)
        watch.close()
