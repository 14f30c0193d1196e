"""Audit devices: the file device, HMAC'd entries, sys/audit-hash and the failure rule."""
import json
import os
import subprocess
import time

import pytest


def lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def audit_hash(node, device, value):
    r = node.req("POST", f"sys/audit-hash/{device}", json={"input": value})
    assert r.status_code == 200, r.text
    assert r.json()["hash"] == r.json()["data"]["hash"]
    return r.json()["hash"]


def wait_for(pred, timeout=5):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_file_device_entries_hmacd(node, tmp_path):
    log = tmp_path / "audit.log"
    c = node.client()
    c.sys.enable_audit_device(device_type="file", path="file1",
                              options={"file_path": str(log)})
    listed = c.sys.list_enabled_audit_devices()
    assert listed["file1/"]["type"] == "file"
    assert listed["data"]["file1/"]["options"]["file_path"] == str(log)
    c.write("secret/audited", password="hunter2", n=7)
    r = node.req("GET", "secret/audited")
    assert r.status_code == 200
    entries = lines(log)
    writes = [e for e in entries if e["request"]["path"] == "secret/audited"]
    assert [e["type"] for e in writes] == ["request", "response", "request", "response"]
    for e in entries:
        assert e["time"].endswith("Z")
        if e["request"]["path"] == "sys/audit/test":
            continue  # the device's sanity-check line, as Vault writes it
        assert e["request"]["client_token"].startswith("hmac-sha256:")
        assert node.root not in json.dumps(e)
    req = writes[0]["request"]
    assert req["operation"] in ("create", "update")
    assert req["data"]["password"] == audit_hash(node, "file1", "hunter2")
    assert req["data"]["n"] == 7
    assert req["client_token"] == audit_hash(node, "file1", node.root)
    resp = writes[3]["response"]
    assert resp["data"]["password"] == audit_hash(node, "file1", "hunter2")
    assert "hunter2" not in log.read_text()
    assert writes[1]["auth"]["policies"] == ["root"]
    c.sys.disable_audit_device("file1")
    n = len(lines(log))
    node.req("GET", "secret/audited")
    assert len(lines(log)) == n
    assert "file1/" not in c.sys.list_enabled_audit_devices()["data"]


def test_log_raw_and_denied_requests(node, tmp_path):
    log = tmp_path / "raw.log"
    c = node.client()
    c.sys.enable_audit_device(device_type="file", path="raw",
                              options={"file_path": str(log), "log_raw": "true"})
    c.write("secret/raw", v="visible")
    tok = c.auth.token.create(policies=["nothing"], ttl="1h")["auth"]["client_token"]
    assert node.req("GET", "secret/raw", token=tok).status_code == 403
    entries = lines(log)
    assert any(e["request"].get("data", {}).get("v") == "visible" for e in entries)
    denied = [e for e in entries if e["request"]["path"] == "secret/raw"
              and e.get("error") == "permission denied"]
    assert {e["type"] for e in denied} == {"request", "response"}
    assert denied[0]["auth"]["policy_results"]["allowed"] is False
    c.sys.disable_audit_device("raw")


def test_unwrap_is_audited(node, tmp_path):
    log = tmp_path / "wrap.log"
    c = node.client()
    c.sys.enable_audit_device(device_type="file", path="wraplog",
                              options={"file_path": str(log)})
    c.write("secret/stolen", v="x")
    r = node.req("GET", "secret/stolen", headers={"X-Vault-Wrap-TTL": "60"})
    tok = r.json()["wrap_info"]["token"]
    import requests
    look = requests.post(node.url("sys/wrapping/lookup"), json={"token": tok}, timeout=10)
    assert look.status_code == 200
    got = requests.post(node.url("sys/wrapping/unwrap"), headers={"X-Vault-Token": tok},
                        timeout=10)
    assert got.status_code == 200
    h = audit_hash(node, "wraplog", tok)
    entries = lines(log)
    unwraps = [e for e in entries if e["request"]["path"] == "sys/wrapping/unwrap"]
    assert unwraps and all(e["request"]["client_token"] == h for e in unwraps)
    lookups = [e for e in entries if e["request"]["path"] == "sys/wrapping/lookup"]
    assert lookups and lookups[0]["request"]["data"]["token"] == h
    wrapped = [e for e in entries if e["type"] == "response" and
               e["request"]["path"] == "secret/stolen" and e["request"]["operation"] == "read"]
    assert wrapped[0]["response"]["wrap_info"]["token"] == h
    c.sys.disable_audit_device("wraplog")


def test_enable_errors_change_nothing(node, tmp_path):
    before = node.req("GET", "sys/audit").json()["data"]
    r = node.req("PUT", "sys/audit/bad", json={"type": "file",
                                               "options": {"file_path": "/nonexistent/dir/a"}})
    assert r.status_code == 400
    r = node.req("PUT", "sys/audit/bad2", json={"type": "carrier-pigeon",
                                                "options": {"file_path": str(tmp_path / "x")}})
    assert r.status_code == 400
    r = node.req("PUT", "sys/audit/bad3", json={})
    assert r.status_code == 400
    assert node.req("GET", "sys/audit").json()["data"] == before
    # sudo is needed for the audit endpoints
    tok = node.client().auth.token.create(policies=["default"], ttl="1h")["auth"]["client_token"]
    assert node.req("GET", "sys/audit", token=tok).status_code == 403


def test_devices_survive_restart(node, tmp_path):
    log = tmp_path / "persist.log"
    node.client().sys.enable_audit_device(device_type="file", path="persist",
                                          options={"file_path": str(log)})
    h1 = audit_hash(node, "persist", "abc")
    node.restart()
    assert audit_hash(node, "persist", "abc") == h1
    node.req("GET", "sys/audit")
    assert any(e["request"]["path"] == "sys/audit" for e in lines(log))
    node.client().sys.disable_audit_device("persist")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a tmpfs")
def test_full_disk_fails_requests(node, tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)]).returncode:
        pytest.skip("tmpfs mount failed")
    try:
        c = node.client()
        c.sys.enable_audit_device(device_type="file", path="tiny",
                                  options={"file_path": str(mnt / "audit.log")})
        c.write("secret/fill", v="before")
        with open(mnt / "filler", "wb") as f:
            try:
                f.write(b"\0" * (1 << 20))
            except OSError:
                pass
        # Larger than a page: the log file's partly used last page cannot absorb the line.
        r = node.req("POST", "secret/fill", json={"v": "after" * 3000})
        assert r.status_code == 500 and r.json() == {"errors": ["internal error"]}
        os.unlink(mnt / "filler")
        assert node.req("GET", "secret/fill").json()["data"] == {"v": "before"}
        c.sys.disable_audit_device("tiny")
    finally:
        subprocess.run(["umount", "-l", str(mnt)])
