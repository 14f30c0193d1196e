"""Small process helpers for the storage and crash integration tests.

Kept apart from conftest.py on purpose: these tests only need a config-file server with a data
dir that survives restarts, graceful stop (SIGTERM), kill -9, init and unseal.
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
SANITIZED = os.environ.get("COFFER_SANITIZED") == "1"
SCALE = 3 if SANITIZED else 1


def coffer_bin():
    """Path of the coffer binary: env COFFER_BIN or <repo>/build/coffer."""
    return os.environ.get("COFFER_BIN", str(REPO / "build" / "coffer"))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `coffer server -config=FILE` node whose data dir outlives each process."""

    def __init__(self, workdir, extra_config="", env=None, node_id="n1", storage_extra="",
                 host="127.0.0.1", netns=None, prefix=None):
        """extra_config is appended to the config file (e.g. a seal block); env adds to the
        process environment; storage_extra goes inside the storage block (retry_join); netns
        runs the process in that network namespace (then host is its address there); prefix is
        a command put before coffer (e.g. ["taskset", "-c", "0"])."""
        self.workdir = Path(workdir)
        self.env = dict(os.environ, **(env or {}))
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.netns = netns
        self.prefix = list(prefix or [])
        self.host = host
        self.port = free_port() if netns is None else 8200
        self.cluster_port = free_port() if netns is None else 8201
        self.addr = f"http://{host}:{self.port}"
        self.config = self.workdir / "coffer.hcl"
        self.config.write_text(
            f'storage "raft" {{\n  path = "{self.data_dir}"\n  node_id = "{node_id}"\n'
            f"{storage_extra}}}\n"
            f'listener "tcp" {{\n  address = "{host}:{self.port}"\n  tls_disable = true\n}}\n'
            f'api_addr = "{self.addr}"\n'
            f'cluster_addr = "https://{host}:{self.cluster_port}"\n'
            'disable_mlock = true\nlog_level = "info"\n' + extra_config
        )
        self.node_id = node_id
        self.binary = None  # another coffer build for this node (upgrade tests)
        self.proc = None
        self.stderr_path = None
        self.starts = 0
        self.session = requests.Session()

    def url(self, path):
        return f"{self.addr}/v1/{path.lstrip('/')}"

    def start(self, timeout=10):
        """Start the process and wait until sys/health answers (any status)."""
        assert self.proc is None, "already running"
        self.starts += 1
        self.stderr_path = self.workdir / f"stderr-{self.starts}.log"
        with open(self.stderr_path, "wb") as err:
            prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
            prefix += self.prefix
            self.proc = subprocess.Popen(
                prefix + [self.binary or coffer_bin(), "server", f"-config={self.config}"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=self.env,
            )
        self.wait_health(timeout * SCALE)

    def start_fails(self, timeout=10):
        """Start the process, expecting it to exit non-zero before serving; returns stderr."""
        assert self.proc is None, "already running"
        r = subprocess.run(
            [coffer_bin(), "server", f"-config={self.config}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.env,
            timeout=timeout * SCALE,
        )
        assert r.returncode != 0, "coffer started although it should have refused"
        return r.stderr.decode(errors="replace")

    def stderr(self):
        """The current (or last) process's stderr so far."""
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")

    def stderr_tail(self, n=40):
        return "\n".join(self.stderr().splitlines()[-n:])

    def wait_health(self, timeout):
        """Poll GET sys/health until it answers; fail if the process exits first."""
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                raise AssertionError(f"coffer exited with {rc} during start:\n{self.stderr_tail()}")
            try:
                r = requests.get(self.url("sys/health"), timeout=1)
                if r.status_code in (200, 429, 472, 473, 501, 503):
                    return r
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"coffer did not answer sys/health:\n{self.stderr_tail()}")
            time.sleep(0.05)

    def init(self, shares=1, threshold=1):
        """PUT sys/init; returns the JSON (keys_base64, root_token, ...)."""
        r = self.session.put(
            self.url("sys/init"), json={"secret_shares": shares, "secret_threshold": threshold}
        )
        assert r.status_code == 200, r.text
        return r.json()

    def unseal(self, keys, threshold=None, timeout=30):
        """Feed `threshold` shares, then wait until the node is active (health 200)."""
        n = threshold if threshold is not None else len(keys)
        for k in keys[:n]:
            r = self.session.put(self.url("sys/unseal"), json={"key": k})
            assert r.status_code == 200, r.text
        assert r.json()["sealed"] is False, r.text
        deadline = time.monotonic() + timeout * SCALE
        while True:
            r = self.session.get(self.url("sys/health"))
            if r.status_code == 200:
                return
            assert time.monotonic() < deadline, f"not active: {r.status_code} {r.text}"
            time.sleep(0.05)

    def stop(self, timeout=20):
        """SIGTERM and wait; asserts a clean exit 0 and no sanitizer report."""
        if self.proc is None:
            return
        self.session.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout * SCALE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            raise AssertionError(f"coffer ignored SIGTERM:\n{self.stderr_tail()}")
        self.proc = None
        assert rc == 0, f"exit {rc}:\n{self.stderr_tail()}"
        assert_clean_stderr(self.stderr())

    def kill9(self):
        """SIGKILL and reap."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def close(self):
        """Best-effort teardown for finalizers."""
        if self.proc is not None:
            self.kill9()
        self.session.close()


def assert_clean_stderr(text):
    """No sanitizer or UBSan report in a server's stderr."""
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert marker not in text, f"{marker} in stderr:\n{text[-4000:]}"


