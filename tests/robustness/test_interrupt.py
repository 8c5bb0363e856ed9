"""Interrupting a kernel mid-request leaves no busy threads, tasks or open connections."""

from __future__ import annotations

import functools
import json
import os
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.manager import KernelManager
from loopback import LoopbackServer

from .cases import photo
from .raw_server import RawServer, trickle

REPO = Path(__file__).resolve().parents[2]

# Run in the kernel: the state left behind, as one JSON line.
REPORT = """
import asyncio, json, os, threading
from ipy_images._sync import background_loop

def _sockets_to(port):
    inodes = set()
    for fd in os.listdir('/proc/self/fd'):
        try:
            target = os.readlink(f'/proc/self/fd/{fd}')
        except OSError:
            continue
        if target.startswith('socket:['):
            inodes.add(target[8:-1])
    count = 0
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        for line in open(table).readlines()[1:]:
            fields = line.split()
            if int(fields[2].split(':')[1], 16) == port and fields[9] in inodes:
                count += 1
    return count

async def _tasks():
    return len(asyncio.all_tasks()) - 1  # this one

report = {
    'threads': sorted(t.name for t in threading.enumerate()),
    'loop_tasks': asyncio.run_coroutine_threadsafe(_tasks(), background_loop()).result(5),
    'sockets': _sockets_to(SERVER_PORT),
}
try:
    from ipy_images.backends.local import _workers
    pool = _workers()
    report['queued'] = pool._work_queue.qsize()
    report['idle'] = pool._idle_semaphore._value
    report['workers'] = len(pool._threads)
except Exception as exc:
    report['pool_error'] = repr(exc)
print('REPORT ' + json.dumps(report))
"""


class Kernel:
    def __init__(self, client: BlockingKernelClient, manager: KernelManager) -> None:
        self.client = client
        self.manager = manager

    def start(self, code: str) -> str:
        return self.client.execute(code)

    def finish(self, msg_id: str, timeout: float) -> tuple[list[dict[str, Any]], str]:
        """Wait for `msg_id` to end; its error outputs and its stdout."""
        errors, stdout = [], ""
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self.client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"the cell did not end within {timeout} s") from None
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "error":
                errors.append(content)
            elif kind == "stream" and content["name"] == "stdout":
                stdout += content["text"]
            elif kind == "status" and content["execution_state"] == "idle":
                return errors, stdout

    def run(self, code: str, timeout: float = 60) -> tuple[list[dict[str, Any]], str]:
        return self.finish(self.start(code), timeout)

    def report(self, port: int) -> dict[str, Any]:
        errors, stdout = self.run(REPORT.replace("SERVER_PORT", str(port)))
        assert not errors, errors
        line = next(text for text in stdout.splitlines() if text.startswith("REPORT "))
        return json.loads(line.removeprefix("REPORT "))


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    photo((96, 96)).save(tmp_path / "photo.png")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "IPY_IMAGES_"))}
    env["PYTHONPATH"] = str(REPO)
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env, cwd=str(tmp_path))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        kernel = Kernel(client, manager)
        errors, _ = kernel.run("import ipy_images as ii")
        assert not errors
        yield kernel
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def interrupt_when(kernel: Kernel, msg_id: str, ready: Any) -> list[dict[str, Any]]:
    """Interrupt once `ready()` holds (the work is under way); the cell's error outputs."""
    deadline = time.monotonic() + 30
    while not ready():
        assert time.monotonic() < deadline, "the work never started"
        time.sleep(0.05)
    time.sleep(0.5)  # well inside the work
    kernel.manager.interrupt_kernel()
    errors, _ = kernel.finish(msg_id, timeout=15)  # far less than the 30 s the server stalls
    return errors


def test_interrupting_an_http_request_closes_its_connection(kernel: Kernel) -> None:
    with LoopbackServer(latency=30) as server:
        msg_id = kernel.start(
            f"r = ii.create_variation('photo.png', n=2, size='256x256', backend='variations',"
            f" base_url={server.base_url!r})"
        )
        errors = interrupt_when(kernel, msg_id, lambda: server.requests)
        assert [e["ename"] for e in errors] == ["KeyboardInterrupt"]
        state = kernel.report(server.port)
        assert state["sockets"] == 0, state
        assert state["loop_tasks"] == 0, state
        assert "ipy-images-loop" in state["threads"]  # the shared loop is alive, and idle
        # The loop is not blocked: a new request goes through at once.
        server.latency = 0
        errors, stdout = kernel.run(
            f"r = ii.create_variation('photo.png', n=1, size='256x256', backend='variations',"
            f" base_url={server.base_url!r}); print(len(r.data))"
        )
        assert not errors and stdout.strip() == "1"


def test_interrupting_the_local_engine_leaves_its_workers_idle(kernel: Kernel) -> None:
    msg_id = kernel.start(
        "r = ii.create_variation('photo.png', n=8, size='1024x1024', backend='local', seed=1)"
    )
    started = time.monotonic()
    errors = interrupt_when(kernel, msg_id, lambda: time.monotonic() - started > 1.5)
    assert [e["ename"] for e in errors] == ["KeyboardInterrupt"]
    state = kernel.report(port=0)
    assert "pool_error" not in state, state
    assert state["queued"] == 0, state
    assert state["idle"] >= state["workers"], state  # every engine thread is waiting for work
    assert state["loop_tasks"] == 0, state
    errors, stdout = kernel.run(
        "r = ii.create_variation('photo.png', n=1, size='256x256', backend='local', seed=2);"
        " print(len(r.data))"
    )
    assert not errors and stdout.strip() == "1"


def test_interrupted_downloads_leave_no_thread_that_blocks_later_runs(kernel: Kernel) -> None:
    """A source URL that trickles a byte a second, interrupted as many times as the loop
    has worker threads (six on two cores): a plain run on a local file still goes through,
    and no connection to the trickling server stays open."""
    errors, stdout = kernel.run(
        "%load_ext ipy_images\nimport os; print(min(32, (os.cpu_count() or 1) + 4))"
    )
    assert not errors
    workers = int(stdout.split()[-1])
    with RawServer({"/slow.png": trickle(every=1.0)}) as server:
        for attempt in range(1, workers + 1):
            msg_id = kernel.start(
                "%%variation -n 1 --size 256x256 --backend local\n" + server.url + "/slow.png"
            )
            started = functools.partial(lambda n: server.hits["/slow.png"] >= n, attempt)
            errors = interrupt_when(kernel, msg_id, started)
            assert [e["ename"] for e in errors] == ["KeyboardInterrupt"], errors
        state = kernel.report(server.port)
        assert state["sockets"] == 0, state
        errors, _ = kernel.run(
            "%%variation -n 1 --size 256x256 --backend local --seed 1 -o out\nphoto.png",
            timeout=60,
        )
        assert not errors, errors
        errors, stdout = kernel.run("print(len(out.data))")
        assert not errors and stdout.strip() == "1"
