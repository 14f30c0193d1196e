"""Root token generation and rekey (issue 6: recovery keys authorize generate-root and the rekey
of the recovery shares): with the Shamir seal's unseal shares and with a static seal's recovery
shares, through hvac and raw requests; every refusal leaves the keys as they were.
"""

import base64
import hashlib

import hvac
import pytest
import requests
from mnemonic import Mnemonic


def decode_root(encoded, otp):
    raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    return bytes(a ^ b for a, b in zip(raw, otp.encode())).decode()


def generate_root(c, keys):
    """A root token through hvac: attempt, then shares until complete."""
    start = c.sys.start_root_token_generation()
    otp, nonce = start["otp"], start["nonce"]
    assert len(otp) == start["otp_length"] == 28
    for k in keys:
        res = c.sys.generate_root(key=k, nonce=nonce)
    assert res["complete"] is True
    return decode_root(res["encoded_token"], otp)


def lookup_policies(addr, token):
    r = requests.get(f"{addr}/v1/auth/token/lookup-self", headers={"X-Vault-Token": token})
    assert r.status_code == 200, r.text
    return r.json()["data"]["policies"]


@pytest.fixture
def shamir(make_server):
    s = make_server("shamir")
    s.start()
    init = s.init(shares=5, threshold=3)
    s.unseal(init["keys_base64"], threshold=3)
    return s, init


def test_generate_root_with_unseal_shares(shamir):
    s, init = shamir
    c = hvac.Client(url=s.addr)
    st = c.sys.read_root_generation_progress()
    assert st["started"] is False and st["required"] == 3 and st["otp_length"] == 28

    url = s.url("sys/generate-root/update")
    r = requests.put(url, json={"key": init["keys"][0], "nonce": "x"})
    assert r.status_code == 400 and "no root generation in progress" in r.text

    token = generate_root(c, init["keys"][1:4])
    assert token.startswith("hvs.") and token != init["root_token"]
    assert lookup_policies(s.addr, token) == ["root"]
    assert c.sys.read_root_generation_progress()["started"] is False

    # Refusals: a second attempt, a wrong nonce, a bad encoding, keys of another cluster.
    start = c.sys.start_root_token_generation()
    r = requests.put(s.url("sys/generate-root/attempt"), json={})
    assert r.status_code == 400 and "already in progress" in r.text
    r = requests.put(url, json={"key": init["keys"][0], "nonce": "wrong"})
    assert r.status_code == 400 and "incorrect nonce" in r.text
    r = requests.put(url, json={"key": "not a key!", "nonce": start["nonce"]})
    assert r.status_code == 400 and "valid hex or base64" in r.text
    r = requests.put(url, json={"key": init["keys"][0], "nonce": start["nonce"]})
    assert r.status_code == 200 and r.json()["progress"] == 1
    r = requests.put(url, json={"key": init["keys"][0], "nonce": start["nonce"]})
    assert r.json()["progress"] == 1, "the same share twice does not count"
    other = [hashlib.sha256(bytes([i])).hexdigest() + "01" for i in range(2)]
    for k in other:
        r = requests.put(url, json={"key": k, "nonce": start["nonce"]})
    assert r.status_code == 400 and "do not combine to the unseal key" in r.text
    assert c.sys.read_root_generation_progress()["progress"] == 0
    r = requests.put(s.url("sys/generate-root/attempt"), json={"pgp_key": "AAAA"})
    assert r.status_code == 400
    r = requests.delete(s.url("sys/generate-root/attempt"))
    assert r.status_code == 204
    assert c.sys.read_root_generation_progress()["started"] is False


