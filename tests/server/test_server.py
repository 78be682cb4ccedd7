"""`priorfx serve` over real HTTP on 127.0.0.1: health, auth, limits, bad requests, shutdown."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests

from priorfx.engines import LocalEngine, protocol
from priorfx.errors import AuthError, EngineUnreachableError, LimitError, VersionMismatchError

pytestmark = pytest.mark.network


def _portrait_body(image, **params) -> bytes:
    return protocol.pack({"params": params, "image": image})


def test_health_is_public_and_names_versions(server):
    import priorfx
    r = requests.get(server.url + "/v1/health", timeout=60)
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "service": "priorfx", "protocol": protocol.PROTOCOL_VERSION,
                        "priorfx_version": priorfx.__version__, "auth": True}


def test_models_come_from_the_servers_store(server):
    remote = server.engine().models()
    local = LocalEngine().models()
    assert [(m["id"], m["status"], m["sha256"]) for m in remote] == \
           [(m["id"], m["status"], m["sha256"]) for m in local]
    assert all(m["status"] == "ok" for m in remote)


def test_info_lists_limits_and_operations(server):
    info = server.engine().info()
    assert info["engine"] == "remote" and info["url"] == server.url
    assert info["server"]["workers"] == 2
    assert info["server"]["limits"]["max_side"] == 16384
    assert "undistort" in info["server"]["operations"]


@pytest.mark.parametrize("headers, words", [
    ({}, "needs a token"),
    ({"Authorization": "Bearer wrong"}, "token was refused"),
    ({"Authorization": "Basic dGVzdA=="}, "token was refused"),
])
def test_requests_without_the_right_token_get_401_json(server, headers, words):
    for method, path in (("GET", "/v1/info"), ("GET", "/v1/models"), ("POST", "/v1/jobs/undistort"),
                         ("GET", "/v1/jobs/abc"), ("DELETE", "/v1/jobs/abc")):
        r = requests.request(method, server.url + path, headers=headers, data=b"x", timeout=60)
        assert r.status_code == 401, (method, path)
        body = r.json()
        assert body["error"] == "auth" and words in body["message"] and body["hint"]


def test_remote_engine_with_a_wrong_or_missing_token_raises_auth_error(server):
    from priorfx.engines.remote import RemoteEngine
    for token in ("wrong", None):
        with pytest.raises(AuthError):
            RemoteEngine(server.url, token=token).models()


def test_client_of_another_protocol_gets_409(server):
    r = requests.get(server.url + "/v1/info", timeout=60,
                     headers={**server.headers, protocol.PROTOCOL_HEADER: "99"})
    assert r.status_code == 409
    assert r.json()["error"] == "version" and "protocol 99" in r.json()["message"]


@pytest.mark.parametrize("their_protocol, skew_allowed, refused", [
    (2, False, True), (2, True, True), (1, False, True), (1, True, False)])
def test_server_of_another_version_is_refused_by_the_client(their_protocol, skew_allowed, refused):
    """A real HTTP server on 127.0.0.1 that answers like a newer priorfx."""
    import http.server
    import json
    import threading

    from priorfx.engines.remote import RemoteEngine

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"status": "ok", "service": "priorfx", "protocol": their_protocol,
                               "priorfx_version": "9.9.9", "auth": False}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        if refused:
            with pytest.raises(VersionMismatchError, match=f"priorfx 9.9.9 .protocol {their_protocol}."):
                RemoteEngine(url, allow_version_skew=skew_allowed).info()
        else:
            info = RemoteEngine(url, allow_version_skew=skew_allowed).info()
            assert info["server"]["priorfx_version"] == "9.9.9"
    finally:
        httpd.shutdown()


@pytest.mark.parametrize("body, words", [
    (b"", "shorter than"),
    (b"this is not a bundle at all, just text", "magic"),
    (b"PFXB\x01\x00\x00\x00\xff\xff\xff\xff" + b"\x00" * 8, "header says"),
])
def test_malformed_bodies_get_422_json_and_the_server_keeps_running(server, body, words):
    r = server.post("/v1/jobs/undistort", body)
    assert r.status_code == 422
    assert r.json()["error"] == "input" and words in r.json()["message"]
    assert server.get("/v1/health").status_code == 200


@pytest.mark.parametrize("tree, status, words", [
    ({"image": np.zeros((64, 64, 3), np.float32)}, 422, "no 'params' field"),
    ({"params": {}}, 422, "no 'image' field"),
    ({"params": {"distance_m": "far"}, "image": np.zeros((8, 8, 3), np.float32)}, 400,
     "PortraitParams.distance_m must be a finite number"),
    ({"params": {"zoom": 2}, "image": np.zeros((8, 8, 3), np.float32)}, 400, "unknown PortraitParams field"),
    ({"params": {}, "image": "/home/user/selfie.jpg"}, 422, "never opens paths"),
    ({"params": {}, "image": np.zeros((2, 8, 8, 3), np.float32)}, 422, "H x W or H x W x C"),
    ({"params": {}, "image": np.zeros((8, 8, 3), np.float32), "path": "x"}, 400, "unknown request field"),
])
def test_invalid_requests_are_refused_with_the_problem_named(server, tree, status, words):
    r = server.post("/v1/jobs/undistort", protocol.pack(tree))
    assert r.status_code == status, r.text
    assert words in r.json()["message"]


def test_params_checked_by_the_manipulation_itself(server):
    r = server.post("/v1/jobs/undistort", _portrait_body(np.zeros((8, 8, 3), np.float32), distance_m=-1.0))
    assert r.status_code == 400 and r.json()["error"] == "usage"
    assert "distance" in r.json()["message"]


def test_unknown_job_and_endpoint_are_404_json(server):
    r = server.get("/v1/jobs/0123456789abcdef")
    assert r.status_code == 404 and "no job" in r.json()["message"]
    r = server.get("/v1/nowhere")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = server.post("/v1/jobs/sharpen", b"PFXB")
    assert r.status_code == 404 and "unknown operation 'sharpen'" in r.json()["message"]


def test_oversize_image_and_body_are_refused_with_413(start_server):
    s = start_server("--max-side", "256", "--max-pixels", "40000", "--max-body-mb", "1")
    wide = np.zeros((100, 300, 3), np.float32)  # over 256 a side, 116 KB
    r = s.post("/v1/jobs/undistort", _portrait_body(wide))
    assert r.status_code == 413 and r.json()["error"] == "limit"
    assert "300x100" in r.json()["message"] and "--max-side" in r.json()["hint"]
    many = np.zeros((210, 210, 3), np.float32)  # 44,100 pixels > 40,000
    assert s.post("/v1/jobs/undistort", _portrait_body(many)).status_code == 413
    huge = _portrait_body(np.zeros((200, 200, 8), np.float32))  # 1.2 MB body
    r = s.post("/v1/jobs/undistort", huge)
    assert r.status_code == 413 and "1 MB" in r.json()["message"]
    # RemoteEngine knows the limits and refuses before uploading anything.
    with pytest.raises(LimitError, match="300x100 image is over the limits"):
        from priorfx.portrait import PortraitParams
        s.engine().undistort(wide, PortraitParams())
    assert s.get("/v1/info").json()["jobs"] == {}


def _serve(*args: str, env=None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("priorfx")
    return subprocess.run([str(exe), "serve", *args], capture_output=True, text=True, timeout=60,
                          env=env)


def test_refuses_to_listen_beyond_loopback_without_a_token():
    import os
    env = {k: v for k, v in os.environ.items() if k != "PRIORFX_TOKEN"}
    proc = _serve("--host", "0.0.0.0", "--port", "0", env=env)
    assert proc.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a token" in proc.stderr
    assert "--token" in proc.stderr


def test_port_in_use_is_a_clear_error(server):
    port = server.url.rsplit(":", 1)[1]
    proc = _serve("--port", port)
    assert proc.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stops_cleanly_on_sigterm_and_sigint(start_server, sig):
    s = start_server()
    assert s.get("/v1/health").status_code == 200
    assert s.stop(sig) == 0
    assert any("stopped" in line for line in s.lines)
    host, port = s.url[len("http://"):].split(":")
    with socket.socket() as sock:
        assert sock.connect_ex((host, int(port))) != 0  # the port is closed


def test_token_from_environment(start_server):
    s = start_server(token=None, env={"PRIORFX_TOKEN": "from-env"})
    assert "token required" in s.lines[0]
    assert requests.get(s.url + "/v1/info", timeout=60).status_code == 401
    ok = requests.get(s.url + "/v1/info", headers={"Authorization": "Bearer from-env"}, timeout=60)
    assert ok.status_code == 200


def test_a_full_job_queue_answers_429(start_server, sample):
    import cv2

    import priorfx.io as pio
    s = start_server("--max-jobs", "1")
    big = cv2.resize(pio.read_image(sample("single_face.jpg"))[..., :3], (3000, 3000))
    body = _portrait_body(big)
    first = s.post("/v1/jobs/undistort", body)
    assert first.status_code == 202
    second = s.post("/v1/jobs/undistort", _portrait_body(np.zeros((64, 64, 3), np.float32)))
    assert second.status_code == 429
    assert second.json()["error"] == "limit" and "1 job(s) queued or running" in second.json()["message"]
    requests.delete(f"{s.url}/v1/jobs/{first.json()['id']}", headers=s.headers, timeout=60)


def test_run_endpoint_answers_in_one_request(server, sample):
    """POST /v1/run/OP: the simple-client path (curl, a host's own HTTP code)."""
    import priorfx.io as pio
    from priorfx.matting import MattingParams
    from priorfx.portrait import PortraitParams
    selfie = pio.read_image(sample("single_face.jpg"))[..., :3]
    r = server.post("/v1/run/undistort", _portrait_body(selfie, distance_m=1.5))
    assert r.status_code == 200 and r.headers["X-Priorfx-Parts"] == "1"
    (remote,) = protocol.unpack_all(r.content, allow_dataclasses=True)
    local = LocalEngine().undistort(selfie, PortraitParams(distance_m=1.5))
    assert np.array_equal(remote.image, local.image) and remote.faces == local.faces
    # Six frames: more results than the server keeps unfetched for a job (4).
    frames = [np.ascontiguousarray(selfie[:256, :256] * (0.9 + 0.02 * i)) for i in range(6)]
    r = server.post("/v1/run/matte", protocol.pack({"params": {"quality": "fast"}, "frames": frames}))
    assert r.status_code == 200 and r.headers["X-Priorfx-Parts"] == "6"
    results = protocol.unpack_all(r.content, allow_dataclasses=True)
    local = list(LocalEngine().matte(frames, MattingParams(quality="fast")))
    assert [x.index for x in results] == list(range(6))
    assert all(np.array_equal(a.alpha, b.alpha) for a, b in zip(results, local))
    r = server.post("/v1/run/undistort", _portrait_body(np.full((64, 64, 3), 0.5, np.float32)))
    assert r.status_code == 422 and r.json()["error"] == "no_face"
    assert not [j for j in server.get("/v1/jobs").json() if j["state"] in ("queued", "running", "done")]


def test_tls_serves_https_and_wss(start_server, tmp_path, monkeypatch):
    import shutil

    from priorfx.shutter import ShutterParams
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    s = start_server("--tls-cert", str(cert), "--tls-key", str(key))
    assert s.url.startswith("https://127.0.0.1:")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # trust our own test CA, as a studio would
    engine = s.engine()
    assert [m["id"] for m in engine.models()] == [m["id"] for m in LocalEngine().models()]
    frame = np.random.default_rng(0).random((64, 96, 3), dtype=np.float32)
    with engine.shutter_stream(ShutterParams(readout=0.5)) as session:  # over wss://
        assert session.push(frame).shape == frame.shape
    # Without the certificate authority the client refuses the server: no silent downgrade.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    from priorfx.engines.remote import RemoteEngine
    with pytest.raises(EngineUnreachableError, match="cannot verify the TLS certificate") as info:
        RemoteEngine(s.url, token=s.token).models()
    assert "REQUESTS_CA_BUNDLE" in info.value.hint


def test_tls_with_a_bad_certificate_is_a_usage_error(tmp_path):
    bad = tmp_path / "cert.pem"
    bad.write_text("not a certificate")
    proc = _serve("--port", "0", "--tls-cert", str(bad))
    assert proc.returncode == 2 and "cannot use TLS certificate" in proc.stderr
