"""The PKCS#11 HSM seal (issue 6) against a real SoftHSM2 token: init with recovery keys,
auto-unseal after restarts, seal wrap on kv v1 and PKI mounts, and the failures an operator meets
(wrong PIN, missing key label, missing module, an HSM that loses its token while running, a token
whose key is not the one that wrapped the unseal key). Skipped when SoftHSM2 is not installed.
"""

import base64
import os
import subprocess
import time
from pathlib import Path

import pytest
import requests


MODULE = "/usr/lib/softhsm/libsofthsm2.so"
UTIL = "/usr/bin/softhsm2-util"

pytestmark = pytest.mark.skipif(
    not (Path(MODULE).exists() and Path(UTIL).exists()), reason="softhsm2 not installed"
)


class Hsm:
    """A SoftHSM2 token store of its own (SOFTHSM2_CONF) with one token."""

    def __init__(self, root):
        self.dir = Path(root) / "softhsm"
        (self.dir / "tokens").mkdir(parents=True)
        self.conf = self.dir / "softhsm2.conf"
        self.conf.write_text(
            f"directories.tokendir = {self.dir / 'tokens'}\nobjectstore.backend = file\n"
            "log.level = ERROR\n"
        )
        self.env = {"SOFTHSM2_CONF": str(self.conf)}

    def util(self, *args):
        return subprocess.run(
            [UTIL, *args], env=dict(os.environ, **self.env), capture_output=True, text=True
        )

    def init_token(self, label="coffer"):
        r = self.util("--init-token", "--free", "--label", label, "--pin", "1234", "--so-pin", "5678")
        assert r.returncode == 0, r.stderr

    def delete_token(self, label="coffer"):
        r = self.util("--delete-token", "--token", label)
        assert r.returncode == 0, r.stderr


def pkcs11_block(**over):
    fields = {
        "lib": MODULE,
        "token_label": "coffer",
        "pin": "1234",
        "key_label": "coffer-seal-key",
        "hmac_key_label": "coffer-hmac-key",
        "generate_key": "true",
    }
    fields.update(over)
    body = "".join(f'  {k} = "{v}"\n' for k, v in fields.items() if v is not None)
    return f'seal "pkcs11" {{\n{body}}}\nraw_storage_endpoint = true\n'


@pytest.fixture
def hsm(tmp_path):
    h = Hsm(tmp_path)
    h.init_token()
    return h


@pytest.fixture
def make(make_server, hsm):
    def _make(name, block=None, env=None):
        return make_server(
            name, block if block is not None else pkcs11_block(), dict(hsm.env, **(env or {}))
        )

    return _make


def status(s):
    return requests.get(s.url("sys/seal-status"), timeout=10).json()


def init(s):
    r = requests.put(s.url("sys/init"), json={"recovery_shares": 3, "recovery_threshold": 2})
    assert r.status_code == 200, r.text
    return r.json()


def test_pkcs11_init_restart_and_seal_wrap(make):
    s = make("node")
    s.start()
    st = status(s)
    assert st["type"] == "pkcs11" and st["recovery_seal"] is True and st["initialized"] is False
    res = init(s)
    assert res["keys"] == [] and len(res["recovery_keys_base64"]) == 3
    token = res["root_token"]
    h = {"X-Vault-Token": token}
    st = status(s)
    assert st["sealed"] is False and st["t"] == 2 and st["n"] == 3

    for path, wrap in (("kv-unwrapped", False), ("kv-seal-wrapped", True)):
        r = requests.post(
            s.url(f"sys/mounts/{path}"),
            json={"type": "kv", "options": {"version": "1"}, "seal_wrap": wrap},
            headers=h,
        )
        assert r.status_code == 204, r.text
    secret = "hsm-" + os.urandom(8).hex()
    for path in ("kv-unwrapped", "kv-seal-wrapped"):
        r = requests.post(s.url(f"{path}/foo"), json={"bar": secret}, headers=h)
        assert r.status_code == 204, r.text
    mounts = requests.get(s.url("sys/mounts"), headers=h).json()["data"]
    assert mounts["kv-seal-wrapped/"]["seal_wrap"] is True
    plain = requests.get(
        s.url(f"sys/raw/logical/{mounts['kv-unwrapped/']['uuid']}/foo"), headers=h
    ).json()["data"]["value"]
    wrapped = base64.b64decode(
        requests.get(
            s.url(f"sys/raw/logical/{mounts['kv-seal-wrapped/']['uuid']}/foo"),
            params={"encoding": "base64"},
            headers=h,
        ).json()["data"]["value"]
    )
    assert secret in plain
    assert secret.encode() not in wrapped and len(wrapped) > len(plain)
    # Envelope: magic, the data key as the HSM sealed it (format 0x01, 12-byte IV, 32-byte key,
    # 16-byte tag), then nonce, ciphertext and tag under the data key.
    sealed_len = int.from_bytes(wrapped[4:6], "big")
    assert wrapped[:4] == b"\x00sw\x02" and sealed_len == 1 + 12 + 32 + 16 and wrapped[6] == 1
    assert len(wrapped) == 6 + sealed_len + 12 + len(plain) + 16

    # PKI on a seal-wrapped mount: the issuer key lives wrapped by the HSM.
    r = requests.post(s.url("sys/mounts/pki"), json={"type": "pki", "seal_wrap": True}, headers=h)
    assert r.status_code == 204, r.text
    r = requests.post(
        s.url("pki/root/generate/internal"), json={"common_name": "hsm root", "key_type": "ec", "ttl": "8760h"},
        headers=h,
    )
    assert r.status_code == 200, r.text
    r = requests.post(s.url("pki/roles/r"), json={"allow_any_name": True, "ttl": "1h"}, headers=h)
    assert r.status_code in (200, 204), r.text

    # Restart: unsealed by the HSM with no operator; everything reads back.
    s.stop()
    s.start()
    assert status(s)["sealed"] is False
    for path in ("kv-unwrapped", "kv-seal-wrapped"):
        r = requests.get(s.url(f"{path}/foo"), headers=h)
        assert r.status_code == 200 and r.json()["data"] == {"bar": secret}, r.text
    r = requests.post(s.url("pki/issue/r"), json={"common_name": "x.example"}, headers=h)
    assert r.status_code == 200, r.text
    s.stop()
    for f in s.data_dir.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


