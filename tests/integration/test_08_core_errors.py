"""Bad input and wire behaviour of the foundation: every refusal has Vault's shape and status,
and changes nothing. Also HTTP/2, TLS, slow clients, config-file errors and damaged data dirs.
"""
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest
import requests

from _procs import SCALE, Server, coffer_bin, free_port


@pytest.fixture
def node(tmp_path):
    """An initialized (3 of 5) and unsealed config-file server."""
    s = Server(tmp_path)
    s.start()
    init = s.init(shares=5, threshold=3)
    s.unseal(init["keys"], threshold=3)
    s.keys = init["keys"]
    s.keys_b64 = init["keys_base64"]
    s.token = init["root_token"]
    s.h = {"X-Vault-Token": s.token}
    yield s
    s.stop()


def err_shape(r, status, text=None):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert list(body) == ["errors"] and isinstance(body["errors"], list), body
    if text is not None:
        assert any(text in e for e in body["errors"]), body


def test_envelope_and_status_codes(node):
    u = node.url
    r = requests.post(u("secret/a"), json={"k": "v", "ttl": "1h"}, headers=node.h)
    assert r.status_code == 204 and r.content == b"" and r.headers["Cache-Control"] == "no-store"
    r = requests.get(u("secret/a"), headers={"Authorization": "Bearer " + node.token})
    body = r.json()
    for key in ("request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info",
                "warnings", "auth"):
        assert key in body
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        body["request_id"])
    assert body["lease_duration"] == 3600 and body["data"]["k"] == "v"
    requests.post(u("secret/dir/b"), json={"x": 1}, headers=node.h)
    r = requests.request("LIST", u("secret"), headers=node.h)
    assert r.json()["data"]["keys"] == ["a", "dir/"]
    r = requests.get(u("secret/?list=true"), headers=node.h)
    assert r.json()["data"]["keys"] == ["a", "dir/"]
    err_shape(requests.request("LIST", u("secret/none"), headers=node.h), 404)
    assert requests.request("LIST", u("secret/none"), headers=node.h).json() == {"errors": []}
    err_shape(requests.get(u("secret/missing"), headers=node.h), 404)
    err_shape(requests.get(u("secret/a")), 403, "permission denied")
    err_shape(requests.get(u("secret/a"), headers={"X-Vault-Token": "hvs.wrong"}), 403)
    err_shape(requests.get(u("nomount/x"), headers=node.h), 404, "no handler for route")
    err_shape(requests.get(node.addr + "/v2/x", headers=node.h), 404)
    err_shape(requests.post(u("sys/seal-status")), 405)
    err_shape(requests.request("OPTIONS", u("secret/a"), headers=node.h), 405)
    err_shape(requests.patch(u("secret/a"), json={}, headers=node.h), 415)
    err_shape(requests.post(u("secret/a"), headers=node.h), 400, "missing data fields")
    r = requests.get(u("sys/key-status"), headers={**node.h, "X-Vault-Request": "true"})
    assert r.json()["term"] == r.json()["data"]["term"] == 1
    assert requests.get(u("secret/a"), headers=node.h).json()["data"]["k"] == "v"


def test_malformed_and_wrong_types_change_nothing(node):
    u = node.url
    requests.post(u("secret/keep"), json={"v": 1}, headers=node.h)
    err_shape(requests.post(u("secret/keep"), data=b'{"v": 2', headers=node.h), 400,
              "error parsing JSON")
    err_shape(requests.post(u("secret/keep"), data=b"[1,2]", headers=node.h), 400)
    err_shape(requests.post(u("secret/keep"), json={"v": 3, "ttl": "soon"}, headers=node.h), 400)
    assert requests.get(u("secret/keep"), headers=node.h).json()["data"] == {"v": 1}
    err_shape(requests.put(u("sys/init"), json={"secret_shares": "five"}), 400)
    err_shape(requests.put(u("sys/unseal"), json={"key": 123}), 400)
    assert requests.get(u("sys/seal-status")).json()["sealed"] is False


def test_body_over_32mib_is_413(node):
    body = b'{"v":"' + b"a" * (33 * 1024 * 1024) + b'"}'
    with socket.create_connection(("127.0.0.1", node.port)) as s:
        s.sendall(b"POST /v1/secret/big HTTP/1.1\r\nHost: x\r\nX-Vault-Token: " +
                  node.token.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body))
        try:
            s.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.settimeout(10)
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 413"), head[:100]
    assert b"request body too large" in head
    err_shape(requests.get(node.url("secret/big"), headers=node.h), 404)


