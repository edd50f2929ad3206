"""The keyring file: permissions, versions, wrong keys, production refusal."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from server.config import get_settings
from server.keyring import KeyringError, add_kek, init_keyring, load_keyring


def test_wrap_unwrap_roundtrip_and_aad_binding(keyring):
    ring = load_keyring()
    kek_id, wrapped = ring.wrap_data_key(b"k" * 32, aad=b"data_key:1")
    assert ring.unwrap_data_key(kek_id, wrapped, aad=b"data_key:1") == b"k" * 32
    with pytest.raises(KeyringError):
        ring.unwrap_data_key(kek_id, wrapped, aad=b"data_key:2")
    flipped = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
    with pytest.raises(KeyringError):
        ring.unwrap_data_key(kek_id, flipped, aad=b"data_key:1")


def test_refuses_a_keyring_others_can_read(keyring):
    keyring.chmod(0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        load_keyring()


def test_init_refuses_to_overwrite(keyring):
    with pytest.raises(KeyringError, match="refusing to overwrite"):
        init_keyring(keyring)


def test_a_different_keyring_gives_a_clear_error(keyring, tmp_path):
    kek_id, wrapped = load_keyring().wrap_data_key(b"k" * 32, aad=b"x")
    other = init_keyring(tmp_path / "other.json")
    with pytest.raises(KeyringError, match="no key|wrong keyring"):
        load_keyring(other).unwrap_data_key(kek_id, wrapped, aad=b"x")


def test_add_kek_makes_a_new_primary_and_old_keys_still_open(keyring):
    ring = load_keyring()
    old_id, wrapped = ring.wrap_data_key(b"k" * 32, aad=b"x")
    new_id = add_kek()
    ring2 = load_keyring()
    assert ring2.primary_kek_id == new_id != old_id
    assert ring2.unwrap_data_key(old_id, wrapped, aad=b"x") == b"k" * 32
    assert oct(keyring.stat().st_mode & 0o777) == "0o600"
    assert ring2.blind_index("MRN1") == ring.blind_index("MRN1")


def test_production_refuses_the_demo_keyring(tmp_path, monkeypatch):
    path = init_keyring(tmp_path / "demo.json", demo=True)
    monkeypatch.setenv("CHARTDESK_ENV", "production")
    get_settings.cache_clear()
    try:
        with pytest.raises(KeyringError, match="demo keyring"):
            load_keyring(path)
    finally:
        monkeypatch.setenv("CHARTDESK_ENV", "development")
        get_settings.cache_clear()


def test_keys_init_command_creates_a_0600_file(tmp_path):
    path = tmp_path / "k.json"
    env = {"CHARTDESK_KEYRING_FILE": str(path), "CHARTDESK_ENV": "production", "PATH": "/usr/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "server.cli", "keys", "init"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert json.loads(path.read_text())["demo"] is False
    again = subprocess.run(
        [sys.executable, "-m", "server.cli", "keys", "init"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 1
    assert "refusing to overwrite" in again.stderr