def test_rekey_unseal_shares(shamir):
    s, init = shamir
    c = hvac.Client(url=s.addr)
    r = requests.put(s.url("sys/rekey/init"), json={"secret_shares": 3, "secret_threshold": 4})
    assert r.status_code == 400 and "cannot be larger" in r.text
    r = requests.put(s.url("sys/rekey/init"), json={"secret_shares": 3, "pgp_keys": ["x"]})
    assert r.status_code == 400 and "pgp_keys" in r.text
    st = c.sys.start_rekey(secret_shares=3, secret_threshold=2)
    assert st["started"] is True and st["required"] == 3 and st["n"] == 3 and st["t"] == 2
    r = requests.put(s.url("sys/rekey/init"), json={"secret_shares": 3, "secret_threshold": 2})
    assert r.status_code == 400 and "already in progress" in r.text
    for k in init["keys"][:3]:
        res = c.sys.rekey(key=k, nonce=st["nonce"])
    assert res["complete"] is True and len(res["keys"]) == 3
    new = res["keys_base64"]
    assert not set(new) & set(init["keys_base64"])
    st = requests.get(s.url("sys/seal-status")).json()
    assert st["t"] == 2 and st["n"] == 3

    # Old shares no longer unseal; two of the new ones do, after a restart too.
    h = {"X-Vault-Token": init["root_token"]}
    assert requests.put(s.url("sys/seal"), headers=h).status_code == 204
    for k in init["keys_base64"][:2]:  # the new threshold is 2
        r = requests.put(s.url("sys/unseal"), json={"key": k})
    assert r.status_code == 400 and "invalid key" in r.text
    assert requests.get(s.url("sys/seal-status")).json()["sealed"] is True
    s.stop()
    s.start()
    s.unseal(new, threshold=2)
    assert requests.get(s.url("secret/x"), headers=h).status_code == 404


def test_recovery_keys_authorize_genroot_and_rekey(make_server):
    phrase = Mnemonic("english").generate(strength=256)
    s = make_server(
        "recovery",
        'seal "static" {\n  provider = "environment"\n}\n',
        env={"SEAL_UNSEAL_KEY": phrase},
    )
    s.start()
    r = requests.put(s.url("sys/init"), json={"recovery_shares": 3, "recovery_threshold": 2})
    init = r.json()
    c = hvac.Client(url=s.addr)
    assert c.sys.read_root_generation_progress()["required"] == 2

    token = generate_root(c, init["recovery_keys"][:2])
    assert lookup_policies(s.addr, token) == ["root"]

    r = requests.put(s.url("sys/rekey/init"), json={"secret_shares": 1, "secret_threshold": 1})
    assert r.status_code == 400 and "sys/rekey-recovery-key" in r.text

    st = c.sys.start_rekey(secret_shares=4, secret_threshold=3, recovery_key=True)
    assert st["required"] == 2
    r = requests.put(
        s.url("sys/rekey-recovery-key/update"),
        json={"key": init["recovery_keys"][0], "nonce": "bad"},
    )
    assert r.status_code == 400
    for k in init["recovery_keys"][1:3]:
        res = c.sys.rekey(key=k, nonce=st["nonce"], recovery_key=True)
    assert res["complete"] is True and len(res["keys"]) == 4
    seal = requests.get(s.url("sys/seal-status")).json()
    assert seal["t"] == 3 and seal["n"] == 4 and seal["sealed"] is False

    # The old recovery shares no longer authorize anything; three new ones do.
    start = c.sys.start_root_token_generation()
    for k in init["recovery_keys"][:2]:
        r = requests.put(
            s.url("sys/generate-root/update"), json={"key": k, "nonce": start["nonce"]}
        )
    assert r.status_code == 200 and r.json()["progress"] == 2
    r = requests.put(
        s.url("sys/generate-root/update"),
        json={"key": init["recovery_keys"][2], "nonce": start["nonce"]},
    )
    assert r.status_code == 400 and "do not combine to the recovery key" in r.text
    c.sys.cancel_root_generation()
    s.stop()
    s.start()
    token2 = generate_root(c, res["keys"][1:4])
    assert lookup_policies(s.addr, token2) == ["root"]
