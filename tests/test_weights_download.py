"""``ncst weights download`` against a loopback Hugging Face hub (HF_ENDPOINT) and URL server."""
from __future__ import annotations

import hashlib
import http.server
import threading

import pytest
from typer.testing import CliRunner

from codec_wrappers import catalog as cat
from codec_wrappers import weights as w

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _files():
    # (repo, path) -> bytes: FunCodec's ds640 repo (three catalog variants share it) and one URL file.
    return {
        ("alibaba-damo/audio_codec-encodec-zh_en-general-16k-nq32ds640-pytorch", "config.yaml"): b"model: x\n",
        ("alibaba-damo/audio_codec-encodec-zh_en-general-16k-nq32ds640-pytorch", "model.pth"): b"\x00" * 3000,
        ("", "/files/tiny.th"): b"tiny checkpoint bytes",
    }


class _Hub(http.server.BaseHTTPRequestHandler):
    """Serves what hf_hub_download asks for: HEAD and GET ``/{repo}/resolve/{revision}/{path}``
    (answering X-Repo-Commit, ETag and Content-Length), and plain GETs of ``/files/...``."""

    files: dict = {}
    log: list = []

    def _find(self):
        self.log.append((self.command, self.path))
        path = self.path.split("?")[0]
        if path.startswith("/files/"):
            return self.files.get(("", path))
        for (repo, name), data in self.files.items():
            if repo and path in (f"/{repo}/resolve/main/{name}", f"/{repo}/resolve/{COMMIT}/{name}"):
                return data
        return None

    def _answer(self, body: bool):
        data = self._find()
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_HEAD(self):  # noqa: N802 - http.server's naming
        self._answer(False)

    def do_GET(self):  # noqa: N802
        self._answer(True)

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    _Hub.files = _files()
    _Hub.log = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr(hc, "ENDPOINT", endpoint)
    monkeypatch.setattr(hc, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf_empty"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.delenv(w.WEIGHTS_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # One extra catalog file: two URL variants sharing one checkpoint from the loopback server.
    extra = tmp_path / "extra.yaml"
    entry = ("  - id: {id}\n    family: toy\n    codec: Tiny\n    sample_rate: 16000\n    bitrate_kbps: 1\n"
             "    n_codebooks: 1\n    taxonomy: {{vq: SQ, aux: none, decoder: time}}\n    st_label: null\n"
             "    st_role: extra\n    checkpoint:\n      url: " + endpoint + "/files/tiny.th\n"
             "      files: [tiny.th]\n    native: false\n")
    extra.write_text("variants:\n" + entry.format(id="tiny_a") + entry.format(id="tiny_b"))
    monkeypatch.setenv(cat.CATALOG_PATH_ENV, str(extra))
    cat.clear_cache()
    yield endpoint
    server.shutdown()
    cat.clear_cache()


def _app():
    from pipeline.cli import app

    return app


def test_default_weights_dir_is_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(w.WEIGHTS_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert w.weights_dir() == tmp_path / "c" / "ncst" / "weights"
    monkeypatch.setenv(w.WEIGHTS_DIR_ENV, str(tmp_path / "mine"))
    assert w.weights_dir() == tmp_path / "mine"
    monkeypatch.delenv(w.WEIGHTS_DIR_ENV)
    msg = w.how_to_get(cat.get_variant("snac_24k"))
    # The hint names hub 2.x's `hf` and ncst's own download, and a real folder (not "/<variant>").
    assert "ncst weights download snac_24k" in msg and "hf download hubertsiuzdak/snac_24khz" in msg
    assert "huggingface-cli" not in msg and str(tmp_path / "c" / "ncst" / "weights" / "snac_24k") in msg


def test_download_hf_shared_checkpoint_one_file(hub, tmp_path):
    ids = ["funcodec_16k_ds640_3kbps", "funcodec_16k_ds640_6kbps"]
    result = CliRunner().invoke(_app(), ["weights", "download", *ids])
    assert result.exit_code == 0, result.output
    root = tmp_path / "cache" / "ncst" / "weights"
    assert f"weights dir: {root}" in result.output and "3.0 KB" in result.output
    a = (root / ids[0] / "model.pth").resolve()
    b = (root / ids[1] / "model.pth").resolve()
    assert a == b and a.read_bytes() == b"\x00" * 3000  # one shared file on disk
    blobs = [p for p in (root / "hf").rglob("blobs/*") if p.is_file() and not p.is_symlink()]
    assert len(blobs) == 2  # config.yaml + model.pth, once each
    assert any(m == "GET" and p.endswith("/resolve/main/model.pth") for m, p in _Hub.log)
    # Resolution now finds them without NCST_WEIGHTS_DIR, in the default folder.
    r = w.resolve_weights(ids[1])
    assert r.source == "weights_dir" and r.files[1] == str(a)
    # `ncst weights` shows sizes on disk and, with --remote, the hub's.
    shown = CliRunner().invoke(_app(), ["weights", ids[0], "--remote", "--no-sha256"])
    assert shown.exit_code == 0, shown.output
    assert "model.pth 3.0 KB" in shown.output and "[found]   weights_dir:" in shown.output


def test_download_url_variants_share_one_file(hub, tmp_path):
    result = CliRunner().invoke(_app(), ["weights", "download", "tiny_a", "tiny_b"])
    assert result.exit_code == 0, result.output
    root = tmp_path / "cache" / "ncst" / "weights"
    assert (root / "tiny_a" / "tiny.th").resolve() == (root / "tiny_b" / "tiny.th").resolve() == root / "url" / "tiny.th"
    assert sum(1 for m, p in _Hub.log if m == "GET" and p == "/files/tiny.th") == 1
    assert (root / "url" / "tiny.th").read_bytes() == b"tiny checkpoint bytes"


def test_download_errors_are_one_line(hub):
    typo = CliRunner().invoke(_app(), ["weights", "download", "snac_24"])
    assert typo.exit_code == 2 and "did you mean" in typo.output and "Traceback" not in typo.output
    none = CliRunner().invoke(_app(), ["weights", "download", "soundstream_16k_4kbps"])
    assert none.exit_code == 2 and "no official weights exist" in none.output
    missing = CliRunner().invoke(_app(), ["weights", "download", "snac_24k"])  # the loopback hub lacks it
    assert missing.exit_code == 2 and "snac_24k: download failed" in missing.output
    assert len(missing.output.strip().splitlines()) == 1
    shown = CliRunner().invoke(_app(), ["weights", "snac_2k"])
    assert shown.exit_code == 2 and "did you mean" in shown.output and "snac_24k" in shown.output
