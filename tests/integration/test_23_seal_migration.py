"""Seal migration (issue 6): Shamir -> static -> Shamir and Shamir -> PKCS#11 (SoftHSM2), with
the old seal's block kept as disabled = "true" and unseal with migrate=true, as Vault does it.
Data written before each move reads back after it and after restarts; the shares change roles
(unseal shares become recovery shares and back); refusals leave the node sealed and storage as
it was.
"""

import os
import subprocess
from pathlib import Path

import pytest
import requests
from mnemonic import Mnemonic

STATIC = 'seal "static" {{\n  provider = "environment"\n{extra}}}\n'
SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"


def status(s):
    return requests.get(s.url("sys/seal-status"), timeout=10).json()


def unseal(s, keys, migrate):
    for k in keys:
        r = requests.put(s.url("sys/unseal"), json={"key": k, "migrate": migrate}, timeout=30)
    return r


def set_seal(s, block):
    base = s.config.read_text().split("seal ")[0]
    s.config.write_text(base + block)


def test_shamir_to_static_and_back(make_server):
    phrase = Mnemonic("english").generate(strength=256)
    s = make_server("mig", env={"SEAL_UNSEAL_KEY": phrase})
    s.start()
    init = s.init(shares=3, threshold=2)
    s.unseal(init["keys_base64"], threshold=2)
    h = {"X-Vault-Token": init["root_token"]}
    assert requests.post(s.url("secret/a"), json={"v": "before"}, headers=h).status_code == 204
    s.stop()

    # Shamir -> static.
    set_seal(s, 'seal "shamir" {\n  disabled = "true"\n}\n' + STATIC.format(extra=""))
    s.start()
    st = status(s)
    assert st["migration"] is True and st["sealed"] is True and st["type"] == "shamir"
    assert "seal migration" in s.stderr()
    r = requests.put(s.url("sys/unseal"), json={"key": init["keys_base64"][0]})
    assert r.status_code == 400 and "migrate" in r.text
    r = unseal(s, ["AAAA" * 11, "BBBB" * 11], True)  # shares of no key
    assert r.status_code == 400 and status(s)["sealed"] is True
    r = unseal(s, init["keys_base64"][:2], True)
    assert r.status_code == 200, r.text
    st = r.json()
    assert st["sealed"] is False and st["migration"] is False and st["type"] == "static"
    assert st["recovery_seal"] is True and st["t"] == 2 and st["n"] == 3
    assert requests.get(s.url("secret/a"), headers=h).json()["data"] == {"v": "before"}
    assert requests.post(s.url("secret/b"), json={"v": "static"}, headers=h).status_code == 204

    # Restart: unsealed by the static seal; the old unseal shares are now recovery shares.
    s.stop()
    set_seal(s, STATIC.format(extra=""))
    s.start()
    assert status(s)["sealed"] is False
    start = requests.put(s.url("sys/generate-root/attempt"), json={}).json()
    for k in init["keys_base64"][:2]:
        r = requests.put(
            s.url("sys/generate-root/update"), json={"key": k, "nonce": start["nonce"]}
        )
    assert r.json()["complete"] is True
    s.stop()

    # static -> Shamir, refused first while a seal-wrapped mount exists.
    s.start()
    r = requests.post(s.url("sys/mounts/wrapped"), json={"type": "kv", "seal_wrap": True}, headers=h)
    assert r.status_code == 204, r.text
    s.stop()
    set_seal(s, STATIC.format(extra='  disabled = "true"\n'))
    s.start()
    st = status(s)
    assert st["migration"] is True and st["type"] == "static" and st["sealed"] is True
    r = unseal(s, init["keys_base64"][:2], True)
    assert r.status_code == 400 and "seal-wrapped mounts" in r.text
    assert status(s)["sealed"] is True and status(s)["type"] == "static"
    s.stop()
    set_seal(s, STATIC.format(extra=""))
    s.start()
    r = requests.delete(s.url("sys/mounts/wrapped"), headers=h)
    assert r.status_code == 204, r.text
    s.stop()
    set_seal(s, STATIC.format(extra='  disabled = "true"\n'))
    s.start()
    r = unseal(s, init["keys_base64"][1:3], True)
    assert r.status_code == 200, r.text
    st = r.json()
    assert st["sealed"] is False and st["type"] == "shamir" and st["recovery_seal"] is False
    assert st["t"] == 2 and st["n"] == 3

    # Under Shamir again: the recovery shares are the unseal shares.
    s.stop()
    set_seal(s, "")
    s.start()
    assert status(s)["sealed"] is True and status(s)["migration"] is False
    s.unseal([init["keys_base64"][0], init["keys_base64"][2]], threshold=2)
    for key, value in (("a", "before"), ("b", "static")):
        assert requests.get(s.url(f"secret/{key}"), headers=h).json()["data"] == {"v": value}


@pytest.mark.skipif(not Path(SOFTHSM).exists(), reason="softhsm2 not installed")
def test_shamir_to_pkcs11(make_server, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    env = {"SOFTHSM2_CONF": str(conf)}
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "mig", "--pin", "1234",
         "--so-pin", "5678"],
        env=dict(os.environ, **env), check=True, capture_output=True,
    )
    s = make_server("hsm", env=env)
    s.start()
    init = s.init(shares=1, threshold=1)
    s.unseal(init["keys_base64"])
    h = {"X-Vault-Token": init["root_token"]}
    assert requests.post(s.url("secret/x"), json={"v": "hsm"}, headers=h).status_code == 204
    s.stop()
    set_seal(
        s,
        'seal "shamir" {\n  disabled = "true"\n}\n'
        f'seal "pkcs11" {{\n  lib = "{SOFTHSM}"\n  token_label = "mig"\n  pin = "1234"\n'
        '  key_label = "mig-key"\n  generate_key = "true"\n}\n',
    )
    s.start()
    assert status(s)["migration"] is True
    r = unseal(s, init["keys_base64"], True)
    assert r.status_code == 200 and r.json()["type"] == "pkcs11", r.text
    s.stop()
    s.start()
    assert status(s)["sealed"] is False and status(s)["type"] == "pkcs11"
    assert requests.get(s.url("secret/x"), headers=h).json()["data"] == {"v": "hsm"}

    # And back: pkcs11 -> Shamir with the recovery shares (the old unseal key).
    s.stop()
    set_seal(
        s,
        f'seal "pkcs11" {{\n  lib = "{SOFTHSM}"\n  token_label = "mig"\n  pin = "1234"\n'
        '  key_label = "mig-key"\n  disabled = "true"\n}\n',
    )
    s.start()
    st = status(s)
    assert st["migration"] is True and st["type"] == "pkcs11"
    r = unseal(s, init["keys_base64"], True)
    assert r.status_code == 200 and r.json()["type"] == "shamir", r.text
    s.stop()
    set_seal(s, "")
    s.start()
    s.unseal(init["keys_base64"])
    assert requests.get(s.url("secret/x"), headers=h).json()["data"] == {"v": "hsm"}
