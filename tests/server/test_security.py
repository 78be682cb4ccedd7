"""What probing `priorfx serve` as an attacker and a careless user found, kept closed.

Every test runs a real `priorfx serve` on 127.0.0.1 and talks to it over
real sockets (raw ones where a well-behaved client could not misbehave).
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from priorfx.engines import protocol

BUNDLE = {"Content-Type": protocol.CONTENT_TYPE}


def _port(server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _raw_bundle(header: bytes) -> bytes:
    """A bundle whose JSON header is `header` verbatim (no arrays)."""
    return struct.pack("<4sHHIQ", b"PFXB", 1, 0, len(header), 20 + len(header)) + header


def _open_upload(server, length: int, first: bytes = b"PFXB") -> socket.socket:
    """A POST that announces `length` bytes and sends only `first`."""
    s = socket.create_connection(("127.0.0.1", _port(server)))
    auth = "".join(f"{k}: {v}\r\n" for k, v in server.headers.items())
    s.sendall(b"POST /v1/jobs/matte HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              b"Content-Type: application/x-priorfx-bundle\r\n"
              + f"{auth}Content-Length: {length}\r\n\r\n".encode() + first)
    return s


def _no_traceback(server) -> None:
    text = "".join(server.stderr)
    assert "Traceback" not in text and "Exception in ASGI" not in text, text[-3000:]


# ---------------------------------------------------------------- Host, Origin, Content-Type

def test_dns_rebinding_and_foreign_pages_are_refused_without_a_token(start_server):
    s = start_server(token=None)
    own = f"127.0.0.1:{_port(s)}"
    for host in ("evil.example", f"evil.example:{_port(s)}", "127.0.0.1.nip.io"):
        r = requests.get(s.url + "/v1/jobs", headers={"Host": host}, timeout=10)
        assert r.status_code == 403 and r.json()["error"] == "forbidden", host
        assert "--allow-host" in r.json()["hint"]
    for host in (own, f"localhost:{_port(s)}", f"[::1]:{_port(s)}", "192.168.1.20"):
        assert requests.get(s.url + "/v1/jobs", headers={"Host": host}, timeout=10).status_code == 200
    # A page elsewhere (even one served from this machine on another port) is a foreign origin.
    for origin in ("http://evil.example", "http://127.0.0.1:9", "null"):
        r = requests.get(s.url + "/v1/jobs", headers={"Origin": origin}, timeout=10)
        assert r.status_code == 403 and "refused" in r.json()["message"], origin
    assert requests.get(s.url + "/v1/jobs", headers={"Origin": f"http://{own}"}, timeout=10).status_code == 200


def test_allow_host_names_a_studio_name(start_server):
    s = start_server("--allow-host", "render01.studio.lan", token=None)
    r = requests.get(s.url + "/v1/jobs", headers={"Host": "render01.studio.lan:8765"}, timeout=10)
    assert r.status_code == 200
    r = requests.get(s.url + "/v1/jobs", headers={"Origin": "https://render01.studio.lan"}, timeout=10)
    assert r.status_code == 200
    assert requests.get(s.url + "/v1/jobs", headers={"Host": "other.lan"}, timeout=10).status_code == 403


def test_a_web_form_post_is_refused_with_415_before_any_work(start_server):
    s = start_server(token=None)
    body = protocol.pack({"params": {}, "frames": [np.zeros((32, 32, 3), np.float32)] * 2})
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None):
        headers = {"Content-Type": ctype} if ctype else {}
        r = requests.post(s.url + "/v1/jobs/matte", data=body, headers=headers, timeout=10)
        assert r.status_code == 415 and r.json()["error"] == "usage", ctype
        assert "Content-Type" in r.json()["message"]
    assert s.get("/v1/info").json()["jobs"] == {}
    r = requests.post(s.url + "/v1/jobs/matte", data=body, headers=BUNDLE, timeout=10)
    assert r.status_code == 202


def test_websocket_from_a_foreign_origin_is_refused(start_server):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    s = start_server(token=None)
    url = s.url.replace("http", "ws") + "/v1/shutter/stream"
    with pytest.raises(InvalidStatus) as info:
        with connect(url, origin="http://evil.example"):
            pass
    assert info.value.response.status_code == 403
    with connect(url, compression=None) as ws:  # priorfx's own client: no Origin, own Host
        ws.send(protocol.pack({"params": {}}))
        assert protocol.unpack(ws.recv(timeout=60))["ok"] is True


def test_a_token_server_still_refuses_foreign_origins_but_answers_any_host(start_server):
    s = start_server("--host", "127.0.0.1")
    r = requests.get(s.url + "/v1/jobs", headers={**s.headers, "Host": "gpu-box.lan"}, timeout=10)
    assert r.status_code == 200  # the token already defeats rebinding; farms use many names
    r = requests.get(s.url + "/v1/jobs", headers={**s.headers, "Origin": "http://evil.example"}, timeout=10)
    assert r.status_code == 403


# ---------------------------------------------------------------- uploads

def test_announced_uploads_reserve_no_memory(start_server, wait_until):
    s = start_server("--max-body-mb", "400")
    rss0 = s.get("/v1/info").json()["rss_mb"]
    socks = [_open_upload(s, 399 << 20) for _ in range(2)]  # just under the limit, 4 bytes sent
    try:
        wait_until(lambda: s.get("/v1/info").json()["upload_bytes_in_flight"] == 8)
        rss1 = s.get("/v1/info").json()["rss_mb"]
        # Before: each announced body was allocated up front (265 MB -> 1 GB).
        assert rss1 - rss0 < 50, (rss0, rss1)
    finally:
        for sock in socks:
            sock.close()
    wait_until(lambda: s.get("/v1/info").json()["upload_bytes_in_flight"] == 0)
    _no_traceback(s)


def test_bytes_in_flight_are_capped_across_connections(start_server, wait_until):
    s = start_server("--max-body-mb", "4", "--max-inflight-mb", "4")
    sent = (4 << 20) - (100 << 10)  # all but 100 KB of the budget
    first = _open_upload(s, 4 << 20, b"PFXB" + bytes(sent - 4))
    try:
        wait_until(lambda: s.get("/v1/info").json()["upload_bytes_in_flight"] == sent)
        r = s.post("/v1/jobs/matte", bytes(300 << 10))
        assert r.status_code == 413 and "already receiving" in r.json()["message"]
        assert "--max-inflight-mb" in r.json()["hint"]
    finally:
        first.close()
    wait_until(lambda: s.get("/v1/info").json()["upload_bytes_in_flight"] == 0)
    r = s.post("/v1/jobs/matte", bytes(300 << 10))  # room again: refused for what it is, not its size
    assert r.status_code == 422 and "magic" in r.json()["message"]


def test_a_stalled_body_times_out_with_408(start_server):
    s = start_server("--body-timeout", "1")
    sock = _open_upload(s, 1000)
    sock.settimeout(30)
    t0 = time.monotonic()
    answer = ""
    while not answer.endswith("}"):  # the status line and headers, then the JSON error
        chunk = sock.recv(4096).decode("latin-1")
        if not chunk:
            break
        answer += chunk
    sock.close()
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "stopped arriving" in answer and time.monotonic() - t0 < 20


def test_a_client_that_leaves_mid_body_leaves_no_traceback(start_server, wait_until):
    s = start_server()
    for _ in range(3):
        sock = _open_upload(s, 100_000, b"PFXB" + bytes(5000))
        wait_until(lambda: s.get("/v1/info").json()["upload_bytes_in_flight"] > 0)
        sock.close()
        wait_until(lambda: s.get("/v1/info").json()["upload_bytes_in_flight"] == 0)
    assert s.get("/v1/health").status_code == 200
    _no_traceback(s)


# ---------------------------------------------------------------- malformed requests

_ZERO_HUGE = json.dumps({"tree": {"params": {}, "frames": [{"$a": 0}]}, "arrays": [
    {"dtype": "float64", "shape": [0, 2 ** 31, 2 ** 31, 2 ** 31], "offset": 0, "nbytes": 0}]}).encode()


@pytest.mark.parametrize("body, status, words", [
    (_raw_bundle(b"[" * 100_000 + b"]" * 100_000), 422, "nested too deeply"),
    (_raw_bundle(b'{"tree": {"params": {"strength": 1e400}, "frames": []}, "arrays": []}'), 422,
     "out of range"),
    (_raw_bundle(b'{"tree": [1, 2, 3], "arrays": []}'), 422, "not an object of fields"),
    (_raw_bundle(b'{"tree": "frames", "arrays": []}'), 422, "not an object of fields"),
    (_raw_bundle(_ZERO_HUGE), 422, "lie outside the message"),
    (protocol.pack({"params": {}, "frames": [np.zeros((0, 5, 3), np.float32)]}), 422, "at least one pixel"),
    (protocol.pack({"params": {}, "frames": [np.zeros((4, 4, 0), np.float32)]}), 422, "C from 1"),
    (protocol.pack({"params": {}, "frames": [np.full((16, 16, 3), np.nan, np.float32)]}), 202, ""),
    (protocol.pack({"params": {}, "frames": [np.zeros((16, 16, 3), np.float32)], "total": 10 ** 19}),
     413, "at most"),
])
def test_malformed_requests_get_a_4xx_json_error_never_a_500(server, body, status, words):
    r = server.post("/v1/jobs/matte", body)
    assert r.status_code == status, r.text
    if status == 202:  # NaN pixels: refused by the matting itself, as in a local run
        job = r.json()["id"]
        state = server.get(f"/v1/jobs/{job}?wait=30").json()
        while state["state"] in ("queued", "running"):
            state = server.get(f"/v1/jobs/{job}?wait=30&since={state['version']}").json()
        assert state["state"] == "failed" and "NaN" in state["error"]["message"], state
        return
    assert words in r.json()["message"], r.json()
    assert server.get("/v1/health").status_code == 200
    _no_traceback(server)


def test_a_zero_size_array_with_huge_axes_inside_the_message_is_refused(server):
    header = json.dumps({"tree": {"params": {}, "frames": [{"$a": 0}]}, "arrays": [
        {"dtype": "float64", "shape": [0, 2 ** 31, 2 ** 31, 2 ** 31], "offset": 256, "nbytes": 0}]}).encode()
    body = struct.pack("<4sHHIQ", b"PFXB", 1, 0, len(header), 256) + header
    body += bytes(256 - len(body))
    r = server.post("/v1/jobs/matte", body)
    assert r.status_code == 422 and "too large" in r.json()["message"], r.text


def test_wait_nan_is_refused_not_an_endless_poll(server):
    r = server.post("/v1/jobs/undistort", protocol.pack({"params": {}, "image": np.zeros((8, 8, 3), np.float32)}))
    job = r.json()["id"]
    for bad in ("nan", "inf", "-inf", "soon"):
        r = server.get(f"/v1/jobs/{job}?wait={bad}")
        assert r.status_code == 400 and "finite number" in r.json()["message"], bad


def test_frames_upload_body_that_is_not_a_mapping_is_422(server):
    r = server.post("/v1/jobs/matte", protocol.pack({"params": {}, "frames": [np.zeros((16, 16, 3), np.float32)],
                                                     "more": True}))
    job = r.json()["id"]
    for tree in ([1, 2], "frames", 5):
        r = server.post(f"/v1/jobs/{job}/frames", protocol.pack(tree))
        assert r.status_code == 422 and "not an object of fields" in r.json()["message"]
    requests.delete(f"{server.url}/v1/jobs/{job}", headers=server.headers, timeout=10)
    _no_traceback(server)


# ---------------------------------------------------------------- limits

def test_max_frames_holds_across_the_uploads_of_a_matte_job(start_server):
    s = start_server("--max-frames", "3")
    frame = np.zeros((16, 16, 3), np.float32)
    r = s.post("/v1/jobs/matte", protocol.pack({"params": {}, "frames": [frame] * 2, "total": 4}))
    assert r.status_code == 413 and "at most 3" in r.json()["message"]
    r = s.post("/v1/jobs/matte", protocol.pack({"params": {}, "frames": [frame] * 2, "more": True}))
    job = r.json()["id"]
    r = s.post(f"/v1/jobs/{job}/frames", protocol.pack({"frames": [frame] * 2, "more": True}))
    assert r.status_code == 413 and "at most 3" in r.json()["message"]


def test_finished_jobs_nobody_fetched_count_against_max_jobs(start_server, wait_until):
    s = start_server("--max-jobs", "1")
    body = protocol.pack({"params": {}, "frames": [np.full((32, 32, 3), 0.5, np.float32)] * 2})
    first = s.post("/v1/jobs/matte", body).json()["id"]
    wait_until(lambda: s.get(f"/v1/jobs/{first}").json()["state"] == "done", timeout=120)
    r = s.post("/v1/jobs/matte", body)
    assert r.status_code == 429 and "not yet fetched" in r.json()["message"]
    requests.delete(f"{s.url}/v1/jobs/{first}", headers=s.headers, timeout=10)
    assert s.post("/v1/jobs/matte", body).status_code == 202


def test_finished_results_expire_sooner_than_running_jobs():
    import asyncio

    from priorfx.server.jobs import JobManager

    async def scenario():
        jobs = JobManager(max_active=2, ttl_s=600.0, result_ttl_s=0.05)
        job = jobs.submit("matte", lambda progress: iter([{"alpha": 1}]))
        while job.state != "done":
            await asyncio.sleep(0.01)
        assert job.parts  # unfetched
        job.last_access -= 0.1  # as if nobody asked for 100 ms
        jobs.reap()
        gone = job.id not in jobs.jobs
        jobs.shutdown()
        return gone

    assert asyncio.run(scenario())


# ---------------------------------------------------------------- the live WebSocket

@contextlib.contextmanager
def _stream(server, hello=True):
    from websockets.sync.client import connect

    url = server.url.replace("http", "ws") + "/v1/shutter/stream"
    with connect(url, additional_headers=server.headers, compression=None) as ws:
        if hello:
            ws.send(protocol.pack({"params": {}}))
            assert protocol.unpack(ws.recv(timeout=60))["ok"] is True
        yield ws


@pytest.mark.parametrize("message, words", [
    ("a text frame", "not text messages"),
    (protocol.pack({"method": "push", "args": [np.full((16, 16, 3), np.nan, np.float32)]}), "NaN"),
    (protocol.pack({"method": "push_buffer", "args": [bytes(64 * 32 * 4), "BGRA", 64, 32],
                    "kwargs": {"strides": ["x"]}}), "strides must be whole"),
    (protocol.pack({"method": "push_buffer", "args": [bytes(64 * 32 * 4), "BGRA", 64, 32],
                    "kwargs": {"strides": -5}}), "strides must be whole"),
    (protocol.pack({"method": "push", "args": [], "kwargs": {"colour": 1}}), "push()"),
    (protocol.pack({"method": "flush", "args": [1, 2, 3]}), "flush()"),
])
def test_bad_stream_messages_get_an_error_reply_and_the_session_goes_on(server, message, words):
    with _stream(server) as ws:
        ws.send(message)
        reply = protocol.unpack(ws.recv(timeout=60))
        assert words in reply["error"]["message"], reply
        assert "internal" not in reply["error"]["message"]
        ws.send(protocol.pack({"method": "push", "args": [np.zeros((16, 16, 3), np.float32)]}))
        assert "result" in protocol.unpack(ws.recv(timeout=60))
    _no_traceback(server)


def test_a_session_without_its_opening_message_is_closed(start_server, wait_until):
    from websockets.exceptions import ConnectionClosed

    s = start_server("--hello-timeout", "1", "--max-streams", "1")
    with _stream(s, hello=False) as ws:
        reply = protocol.unpack(ws.recv(timeout=30))
        assert "opening message within 1 s" in reply["error"]["message"]
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=30)
    wait_until(lambda: s.get("/v1/info").json()["streams"] == 0)
    with _stream(s):  # the slot is free again
        pass


# ---------------------------------------------------------------- the command line

def _serve(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("priorfx")
    full = {k: v for k, v in os.environ.items() if k != "PRIORFX_TOKEN"} | (env or {})
    return subprocess.run([str(exe), "serve", "--port", "0", *args], capture_output=True, text=True,
                          timeout=60, env=full)


@pytest.mark.parametrize("args, env, words", [
    (("--max-body-mb", "nan"), None, "--max-body-mb must be a finite number"),
    (("--max-body-mb", "inf"), None, "--max-body-mb must be a finite number"),
    (("--max-pixels", "nan"), None, "--max-pixels must be a finite number"),
    (("--body-timeout", "-1"), None, "--body-timeout"),
    ((), {"PRIORFX_THREADS": "abc"}, "PRIORFX_THREADS must be a whole number"),
    (("--token-file", "/nonexistent/token"), None, "cannot read --token-file"),
])
def test_bad_serve_settings_are_one_line_usage_errors(args, env, words):
    r = _serve(*args, env=env)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[0].startswith("priorfx: error:")


def test_token_file_is_preferred_and_token_on_the_command_line_warns(start_server, tmp_path):
    path = tmp_path / "token"
    path.write_text("from-a-file\n")
    path.chmod(0o600)
    s = start_server("--token-file", str(path), token=None)
    assert requests.get(s.url + "/v1/info", timeout=10).status_code == 401
    ok = requests.get(s.url + "/v1/info", headers={"Authorization": "Bearer from-a-file"}, timeout=10)
    assert ok.status_code == 200
    # The token never shows in the process list.
    cmdline = Path(f"/proc/{s.proc.pid}/cmdline").read_bytes().decode()
    assert "from-a-file" not in cmdline
    s.stop()
    assert not any("warning" in line for line in s.stderr)
    t = start_server()  # --token T
    t.stop()
    assert any("visible to every user" in line for line in t.stderr)


def test_a_token_file_others_can_read_is_warned_about(start_server, tmp_path):
    path = tmp_path / "token"
    path.write_text("shared-token\n")
    path.chmod(0o644)
    s = start_server("--token-file", str(path), token=None)
    s.stop()
    assert any("other users can read it" in line and "chmod 600" in line for line in s.stderr)


def test_a_matte_of_tiny_frames_answers_instead_of_crashing_the_job(server):
    """Found by the fuzzing suite: frames under 12 px made the optical flow raise inside the job."""
    body = protocol.pack({"params": {}, "frames": [np.full((8, 10, 3), 0.5, np.float32)] * 3})
    r = server.post("/v1/run/matte", body)
    assert r.status_code == 200, r.text
    results = protocol.unpack_all(r.content, allow_dataclasses=True)
    assert len(results) == 3 and results[0].alpha.shape == (8, 10)
    _no_traceback(server)
