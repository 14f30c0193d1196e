"""The static key seal (issue 6): a 24-word BIP39 phrase from the environment, a secret file or
an operator, its validation hash, recovery keys at init, auto-unseal at start, and every refusal
of a bad phrase, hash, file or field. Real `coffer server` processes; python-mnemonic (Debian's
python3-mnemonic) cross-checks the phrases.
"""

import hashlib
import os
import subprocess
import time

import pytest
import requests
from mnemonic import Mnemonic

from _procs import coffer_bin, free_port

M = Mnemonic("english")


def new_phrase():
    """A fresh phrase and its validation hash, from python-mnemonic (not from Coffer)."""
    phrase = M.generate(strength=256)
    return phrase, hashlib.sha256(phrase.encode()).hexdigest()


def other_checksum(phrase):
    """The phrase with its last (checksum) word replaced by another word that fails the check."""
    words = phrase.split()
    for w in M.wordlist:
        if w != words[-1] and not M.check(" ".join(words[:-1] + [w])):
            return " ".join(words[:-1] + [w])
    raise AssertionError("no failing checksum word")


def seal_block(**fields):
    body = "".join(f'  {k} = "{v}"\n' for k, v in fields.items())
    return f'seal "static" {{\n{body}}}\n'


@pytest.fixture
def make(make_server):
    return make_server