def test_init_errors(tmp_path):
    s = Server(tmp_path)
    s.start()
    try:
        u = s.url
        assert requests.get(u("sys/health")).status_code == 501
        assert requests.head(u("sys/health")).status_code == 501
        err_shape(requests.get(u("secret/x"), headers={"X-Vault-Token": "x"}), 503,
                  "Vault is sealed")
        err_shape(requests.put(u("sys/unseal"), json={"key": "00" * 33}), 400, "not initialized")
        for body, msg in [
            ({"secret_shares": 0, "secret_threshold": 1}, "shares must be at least one"),
            ({"secret_shares": 3, "secret_threshold": 0}, "threshold must be at least one"),
            ({"secret_shares": 3, "secret_threshold": 1}, "greater than one for multiple"),
            ({"secret_shares": 256, "secret_threshold": 2}, "shares must be less than 256"),
            ({"secret_shares": 2, "secret_threshold": 3}, "cannot be larger than shares"),
            ({"secret_shares": 3, "secret_threshold": 2, "recovery_shares": 1}, "not applicable"),
            ({"secret_shares": "3", "secret_threshold": 2}, "must be an integer"),
        ]:
            err_shape(requests.put(u("sys/init"), json=body), 400, msg)
            assert requests.get(u("sys/init")).json() == {"initialized": False}
        init = s.init(shares=2, threshold=2)
        err_shape(requests.put(u("sys/init"), json={"secret_shares": 1, "secret_threshold": 1}),
                  400, "already initialized")
        st = requests.get(u("sys/seal-status")).json()
        assert st["initialized"] and st["sealed"] and st["t"] == 2 and st["n"] == 2
        assert requests.get(u("sys/health")).status_code == 503
        assert requests.get(u("sys/health?sealedcode=299")).status_code == 299
        err_shape(requests.get(u("sys/health?sealedcode=abc")), 400)
        s.unseal(init["keys"])
        assert requests.get(u("sys/health?activecode=202")).status_code == 202
    finally:
        s.stop()


def test_unseal_errors_and_foreign_shares(tmp_path):
    other = Server(tmp_path / "other")
    other.start()
    foreign = other.init(shares=3, threshold=2)["keys"]
    other.stop()
    s = Server(tmp_path / "main")
    s.start()
    try:
        keys = s.init(shares=3, threshold=2)["keys"]
        u = s.url("sys/unseal")
        err_shape(requests.put(u, json={}), 400, "'key' must be specified")
        err_shape(requests.put(u, json={"key": "not hex or base64!"}), 400, "valid hex or base64")
        err_shape(requests.put(u, json={"key": "abcd"}), 400, "invalid key")
        r = requests.put(u, json={"key": keys[0]}).json()
        assert r["progress"] == 1 and r["nonce"]
        assert requests.put(u, json={"key": keys[0]}).json()["progress"] == 1  # duplicate
        err_shape(requests.put(u, json={"key": foreign[0]}), 400, "invalid key")
        st = requests.get(s.url("sys/seal-status")).json()
        assert st["sealed"] is True and st["progress"] == 0 and st["nonce"] == ""
        requests.put(u, json={"key": keys[1]})
        assert requests.put(u, json={"reset": True}).json()["progress"] == 0
        s.unseal(keys[1:])
        err_shape(requests.put(u, json={"reset": True}), 400, "vault is unsealed")
        r = requests.put(u, json={"key": keys[0]})
        assert r.status_code == 200 and r.json()["sealed"] is False
        h = {"X-Vault-Token": "wrong"}
        err_shape(requests.put(s.url("sys/seal"), headers=h), 403)
        assert requests.get(s.url("sys/seal-status")).json()["sealed"] is False
    finally:
        s.stop()


