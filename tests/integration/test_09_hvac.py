"""The foundation through hvac, the Python Vault client, unchanged."""
import hvac
import pytest
import requests

from _procs import Server


def test_hvac_lifecycle_and_kv_v1(tmp_path):
    s = Server(tmp_path)
    s.start()
    try:
        client = hvac.Client(url=s.addr)
        assert client.sys.is_initialized() is False
        result = client.sys.initialize(secret_shares=5, secret_threshold=3)
        keys, token = result["keys"], result["root_token"]
        assert client.sys.is_initialized() is True
        assert client.sys.is_sealed() is True
        status = client.sys.read_seal_status()
        assert status["t"] == 3 and status["n"] == 5 and status["type"] == "shamir"
        status = client.sys.submit_unseal_keys(keys[:3])
        assert status["sealed"] is False
        assert client.sys.is_sealed() is False
        client.token = token

        kv = client.secrets.kv.v1
        kv.create_or_update_secret(path="app/db", secret={"user": "u", "password": "p"},
                                   mount_point="secret")
        kv.create_or_update_secret(path="app/api", secret={"key": "k"}, mount_point="secret")
        got = kv.read_secret(path="app/db", mount_point="secret")
        assert got["data"] == {"user": "u", "password": "p"}
        assert got["lease_duration"] == 2764800
        assert sorted(kv.list_secrets(path="app", mount_point="secret")["data"]["keys"]) == \
            ["api", "db"]
        kv.delete_secret(path="app/api", mount_point="secret")
        with pytest.raises(hvac.exceptions.InvalidPath):
            kv.read_secret(path="app/api", mount_point="secret")

        health = client.sys.read_health_status(method="GET")
        assert health["initialized"] and not health["sealed"] and not health["standby"]
        leader = client.sys.read_leader_status()
        assert leader["is_self"] and leader["leader_address"] == s.addr
        client.sys.rotate_encryption_key()
        assert client.sys.get_encryption_key_status()["data"]["term"] == 2

        client.sys.seal()
        assert client.sys.is_sealed() is True
        with pytest.raises(hvac.exceptions.VaultDown):
            kv.read_secret(path="app/db", mount_point="secret")
        client.sys.submit_unseal_keys(keys[2:])
        assert kv.read_secret(path="app/db", mount_point="secret")["data"]["user"] == "u"

        bad = hvac.Client(url=s.addr, token="hvs.notatoken")
        with pytest.raises(hvac.exceptions.Forbidden):
            bad.secrets.kv.v1.read_secret(path="app/db", mount_point="secret")
    finally:
        s.stop()
