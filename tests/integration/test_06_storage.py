"""Storage safety: no plaintext secret, token or unseal key reaches the data dir, and a raft
snapshot is taken, survives restart and restores every value.
"""

import base64
import binascii
import random
import re
import string
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from _procs import SANITIZED, SCALE, Server

RNG = random.Random()


def rand_letters(n=32):
    return "".join(RNG.choice(string.ascii_letters) for _ in range(n))


def b64_variants(s):
    """The std base64 fragments of s that do not depend on its neighbours, one per alignment."""
    out = []
    for a in range(3):
        enc = base64.b64encode(b"\0" * a + s)
        start = -(-8 * a // 6)
        stop = (8 * (a + len(s))) // 6
        out.append(enc[start:stop])
    return out


def encodings(s):
    """Every form of s the disk must not hold: raw, base64 (3 alignments), hex (both cases)."""
    raw = s.encode() if isinstance(s, str) else s
    hx = binascii.hexlify(raw)
    return [raw, *b64_variants(raw), hx, hx.upper()]


def data_files(root):
    files = [p for p in Path(root).rglob("*") if p.is_file()]
    assert files, f"no files under {root}"
    return files


B64_RUN = re.compile(rb"[A-Za-z0-9+/=]{32,}")
B64_ALPHABET = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def scan_for(root, secrets):
    """Return (file, label) for every forbidden encoding found in any file under root.

    Needles drawn only from the base64 alphabet (raw letters, hex, base64 fragments) can only
    occur inside a maximal run of that alphabet, so they are searched in those runs; any other
    needle (token with its '.', raw key bytes) is searched in the whole file.
    """
    in_runs, anywhere = [], []
    for label, s in secrets:
        for enc in encodings(s):
            (in_runs if set(enc) <= B64_ALPHABET else anywhere).append((label, enc))
    hits = []
    for f in data_files(root):
        blob = f.read_bytes()
        runs = b"\n".join(B64_RUN.findall(blob))
        for label, enc in in_runs:
            if enc in runs:
                hits.append((str(f.relative_to(root)), label))
        for label, enc in anywhere:
            if enc in blob:
                hits.append((str(f.relative_to(root)), label))
    return hits


def test_scanner_finds_planted_plaintext(tmp_path):
    """The scan fails when a secret is on disk raw, in base64 at any offset, or hex."""
    s = "QwErTyUiOpAsDfGhJkLzXcVbNmQwErTy"
    for pad in range(6):
        (tmp_path / "f").write_bytes(b"\0\1" + base64.b64encode(b"x" * pad + s.encode() + b"z"))
        assert scan_for(tmp_path, [("s", s)]) == [("f", "s")], pad
    for form in (s.encode(), binascii.hexlify(s.encode()), binascii.hexlify(s.encode()).upper()):
        (tmp_path / "f").write_bytes(b"\xff" * 10 + form + b"\xfe")
        assert scan_for(tmp_path, [("s", s)]) == [("f", "s")], form
    (tmp_path / "f").write_bytes(b"hvs.abc\x00\x01")
    assert scan_for(tmp_path, [("t", "hvs.abc"), ("s", s)]) == [("f", "t")]
    (tmp_path / "f").write_bytes(b"nothing here")
    assert scan_for(tmp_path, [("s", s)]) == []


def kv(server, token):
    s = requests.Session()
    s.headers["X-Vault-Token"] = token
    return s


def put(sess, server, path, value):
    r = sess.post(server.url(f"secret/{path}"), json=value)
    assert r.status_code == 204, (path, r.status_code, r.text)


def get(sess, server, path):
    r = sess.get(server.url(f"secret/{path}"))
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()["data"]


def make_values(prefix, n):
    """n kv values holding distinctive strings: flat, nested, lists; returns (values, secrets)."""
    values, secrets = {}, []
    for i in range(n):
        a, b, c = rand_letters(), rand_letters(), rand_letters()
        kind = i % 3
        if kind == 0:
            v = {"password": a, "user": b, "note": c}
        elif kind == 1:
            v = {"outer": {"inner": {"deep": a}, "list": [b, {"x": c}]}, "n": i}
        else:
            v = {"token": a, "cfg": {"flags": [1, 2, 3], "name": b, "more": {"k": c}}}
        values[f"{prefix}/v{i}"] = v
        secrets += [(f"{prefix}/v{i}#{j}", s) for j, s in enumerate((a, b, c))]
    return values, secrets


def big_value():
    """A ~100 KB value; its distinctive 32-letter windows join the forbidden list."""
    text = rand_letters(100 * 1024)
    windows = [(f"big@{o}", text[o : o + 32]) for o in range(0, len(text) - 32, 4096)]
    return {"blob": text}, windows


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path)
    yield s
    s.close()