def test_pkcs11_hsm_lost_while_running_and_wrong_key(make, hsm):
    s = make("lost")
    s.start()
    token = init(s)["root_token"]
    h = {"X-Vault-Token": token}
    r = requests.post(
        s.url("sys/mounts/kvw"), json={"type": "kv", "seal_wrap": True}, headers=h
    )
    assert r.status_code == 204, r.text
    r = requests.post(s.url("kvw/a"), json={"v": "1"}, headers=h)
    assert r.status_code == 204, r.text

    # The token disappears under the running node. Values already open stay readable until the
    # seal's health probe (every 5 s) finds the HSM gone; then the node seals itself, says why,
    # and refuses requests instead of serving without its seal.
    hsm.delete_token()
    deadline = time.monotonic() + 20
    while status(s)["sealed"] is False:
        assert time.monotonic() < deadline, "the node kept serving without its HSM"
        time.sleep(0.2)
    assert "the seal failed its health check" in s.stderr() and "CKR_" in s.stderr()
    r = requests.get(s.url("kvw/a"), headers=h)
    assert r.status_code == 503, r.text
    r = requests.put(s.url("sys/unseal"), json={"key": "x"}, timeout=10)
    assert r.status_code == 500 and "CKR_" in r.text, r.text
    assert status(s)["sealed"] is True
    s.stop()

    # Without its token the node cannot start its seal and says why.
    err = s.start_fails()
    assert 'no token with label "coffer"' in err or "coffer" in err, err

    # A new token with the same label and a new key: the seal opens, but the key is not the
    # one that wrapped the unseal key, so the node stays sealed instead of serving.
    hsm.init_token()
    s.start()
    st = status(s)
    assert st["initialized"] is True and st["sealed"] is True
    assert requests.get(s.url("sys/health")).status_code == 503
    assert "auto-unseal failed" in s.stderr()
    r = requests.put(s.url("sys/unseal"), json={"key": "x"}, timeout=10)
    assert r.status_code == 500 and status(s)["sealed"] is True
    r = requests.get(s.url("kvw/a"), headers=h)
    assert r.status_code == 503


@pytest.mark.parametrize(
    "over,message",
    [
        ({"pin": "9999"}, "CKR_PIN_INCORRECT"),
        ({"generate_key": "false", "key_label": "absent"}, 'no key with label "absent"'),
        ({"lib": "/nonexistent/libpkcs11.so"}, "/nonexistent/libpkcs11.so"),
        ({"mechanism": "0x1085"}, "0x1087"),
        ({"token_label": None}, "missing \"slot\" or \"token_label\""),
        ({"pin": None}, "VAULT_HSM_PIN"),
        ({"colour": "blue"}, 'unknown field "colour"'),
    ],
)
def test_pkcs11_bad_config_refused(make, over, message):
    s = make("bad", pkcs11_block(**over))
    err = s.start_fails()
    assert message in err, err


def test_pkcs11_env_overrides_pin(make):
    s = make("envpin", pkcs11_block(pin="9999"), env={"VAULT_HSM_PIN": "1234"})
    s.start()
    init(s)
    assert status(s)["sealed"] is False
