"""Process trees the tests started themselves: find them through the PIDs they hold, kill them as a crash would.

Nothing here looks processes up by name, title or command line: the machine is shared, and other sweeps' Ray
workers look exactly like ours. Everything starts from a PID the test spawned (a ``Popen``) and walks down.
"""

from __future__ import annotations

import signal
import time

import psutil


def tree(pid: int) -> list[psutil.Process]:
    """``pid`` and its living descendants (empty if ``pid`` is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _signal(process: psutil.Process, signum: int) -> None:
    try:
        process.send_signal(signum)
    except psutil.NoSuchProcess:
        pass


def stop_tree(pid: int) -> list[psutil.Process]:
    """SIGSTOP ``pid`` and every descendant, again until no new one appears; returns them all.

    A stopped process cannot fork, exit or notice its parent die, so once this returns the tree is frozen as a
    crashed host would leave it, with no process re-parented to init before it is found.
    """
    frozen: dict[int, psutil.Process] = {}
    while True:
        found = [p for p in tree(pid) if p.pid not in frozen]
        for process in frozen.values():  # children forked between the last walk and their parent's SIGSTOP
            try:
                found += [c for c in process.children() if c.pid not in frozen]
            except psutil.NoSuchProcess:
                pass
        if not found:
            return list(frozen.values())
        for process in found:
            _signal(process, signal.SIGSTOP)
            frozen[process.pid] = process


def kill_tree(pid: int, timeout: float = 60.0) -> list[psutil.Process]:
    """Kill ``pid`` and all its descendants at once (SIGSTOP every one, then SIGKILL), then wait until all are gone."""
    processes = stop_tree(pid)
    for process in processes:
        _signal(process, signal.SIGKILL)
    alive = wait_gone(processes, timeout)
    assert not alive, f"still alive after SIGKILL: {[p.pid for p in alive]}"
    return processes


def wait_gone(processes: list[psutil.Process], timeout: float = 30.0) -> list[psutil.Process]:
    """The processes among ``processes`` still alive after up to ``timeout`` seconds (zombies count as gone)."""
    deadline = time.monotonic() + timeout
    alive = list(processes)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        time.sleep(0.1)
    return alive


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