def status(s):
    r = requests.get(s.url("sys/seal-status"), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def init_recovery(s, shares=3, threshold=2):
    r = requests.put(
        s.url("sys/init"),
        json={
            "secret_shares": 5,
            "secret_threshold": 3,
            "recovery_shares": shares,
            "recovery_threshold": threshold,
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.json()


def write_read(s, token, path, value):
    h = {"X-Vault-Token": token}
    r = requests.post(s.url(path), json={"v": value}, headers=h, timeout=10)
    assert r.status_code == 204, r.text
    r = requests.get(s.url(path), headers=h, timeout=10)
    assert r.status_code == 200 and r.json()["data"]["v"] == value, r.text


def test_generate_seal_key_cli_matches_bip39():
    out = subprocess.run(
        [coffer_bin(), "operator", "generate-seal-key"], capture_output=True, text=True, check=True
    ).stdout
    phrase = out.split("Seal key (24-word phrase): ")[1].splitlines()[0]
    vhash = out.split("Validation hash (SHA-256): ")[1].splitlines()[0]
    assert len(phrase.split()) == 24 and M.check(phrase)
    assert vhash == hashlib.sha256(phrase.encode()).hexdigest()
    # The phrase carries 32 bytes of entropy: python-mnemonic round-trips it.
    assert M.to_mnemonic(bytes(M.to_entropy(phrase))) == phrase


def test_environment_provider_init_recovery_and_restart(make):
    phrase, vhash = new_phrase()
    s = make(
        "env",
        seal_block(provider="environment", validation_hash="0x" + vhash.upper()),
        env={"SEAL_UNSEAL_KEY": phrase},
    )
    s.start()
    st = status(s)
    assert st["type"] == "static" and st["recovery_seal"] is True and st["initialized"] is False
    assert "development only" in s.stderr()

    # secret_shares are hvac's defaults and do not apply; recovery shares are returned instead.
    init = init_recovery(s, 3, 2)
    assert init["keys"] == [] and init["keys_base64"] == []
    assert len(init["recovery_keys"]) == 3 and len(init["recovery_keys_base64"]) == 3
    assert len(set(init["recovery_keys"])) == 3
    st = status(s)
    assert st["sealed"] is False and st["t"] == 2 and st["n"] == 3
    assert st["recovery_seal_type"] == "shamir"
    token = init["root_token"]
    write_read(s, token, "secret/static-env", "kept")

    # Restart: unsealed with no operator, data present.
    s.stop()
    s.start()
    s.wait_health(10)
    assert status(s)["sealed"] is False
    r = requests.get(s.url("secret/static-env"), headers={"X-Vault-Token": token}, timeout=10)
    assert r.status_code == 200 and r.json()["data"]["v"] == "kept"
    assert requests.get(s.url("sys/health"), timeout=10).status_code == 200

    # Recovery keys do not unseal anything: sys/unseal answers with the status.
    r = requests.put(s.url("sys/unseal"), json={"key": init["recovery_keys"][0]}, timeout=10)
    assert r.status_code == 200 and r.json()["sealed"] is False

    # Another phrase cannot open this storage: the node stays sealed and says why.
    s.stop()
    s.env["SEAL_UNSEAL_KEY"] = new_phrase()[0]
    s.config.write_text(s.config.read_text().replace("0x" + vhash.upper(), new_phrase()[1]))
    err = s.start_fails()
    assert "does not match the configured validation hash" in err
    s.config.write_text(s.config.read_text().replace('  validation_hash = "', '  x_hash = "'))
    err = s.start_fails()
    assert 'seal "static": unknown field "x_hash"' in err


def test_wrong_phrase_without_hash_stays_sealed(make):
    phrase, _ = new_phrase()
    s = make("wrongkey", seal_block(provider="environment"), env={"SEAL_UNSEAL_KEY": phrase})
    s.start()
    token = init_recovery(s)["root_token"]
    write_read(s, token, "secret/k", "v")
    s.stop()
    s.env["SEAL_UNSEAL_KEY"] = new_phrase()[0]
    s.start()
    st = status(s)
    assert st["initialized"] is True and st["sealed"] is True
    assert requests.get(s.url("sys/health"), timeout=10).status_code == 503
    assert "auto-unseal failed" in s.stderr()
    r = requests.get(s.url("secret/k"), headers={"X-Vault-Token": token}, timeout=10)
    assert r.status_code == 503


def test_file_provider_and_bad_files(make, tmp_path):
    phrase, vhash = new_phrase()
    keyfile = tmp_path / "seal.key"
    s = make("file", seal_block(provider="file", key_file=keyfile, validation_hash=vhash))

    err = s.start_fails()
    assert "cannot open key file" in err and str(keyfile) in err

    keyfile.write_text("")
    keyfile.chmod(0o600)
    assert "is empty" in s.start_fails()
    keyfile.write_text("  \n")
    assert "is empty" in s.start_fails()

    keyfile.write_text(phrase + "\n")
    for mode in (0o644, 0o640, 0o604, 0o620):
        keyfile.chmod(mode)
        err = s.start_fails()
        assert "open to group or others" in err and "chmod 600" in err, err

    keyfile.chmod(0o600)
    keyfile.write_text(other_checksum(phrase))
    assert "checksum" in s.start_fails()
    words = phrase.split()
    keyfile.write_text(" ".join(words[:3] + ["notaword"] + words[4:]))
    assert "word 4 of the seal key phrase is not a BIP39 word" in s.start_fails()

    # Accepted with other spacing and capitals (the hash is of the canonical phrase).
    keyfile.write_text("  " + "   ".join(phrase.upper().split()) + "\n")
    s.start()
    token = init_recovery(s, 1, 1)["root_token"]
    write_read(s, token, "secret/f", "file")
    s.stop()
    # SEAL_UNSEAL_KEY_SECRET_PATH overrides key_file.
    moved = tmp_path / "moved.key"
    os.rename(keyfile, moved)
    s.env["SEAL_UNSEAL_KEY_SECRET_PATH"] = str(moved)
    s.start()
    assert status(s)["sealed"] is False


def test_manual_provider(make):
    phrase, vhash = new_phrase()
    s = make("manual", seal_block(provider="manual"))
    assert "needs validation_hash" in s.start_fails()

    s = make("manual2", seal_block(provider="manual", validation_hash=vhash))
    s.start()
    assert status(s)["sealed"] is True
    r = requests.put(s.url("sys/init"), json={"recovery_shares": 1, "recovery_threshold": 1})
    assert r.status_code == 400 and "post the seal key phrase" in r.text
    assert status(s)["initialized"] is False

    bad = [
        (new_phrase()[0], "does not match the configured validation hash"),
        (other_checksum(phrase), "checksum"),
        (" ".join(phrase.split()[:23]), "24"),
        (" ".join(["zzzz"] + phrase.split()[1:]), "word 1 of the seal key phrase is not"),
    ]
    for key, why in bad:
        r = requests.put(s.url("sys/unseal"), json={"key": key}, timeout=10)
        assert r.status_code == 400, r.text
        assert why in r.json()["errors"][0], r.text
        assert status(s)["sealed"] is True

    r = requests.put(s.url("sys/unseal"), json={"key": phrase}, timeout=10)
    assert r.status_code == 200, r.text
    init = init_recovery(s, 5, 3)
    assert status(s)["sealed"] is False
    write_read(s, init["root_token"], "secret/m", "manual")

    # After a restart the node waits for the operator again.
    s.stop()
    s.start()
    assert status(s)["sealed"] is True
    r = requests.put(s.url("sys/unseal"), json={"key": other_checksum(phrase)}, timeout=10)
    assert r.status_code == 400 and status(s)["sealed"] is True
    r = requests.put(s.url("sys/unseal"), json={"key": phrase}, timeout=10)
    assert r.status_code == 200 and r.json()["sealed"] is False
    r = requests.get(
        s.url("secret/m"), headers={"X-Vault-Token": init["root_token"]}, timeout=10
    )
    assert r.status_code == 200 and r.json()["data"]["v"] == "manual"


def test_environment_selects_static_seal_without_block(make):
    phrase, vhash = new_phrase()
    s = make(
        "envonly",
        env={
            "SEAL_UNSEAL_PROVIDER": "environment",
            "SEAL_UNSEAL_KEY": phrase,
            "SEAL_UNSEAL_VALIDATION_HASH": vhash,
        },
    )
    s.start()
    assert status(s)["type"] == "static"
    init_recovery(s)
    assert status(s)["sealed"] is False


@pytest.mark.parametrize(
    "block,message",
    [
        (seal_block(provider="vault"), 'provider "vault" is not one of'),
        (seal_block(), "provider is required"),
        (seal_block(provider="environment", validation_hash="abc"), "64 hex digits"),
        (seal_block(provider="environment"), "needs the phrase in SEAL_UNSEAL_KEY"),
        (seal_block(provider="file"), "needs key_file"),
        ('seal "awskms" {\n}\n', 'seal type "awskms" is not supported'),
        (seal_block(provider="manual", validation_hash="0" * 64, pin="1"), 'unknown field "pin"'),
    ],
)
def test_bad_seal_config_refused(make, block, message):
    s = make("bad", block, env={"SEAL_UNSEAL_KEY": ""})
    err = s.start_fails()
    assert message in err, err
    assert not any((s.data_dir).iterdir()), "a refused config must not create storage"


def test_init_recovery_parameters_refused(make):
    phrase, _ = new_phrase()
    s = make("recov", seal_block(provider="environment"), env={"SEAL_UNSEAL_KEY": phrase})
    s.start()
    bad = [
        ({"recovery_shares": 3, "recovery_threshold": 4}, "cannot be larger"),
        ({"recovery_shares": 3, "recovery_threshold": 1}, "greater than one"),
        ({"recovery_shares": 0, "recovery_threshold": 2}, "at least one"),
        ({"recovery_shares": 300, "recovery_threshold": 2}, "less than 256"),
        ({"recovery_shares": "x"}, "must be an integer"),
    ]
    for body, why in bad:
        r = requests.put(s.url("sys/init"), json=body, timeout=10)
        assert r.status_code == 400 and why in r.text, (body, r.text)
        assert status(s)["initialized"] is False
    # Defaults: 5 shares, threshold 3.
    r = requests.put(s.url("sys/init"), json={}, timeout=30)
    assert r.status_code == 200 and len(r.json()["recovery_keys"]) == 5
    assert status(s)["t"] == 3


def test_seal_key_endpoint(make):
    phrase, _ = new_phrase()
    s = make("tools", seal_block(provider="environment"), env={"SEAL_UNSEAL_KEY": phrase})
    s.start()
    token = init_recovery(s)["root_token"]
    h = {"X-Vault-Token": token}
    r = requests.post(s.url("sys/tools/seal-key"), headers=h, timeout=10)
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert M.check(d["key"]) and d["validation_hash"] == hashlib.sha256(d["key"].encode()).hexdigest()

    # Outside dev mode a token without sudo is refused even when its policy allows the path.
    r = requests.put(
        s.url("sys/policies/acl/tools"),
        json={"policy": 'path "sys/tools/*" { capabilities = ["update", "read"] }'},
        headers=h,
        timeout=10,
    )
    assert r.status_code == 204, r.text
    r = requests.post(
        s.url("auth/token/create"), json={"policies": ["tools"]}, headers=h, timeout=10
    )
    t2 = r.json()["auth"]["client_token"]
    r = requests.post(s.url("sys/tools/seal-key"), headers={"X-Vault-Token": t2}, timeout=10)
    assert r.status_code == 403 and "sudo" in r.text
    r = requests.post(s.url("sys/tools/seal-key"), timeout=10)
    assert r.status_code in (400, 403)


def test_seal_key_endpoint_dev_mode():
    """A dev server answers a token whose policy allows the path, without sudo."""
    port = free_port()
    base = f"http://127.0.0.1:{port}/v1/"
    proc = subprocess.Popen(
        [coffer_bin(), "server", "-dev", "-dev-root-token-id=devroot",
         f"-dev-listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        h = {"X-Vault-Token": "devroot"}
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(base + "sys/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "dev server did not start"
            time.sleep(0.05)
        r = requests.put(
            base + "sys/policies/acl/tools",
            json={"policy": 'path "sys/tools/*" { capabilities = ["read"] }'},
            headers=h,
            timeout=10,
        )
        assert r.status_code == 204, r.text
        r = requests.post(base + "auth/token/create", json={"policies": ["tools"]}, headers=h)
        t2 = r.json()["auth"]["client_token"]
        r = requests.get(base + "sys/tools/seal-key", headers={"X-Vault-Token": t2}, timeout=10)
        assert r.status_code == 200, r.text
        assert M.check(r.json()["data"]["key"])
    finally:
        proc.terminate()
        proc.wait(20)


def raw(s, token, path, **params):
    return requests.get(
        s.url(f"sys/raw/{path}"), params=params, headers={"X-Vault-Token": token}, timeout=10
    )


def test_seal_wrap_kv_and_pki(make):
    """kv v1 at kv-unwrapped/ and kv-seal-wrapped/: the same secret reads back equal, while
    sys/raw (what the barrier holds) shows the plaintext only for the unwrapped mount, and the
    data dir holds it for neither. A PKI mount with seal_wrap keeps its issuer key wrapped."""
    phrase, _ = new_phrase()
    s = make(
        "wrap",
        seal_block(provider="environment") + "raw_storage_endpoint = true\n",
        env={"SEAL_UNSEAL_KEY": phrase},
    )
    s.start()
    token = init_recovery(s)["root_token"]
    h = {"X-Vault-Token": token}
    for path, wrap in (("kv-unwrapped", False), ("kv-seal-wrapped", True)):
        r = requests.post(
            s.url(f"sys/mounts/{path}"),
            json={"type": "kv", "options": {"version": "1"}, "seal_wrap": wrap},
            headers=h,
            timeout=10,
        )
        assert r.status_code == 204, r.text
    secret = "plaintext-" + os.urandom(8).hex()
    for path in ("kv-unwrapped", "kv-seal-wrapped"):
        r = requests.post(s.url(f"{path}/foo"), json={"bar": secret}, headers=h, timeout=10)
        assert r.status_code == 204, r.text
    reads = [
        requests.get(s.url(f"{p}/foo"), headers=h, timeout=10).json()["data"]
        for p in ("kv-unwrapped", "kv-seal-wrapped")
    ]
    assert reads[0] == reads[1] == {"bar": secret}

    mounts = requests.get(s.url("sys/mounts"), headers=h, timeout=10).json()["data"]
    assert mounts["kv-seal-wrapped/"]["seal_wrap"] is True
    assert mounts["kv-unwrapped/"]["seal_wrap"] is False
    plain = raw(s, token, f"logical/{mounts['kv-unwrapped/']['uuid']}/foo")
    assert plain.status_code == 200 and secret in plain.json()["data"]["value"]
    wrapped = raw(s, token, f"logical/{mounts['kv-seal-wrapped/']['uuid']}/foo", encoding="base64")
    assert wrapped.status_code == 200, wrapped.text
    import base64

    blob = base64.b64decode(wrapped.json()["data"]["value"])
    assert secret.encode() not in blob
    assert len(blob) > len(plain.json()["data"]["value"].encode())
    # core/ (the seal's and the barrier's keys) is never shown.
    assert raw(s, token, "core/seal-unseal-key").status_code == 403

    # A PKI mount with seal_wrap: the generated issuer key is stored wrapped, and issuance works.
    r = requests.post(
        s.url("sys/mounts/pki-wrapped"), json={"type": "pki", "seal_wrap": True}, headers=h
    )
    assert r.status_code == 204, r.text
    r = requests.post(
        s.url("pki-wrapped/root/generate/internal"),
        json={"common_name": "wrapped root", "key_type": "ec", "ttl": "8760h"},
        headers=h,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    r = requests.post(
        s.url("pki-wrapped/roles/web"),
        json={"allowed_domains": "example.com", "allow_subdomains": True, "ttl": "1h"},
        headers=h,
    )
    assert r.status_code in (200, 204), r.text
    uuid = requests.get(s.url("sys/mounts"), headers=h).json()["data"]["pki-wrapped/"]["uuid"]
    found = 0

    def walk(prefix):
        nonlocal found
        lst = requests.request(
            "LIST", s.url(f"sys/raw/logical/{uuid}/{prefix}"), headers=h, timeout=10
        ).json()["data"]["keys"]
        for k in lst:
            if k.endswith("/"):
                walk(prefix + k)
                continue
            v = raw(s, token, f"logical/{uuid}/{prefix}{k}", encoding="base64").json()["data"]
            b = base64.b64decode(v["value"])
            assert b.startswith(b"\x00sw\x02"), (prefix + k, b[:16])
            assert b"PRIVATE KEY" not in b and b"wrapped root" not in b
            found += 1

    walk("")
    assert found >= 2
    s.stop()
    s.start()
    r = requests.post(
        s.url("pki-wrapped/issue/web"), json={"common_name": "a.example.com"}, headers=h
    )
    assert r.status_code == 200, r.text
    serial = r.json()["data"]["serial_number"]
    r = requests.post(s.url("pki-wrapped/revoke"), json={"serial_number": serial}, headers=h)
    assert r.status_code == 200, r.text
    crl = requests.get(s.url("pki-wrapped/crl/pem"), timeout=10)
    assert crl.status_code == 200 and "BEGIN X509 CRL" in crl.text
    r = requests.get(s.url(f"pki-wrapped/cert/{serial}"), timeout=10)
    assert r.status_code == 200 and r.json()["data"]["revocation_time"] > 0
    r = requests.get(s.url("kv-seal-wrapped/foo"), headers=h, timeout=10)
    assert r.json()["data"] == {"bar": secret}
    s.stop()
    for f in s.data_dir.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


def test_seal_wrap_refused_under_shamir(make):
    s = make("shamirwrap")
    s.start()
    init = s.init()
    s.unseal(init["keys_base64"])
    h = {"X-Vault-Token": init["root_token"]}
    r = requests.post(
        s.url("sys/mounts/kvw"), json={"type": "kv", "seal_wrap": True}, headers=h, timeout=10
    )
    assert r.status_code == 400 and "seal_wrap needs an auto-unseal seal" in r.text
    r = requests.get(s.url("sys/mounts"), headers=h, timeout=10)
    assert "kvw/" not in r.json()["data"]