def test_seal_drops_access(node):
    requests.post(node.url("secret/s"), json={"v": 1}, headers=node.h)
    r = requests.put(node.url("sys/seal"), headers=node.h)
    assert r.status_code == 204
    err_shape(requests.get(node.url("secret/s"), headers=node.h), 503, "Vault is sealed")
    err_shape(requests.get(node.url("sys/leader")), 503)
    node.unseal(node.keys_b64[2:], threshold=3)
    assert requests.get(node.url("secret/s"), headers=node.h).json()["data"] == {"v": 1}
    r = requests.get(node.url("sys/leader")).json()
    assert r["ha_enabled"] and r["is_self"] and r["leader_address"] == node.addr


def test_rotate_keeps_old_data(node):
    requests.post(node.url("secret/old"), json={"v": "before"}, headers=node.h)
    assert requests.post(node.url("sys/rotate"), headers=node.h).status_code == 204
    assert requests.get(node.url("sys/key-status"), headers=node.h).json()["data"]["term"] == 2
    requests.post(node.url("secret/new"), json={"v": "after"}, headers=node.h)
    node.stop()
    node.start()
    node.unseal(node.keys, threshold=3)
    assert requests.get(node.url("secret/old"), headers=node.h).json()["data"]["v"] == "before"
    assert requests.get(node.url("secret/new"), headers=node.h).json()["data"]["v"] == "after"
    assert requests.get(node.url("sys/key-status"), headers=node.h).json()["term"] == 2


def test_http2_prior_knowledge(node):
    out = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-H",
                          "X-Vault-Token: " + node.token, "-w", "\n%{http_version}",
                          node.url("sys/key-status")], capture_output=True, text=True, check=True)
    body, version = out.stdout.rsplit("\n", 1)
    assert version == "2" and json.loads(body)["data"]["term"] == 1


def _cert(dirpath, name):
    key, cert = dirpath / (name + ".key"), dirpath / (name + ".pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


def _serial(port):
    out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port],
                         input="", capture_output=True, text=True, timeout=10)
    pem = out.stdout[out.stdout.index("-----BEGIN"):out.stdout.index("-----END CERTIFICATE-----")
                     + 25]
    return subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem,
                          capture_output=True, text=True).stdout.strip()


def test_tls_h2_min_version_and_sighup_reload(tmp_path):
    cert, key = _cert(tmp_path, "a")
    s = Server(tmp_path)
    s.addr = "https://127.0.0.1:%d" % s.port
    s.config.write_text(s.config.read_text().replace(
        "tls_disable = true", 'tls_cert_file = "%s"\n  tls_key_file = "%s"' % (cert, key)))
    os.environ["REQUESTS_CA_BUNDLE"] = str(cert)
    try:
        s.proc = subprocess.Popen([coffer_bin(), "server", "-config=%s" % s.config],
                                  stdout=subprocess.DEVNULL,
                                  stderr=open(tmp_path / "err", "w"))
        deadline = time.time() + 10 * SCALE
        while True:
            try:
                r = requests.get(s.url("sys/health"), verify=str(cert), timeout=1)
                break
            except requests.RequestException:
                assert time.time() < deadline, (tmp_path / "err").read_text()
                time.sleep(0.05)
        assert r.status_code == 501
        out = subprocess.run(["curl", "-s", "--http2", "--cacert", str(cert), "-o", "/dev/null",
                              "-w", "%{http_version}", s.url("sys/health")],
                             capture_output=True, text=True)
        assert out.stdout == "2"
        old = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % s.port,
                              "-tls1_1"], input="", capture_output=True, text=True, timeout=10)
        assert "BEGIN CERTIFICATE" not in old.stdout
        before = _serial(s.port)
        cert2, key2 = _cert(tmp_path, "b")
        cert.write_bytes(cert2.read_bytes())
        key.write_bytes(key2.read_bytes())
        s.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5 * SCALE)
        assert _serial(s.port) != before
        assert requests.get(s.url("sys/health"), verify=str(cert)).status_code == 501
        s.proc.send_signal(signal.SIGINT)
        assert s.proc.wait(20 * SCALE) == 0
        s.proc = None
    finally:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
        s.close()


def test_slow_client_is_cut_off_and_others_served(tmp_path):
    s = Server(tmp_path)
    s.config.write_text(s.config.read_text().replace(
        "tls_disable = true", 'tls_disable = true\n  http_read_header_timeout = "1s"'))
    s.start()
    try:
        slow = socket.create_connection(("127.0.0.1", s.port))
        slow.sendall(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n")
        t0 = time.time()
        for _ in range(20):
            assert requests.get(s.url("sys/seal-status")).status_code == 200
        slow.settimeout(10 * SCALE)
        data = b""
        while True:
            chunk = slow.recv(4096)
            if not chunk:
                break
            data += chunk
        assert time.time() - t0 < 8 * SCALE
        assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:80]
        slow.close()
        assert requests.get(s.url("sys/seal-status")).status_code == 200
    finally:
        s.stop()


