"""Secret values in the hub: AES-GCM at rest or memory only."""

from __future__ import annotations

import os

from clawgate.hub.vault import EncryptedVault, MemoryVault


def test_encrypted_vault_round_trips_and_binds_the_scope() -> None:
    vault = EncryptedVault(os.urandom(32))
    sealed = vault.seal("desired:d:1", {"github": {"token": "value-1234"}})
    assert sealed is not None
    assert b"value-1234" not in sealed
    assert vault.open("desired:d:1", sealed) == {"github": {"token": "value-1234"}}
    assert vault.open("desired:d:2", sealed) is None
    assert EncryptedVault(os.urandom(32)).open("desired:d:1", sealed) is None


def test_encrypted_vault_uses_a_fresh_nonce() -> None:
    vault = EncryptedVault(os.urandom(32))
    assert vault.seal("s", {"a": "b"}) != vault.seal("s", {"a": "b"})


def test_memory_vault_keeps_values_out_of_the_store() -> None:
    vault = MemoryVault()
    assert vault.seal("command:c", {"pw": "x"}) is None
    assert vault.open("command:c", None) == {"pw": "x"}
    vault.drop("command:c")
    assert vault.open("command:c", None) is None


def test_a_rotated_vault_opens_blobs_of_the_previous_key_and_seals_with_the_new() -> None:
    old, new = os.urandom(32), os.urandom(32)
    sealed_before = EncryptedVault(old).seal("desired:d1:1", {"token": "v"})
    rotated = EncryptedVault(new, (old,))
    assert rotated.open("desired:d1:1", sealed_before) == {"token": "v"}
    sealed_after = rotated.seal("desired:d1:2", {"token": "w"})
    assert EncryptedVault(new).open("desired:d1:2", sealed_after) == {"token": "w"}
    assert EncryptedVault(old).open("desired:d1:2", sealed_after) is None
