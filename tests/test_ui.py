"""``mlbench ui`` leaves no process and no port behind when it is stopped by its PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

MLBENCH = shutil.which("mlbench") or str(Path(sys.executable).with_name("mlbench"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(root: int) -> set[int]:
    """Every live process whose parent chain or process group leads to ``root``."""
    parents: dict[int, int] = {}
    groups: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z":
            continue
        parents[int(entry.name)], groups[int(entry.name)] = int(fields[1]), int(fields[2])
    found = {root}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if pid not in found and (ppid in found or groups[pid] in found):
                found.add(pid)
                changed = True
    return {p for p in found if p in parents} - {root}


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _port_serving(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.slow
def test_ui_stopped_by_pid_leaves_no_process_or_port(tmp_path, sig):
    port = _free_port()
    ui = subprocess.Popen(
        [MLBENCH, "ui", "--port", str(port), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        # a shell's background job starts with SIGINT ignored; the test must not inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while not _port_serving(port):
            assert ui.poll() is None, ui.stderr.read().decode()
            assert time.monotonic() < deadline, "the MLflow server did not start within 120 s"
            time.sleep(0.5)
        children = _descendants(ui.pid)
        assert children, "the server runs in child processes"
        ui.send_signal(sig)
        assert ui.wait(timeout=60) == 0
        deadline = time.monotonic() + 5
        while (alive := {p for p in children if _alive(p)}) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive, f"left running: {sorted(alive)}"
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # the port is free again
    finally:
        if ui.poll() is None:
            ui.kill()
        for pid in _descendants(ui.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_ui_on_a_port_in_use_is_one_line(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = subprocess.run([MLBENCH, "ui", "--port", str(port), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"mlbench: error: port {port} on 127.0.0.1 is in use (Address already in use); "
                                               "pick another with --port"]