BAD_CONFIGS = [
    ('storage "raft" {\n  path = "/tmp/x"\n', None, "unterminated"),
    ('listener "tcp" {\n  tls_disable = true\n}\n', None, "storage"),
    ('storage "raft" { path = "/tmp/x" }\nlistener "tcp" { tls_disable = true }\nbogus = 1\n',
     3, "bogus"),
    ('storage "raft" { path = "/tmp/x" }\nlistener "tcp" {\n  address = "nope"\n'
     '  tls_disable = true\n}\n', 3, "host:port"),
    ('storage "raft" { path = "/tmp/x" }\nlistener "tcp" { tls_disable = true }\n'
     'seal "awskms" {}\n', 3, "awskms"),
    ('storage "raft" { path = "/tmp/x" }\nlistener "tcp" {\n  address = "127.0.0.1:1"\n}\n',
     2, "tls_cert_file"),
    ('storage "consul" { path = "/tmp/x" }\n', 1, "consul"),
]


@pytest.mark.parametrize("text,line,word", BAD_CONFIGS)
def test_config_errors_name_file_and_line(tmp_path, text, line, word):
    cfg = tmp_path / "bad.hcl"
    cfg.write_text(text)
    p = subprocess.run([coffer_bin(), "server", "-config=%s" % cfg], capture_output=True,
                       text=True, timeout=20 * SCALE)
    assert p.returncode == 1, p.stderr
    assert str(cfg) in p.stderr and word in p.stderr, p.stderr
    if line is not None:
        assert "%s:%d:" % (cfg, line) in p.stderr, p.stderr


def _damaged(tmp_path, damage):
    s = Server(tmp_path)
    s.start()
    init = s.init(shares=1, threshold=1)
    s.unseal(init["keys"])
    for i in range(20):
        s.session.post(s.url("secret/d%d" % i), json={"i": i},
                       headers={"X-Vault-Token": init["root_token"]})
    s.stop()
    damage(s.data_dir)
    p = subprocess.run([coffer_bin(), "server", "-config=%s" % s.config], capture_output=True,
                       text=True, timeout=20 * SCALE)
    return p


def test_garbage_metadata_refused_cleanly(tmp_path):
    def damage(d):
        for name in ("metadata1", "metadata2"):
            if (d / name).exists():
                (d / name).write_bytes(os.urandom(32))
    p = _damaged(tmp_path, damage)
    assert p.returncode == 1, p.stderr
    assert "start storage" in p.stderr or "storage" in p.stderr, p.stderr
    assert "AddressSanitizer" not in p.stderr and "runtime error" not in p.stderr


def test_truncated_segment_refused_cleanly(tmp_path):
    def damage(d):
        segs = sorted(f for f in d.iterdir() if re.fullmatch(r"\d{16}-\d{16}", f.name))
        seg = segs[-1]
        data = seg.read_bytes()
        seg.write_bytes(data[:len(data) // 2])
    p = _damaged(tmp_path, damage)
    assert p.returncode == 1, p.stderr
    assert "segment" in p.stderr, p.stderr
    assert "AddressSanitizer" not in p.stderr and "runtime error" not in p.stderr


def test_paths_utf8_and_length(node):
    u = node.url
    assert requests.post(u("secret/été/clé"), json={"v": 1}, headers=node.h).status_code == 204
    assert requests.request("LIST", u("secret/été"), headers=node.h).json()["data"]["keys"] == \
        ["clé"]
    err_shape(requests.get(node.addr + "/v1/secret/a%FFb", headers=node.h), 400, "UTF-8")
    err_shape(requests.get(node.addr + "/v1/secret/a%00b", headers=node.h), 400)
    err_shape(requests.post(u("secret/" + "x" * 5000), json={"v": 1}, headers=node.h), 400,
              "too long")
    assert requests.request("LIST", u("secret"), headers=node.h).json()["data"]["keys"] == \
        ["été/"]
