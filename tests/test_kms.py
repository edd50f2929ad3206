"""Data keys wrapped by AWS KMS (moto's server standing in for AWS)."""

from __future__ import annotations

import boto3
import pytest
from moto.server import ThreadedMotoServer

from server.config import get_settings
from server.keyring import KeyringError, load_keyring
from tests.support.pgcluster import free_port


def test_kms_wraps_new_keys_and_local_keys_still_open(keyring, monkeypatch):
    local_id, local_wrapped = load_keyring().wrap_data_key(b"a" * 32, aad=b"data_key:1")
    assert local_id.startswith("kek-")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
        monkeypatch.setenv("CHARTDESK_KMS_ENDPOINT_URL", url)
        key_id = boto3.client("kms", endpoint_url=url, region_name="us-east-1").create_key()[
            "KeyMetadata"
        ]["KeyId"]
        monkeypatch.setenv("CHARTDESK_KMS_KEY_ID", key_id)
        get_settings.cache_clear()
        keyring.touch()
        ring = load_keyring()
        kek_id, wrapped = ring.wrap_data_key(b"b" * 32, aad=b"data_key:2")
        assert kek_id == f"kms:{key_id}" == ring.primary_wrapping_id
        assert b"b" * 32 not in wrapped
        assert ring.unwrap_data_key(kek_id, wrapped, aad=b"data_key:2") == b"b" * 32
        assert ring.unwrap_data_key(local_id, local_wrapped, aad=b"data_key:1") == b"a" * 32
        # The associated data is the KMS encryption context: another row's context fails.
        with pytest.raises(KeyringError, match="KMS refused"):
            ring.unwrap_data_key(kek_id, wrapped, aad=b"data_key:3")
    finally:
        server.stop()
        get_settings.cache_clear()