def start_unsealed(server, keys):
    server.start()
    server.unseal(keys)


def test_no_plaintext_on_disk(server):
    server.start()
    init = server.init(shares=3, threshold=2)
    keys, token = init["keys_base64"], init["root_token"]
    server.unseal(keys, threshold=2)
    sess = kv(server, token)

    values, secrets = make_values("plain", 50)
    big, big_secrets = big_value()
    values["plain/big"] = big
    secrets += big_secrets
    for path, v in values.items():
        put(sess, server, path, v)
    sess.close()
    server.stop()

    start_unsealed(server, keys[1:3])
    for path, v in values.items():
        assert get(sess, server, path) == v, path
    more, more_secrets = make_values("more", 20)
    for path, v in more.items():
        put(sess, server, path, v)
    values.update(more)
    secrets += more_secrets
    for path, v in more.items():
        assert get(sess, server, path) == v, path
    sess.close()
    server.stop()

    secrets.append(("root_token", token))
    for i, (kb64, khex) in enumerate(zip(init["keys_base64"], init["keys"])):
        secrets.append((f"unseal_key_b64[{i}]", kb64))
        secrets.append((f"unseal_key_hex[{i}]", khex))
        secrets.append((f"unseal_key_raw[{i}]", base64.b64decode(kb64)))
    assert len(secrets) > 200
    hits = scan_for(server.data_dir, secrets)
    assert not hits, f"plaintext on disk: {hits[:20]}"

    start_unsealed(server, keys[:2])
    assert get(sess, server, "plain/big") == big
    sess.close()
    server.stop()


def write_many(server, token, paths_values, threads):
    """Write concurrently, one requests.Session per worker thread."""
    chunks = [paths_values[i::threads] for i in range(threads)]

    def work(chunk):
        s = kv(server, token)
        for path, v in chunk:
            put(s, server, path, v)
        s.close()

    with ThreadPoolExecutor(threads) as ex:
        for f in [ex.submit(work, c) for c in chunks]:
            f.result()


def snapshots(root):
    return sorted(p.name for p in Path(root).rglob("snapshot-*"))


def test_snapshot_taken_and_restored(server):
    server.start()
    init = server.init(shares=1, threshold=1)
    keys, token = init["keys_base64"], init["root_token"]
    server.unseal(keys)
    sess = kv(server, token)

    big, big_secrets = big_value()
    put(sess, server, "snap/big", big)
    sentinels, secrets = make_values("snap/sentinel", 10)
    for path, v in sentinels.items():
        put(sess, server, path, v)
    secrets += big_secrets

    threads = 4 if SANITIZED else 8
    written = {}
    batch = 0
    while not snapshots(server.data_dir):
        files = sorted(p.name for p in server.data_dir.iterdir())
        assert batch < 8, f"no snapshot after {len(written)} writes; files: {files}"
        count = 9200 if batch == 0 else 2000
        pv = [(f"snap/k{batch}-{i}", {"v": rand_letters(), "i": i}) for i in range(count)]
        write_many(server, token, pv, threads)
        written.update(pv)
        batch += 1
        deadline = time.monotonic() + 5 * SCALE
        while not snapshots(server.data_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(written) > 9000
    taken = snapshots(server.data_dir)
    sess.close()
    server.stop()
    assert snapshots(server.data_dir), "snapshot files vanished on stop"

    sample = RNG.sample(sorted(written), 300)
    start_unsealed(server, keys)
    for path in sample:
        assert get(sess, server, path) == written[path], path
    assert get(sess, server, "snap/big") == big
    for path, v in sentinels.items():
        assert get(sess, server, path) == v, path
    r = sess.request("LIST", server.url("secret/snap/"))
    assert r.status_code == 200, r.text
    listed = set(r.json()["data"]["keys"])
    missing = [p for p in written if p[len("snap/") :] not in listed]
    assert not missing, f"{len(missing)} keys missing after snapshot restore, e.g. {missing[:5]}"
    sess.close()
    server.stop()

    secrets += [(f"small:{p}", written[p]["v"]) for p in sample]
    secrets.append(("root_token", token))
    secrets.append(("unseal_key", keys[0]))
    hits = scan_for(server.data_dir, secrets)
    assert not hits, f"plaintext on disk (snapshots {taken}): {hits[:20]}"
