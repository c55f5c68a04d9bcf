"""`recagent serve` as a person runs it: a real process that builds what is missing, prints
its URL and serves the page; and the rule that only loopback may go without an API key."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Stack, default_sigint

URL = re.compile(r"serving on (http://127\.0\.0\.1:\d+/)")


def test_other_hosts_need_an_api_key(cli, mini_stack: Stack) -> None:
    home = ["--home", str(mini_stack.workspace.root)]
    refused = cli(*home, "serve", "--host", "0.0.0.0")
    assert refused.exit_code == 2
    assert "needs an API key" in refused.stderr and "--api-key" in refused.stderr
    assert "RECAGENT_SERVER__API_KEY" in refused.stderr
    bad_port = cli(*home, "serve", "--port", "70000")
    assert bad_port.exit_code == 2 and "invalid server options" in bad_port.stderr


def test_loopback_is_the_whole_loopback_range() -> None:
    from recagent.commands.serve import is_loopback

    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        assert not is_loopback(host), host


def test_serve_prints_its_url_and_serves_the_page(mini_stack: Stack, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(mini_stack.workspace.root, home)
    exe = Path(sys.executable).parent / "recagent"
    env = {**os.environ, "RECAGENT_HOME": str(home)}
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if URL.search(line):
                break
        found = URL.search("".join(lines))
        assert found, ("".join(lines), proc.stderr.read() if proc.poll() is not None else "")
        assert "mode: offline (rule-based planner)" in "".join(lines)
        url = found.group(1)
        page = _get(url)
        assert page.status_code == 200 and "<title>recagent</title>" in page.text
        assert _get(url + "healthz").json() == {"status": "ok"}
        assert (home / "server" / "sessions.sqlite").is_file()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("recagent serve did not stop on Ctrl-C")
    assert proc.returncode == 130  # stopped by Ctrl-C, as every command is
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")


def _get(url: str) -> httpx.Response:
    for _ in range(50):
        try:
            return httpx.get(url, timeout=10)
        except httpx.ConnectError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")
