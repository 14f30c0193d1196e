"""Shared fixtures: one initialized, unsealed node per test module."""
import hvac
import pytest
import requests

from _procs import Server


class Node:
    """A running node with its root token and unseal keys."""

    def __init__(self, server, root, keys):
        self.server = server
        self.addr = server.addr
        self.root = root
        self.keys = keys

    def url(self, path):
        return self.server.url(path)

    def client(self, token=None):
        """An hvac client; the root token unless another is given."""
        return hvac.Client(url=self.addr, token=self.root if token is None else token)

    def req(self, method, path, token=None, **kw):
        """A raw request with requests (token None = root, "" = none)."""
        headers = kw.pop("headers", {})
        tok = self.root if token is None else token
        if tok:
            headers["X-Vault-Token"] = tok
        return requests.request(method, self.url(path), headers=headers, timeout=30, **kw)

    def restart(self):
        """Graceful stop, start, unseal with the same keys."""
        self.server.stop()
        self.server.start()
        self.server.unseal(self.keys)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("node"))
    s.start()
    init = s.init()
    s.unseal(init["keys_base64"])
    n = Node(s, init["root_token"], init["keys_base64"])
    yield n
    s.stop()
    s.close()


@pytest.fixture
def make_server(tmp_path):
    """Makes config-file servers (Server of _procs) under tmp_path/<name>, each with extra config
    (e.g. a seal block) and environment; every one is killed at the end of the test."""
    made = []

    def _make(name, extra_config="", env=None):
        s = Server(tmp_path / name, extra_config=extra_config, env=env)
        made.append(s)
        return s

    yield _make
    for s in made:
        s.close()
