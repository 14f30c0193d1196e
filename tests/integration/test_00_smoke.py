"""Smoke test: a dev server answers, and a config-file server survives init, unseal, restart.

Self-contained (no fixtures) so that it runs first and fails fast with the server's stderr
when the binary cannot serve at all.
"""
import json
import os
import pathlib
import signal
import socket
import subprocess
import time

import requests

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("COFFER_BIN", str(REPO / "build" / "coffer"))
SLOW = 3 if os.environ.get("COFFER_SANITIZED") else 1


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url, proc, errfile):
    deadline = time.time() + 20 * SLOW
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError("server exited %s: %s" % (proc.returncode, errfile.read_text()))
        try:
            requests.get(url + "/v1/sys/health", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise AssertionError("server did not answer: " + errfile.read_text())


def _stop(proc, errfile):
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30 * SLOW) == 0, errfile.read_text()
    err = errfile.read_text()
    assert "AddressSanitizer" not in err and "runtime error:" not in err, err


def test_dev_server_round_trip(tmp_path):
    port = _port()
    out, err = tmp_path / "out", tmp_path / "err"
    proc = subprocess.Popen([BIN, "server", "-dev", "-dev-root-token-id=smoke",
                             "-dev-listen-address=127.0.0.1:%d" % port],
                            stdout=out.open("w"), stderr=err.open("w"))
    url = "http://127.0.0.1:%d" % port
    try:
        _wait(url, proc, err)
        h = {"X-Vault-Token": "smoke"}
        r = requests.post(url + "/v1/secret/smoke", json={"v": "1"}, headers=h)
        assert r.status_code == 204
        r = requests.get(url + "/v1/secret/smoke", headers=h)
        assert r.status_code == 200 and r.json()["data"] == {"v": "1"}
        assert "Root Token: smoke" in out.read_text()
    finally:
        _stop(proc, err)


def test_config_server_init_unseal_restart(tmp_path):
    port = _port()
    cfg = tmp_path / "coffer.hcl"
    cfg.write_text(
        'storage "raft" {\n  path = "%s"\n  node_id = "smoke"\n}\n'
        'listener "tcp" {\n  address = "127.0.0.1:%d"\n  tls_disable = true\n}\n'
        'disable_mlock = true\n' % (tmp_path / "data", port))
    url = "http://127.0.0.1:%d" % port
    err = tmp_path / "err"

    def start():
        p = subprocess.Popen([BIN, "server", "-config=%s" % cfg],
                             stdout=subprocess.DEVNULL, stderr=err.open("a"))
        _wait(url, p, err)
        return p

    proc = start()
    try:
        assert requests.get(url + "/v1/sys/health").status_code == 501
        init = requests.put(url + "/v1/sys/init",
                            json={"secret_shares": 3, "secret_threshold": 2}).json()
        assert len(init["keys"]) == 3
        for k in init["keys"][:2]:
            st = requests.put(url + "/v1/sys/unseal", json={"key": k}).json()
        assert st["sealed"] is False
        h = {"X-Vault-Token": init["root_token"]}
        assert requests.post(url + "/v1/secret/kept", json={"x": "y"}, headers=h).status_code == 204
        _stop(proc, err)
        proc = start()
        assert requests.get(url + "/v1/sys/seal-status").json()["sealed"] is True
        assert requests.get(url + "/v1/secret/kept", headers=h).status_code == 503
        for k in init["keys_base64"][1:]:
            requests.put(url + "/v1/sys/unseal", json={"key": k})
        r = requests.get(url + "/v1/secret/kept", headers=h)
        assert r.status_code == 200 and r.json()["data"] == {"x": "y"}, json.dumps(r.json())
    finally:
        _stop(proc, err)
