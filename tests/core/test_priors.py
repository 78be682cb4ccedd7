"""Bring your own prior: `priorfx models add --role`, the contract's dry run,
devices, and the core without torch."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from priorfx.errors import DeviceUnavailableError, UsageError
from priorfx.models import devices, manifest


def test_add_single_image_and_recurrent_priors_records_their_contract(private_home, prior_models, cli, tmp_path):
    single = prior_models.onnx(tmp_path / "key.onnx")
    recurrent = prior_models.onnx(tmp_path / "key-rec.onnx", recurrent=True)
    r = cli("models", "add", "key", str(single), "--role", "person-matting", "--input", "multiple:8")
    assert r.returncode == 0, r.stderr
    assert "person-matting (single image); input multiple:8" in r.stdout and "dry run ok" in r.stdout
    r = cli("models", "add", "key-rec", str(recurrent), "--role", "person-matting")
    assert r.returncode == 0, r.stderr
    c = manifest.entry("key-rec").prior_contract
    assert c.state == (("h_in", "h_out"),) and c.image_input == "src" and c.alpha_output == "pha"
    assert manifest.entry("key").prior_contract.state == ()
    rows = {row["id"]: row for row in json.loads(cli("models", "list", "--json").stdout)}
    assert rows["key"]["contract"]["role"] == "person-matting" and rows["key"]["status"] == "ok"
    assert "person-matting" in cli("models", "list").stdout


@pytest.mark.parametrize("build, args, exit_code, message, hint", [
    # two unpaired inputs: not one frame in
    (dict(extra_input=True), ["--role", "person-matting"], 14, "2 unpaired input(s): ['src', 'depth']", "one frame input"),
    # a static 64x48 input, declared as any size
    (dict(fixed=(64, 48)), ["--role", "person-matting"], 14, "the model expects [1, 3, 48, 64]", "add --input fixed:64x48"),
    # channels last, declared NCHW
    (dict(layout="nhwc"), ["--role", "person-matting"], 14, "the model expects [1, 'height', 'width', 3]", "add --layout nhwc"),
    # logits, not an alpha
    (dict(logits=True), ["--role", "person-matting"], 14, "not [0, 1]", "final sigmoid"),
    # a recurrent model cannot be a single-image segmentation prior
    (dict(recurrent=True), ["--role", "person-segmentation"], 14, "recurrent state inputs ['h_in']",
     "--role person-matting"),
    # contract options without a role
    ({}, ["--layout", "nhwc"], 2, "describe a prior", "add --role"),
    ({}, ["--role", "person-matting", "--input", "fixed:0x5"], 2, "input size rule 'fixed:0x5'", "multiple:N"),
    ({}, ["--role", "person-matting", "--normalize", "0.5/0.5"], 2, "normalisation '0.5/0.5'", "imagenet"),
])
def test_a_model_that_does_not_fit_is_refused_at_add_time(private_home, prior_models, cli, tmp_path,
                                                           build, args, exit_code, message, hint):
    model = prior_models.onnx(tmp_path / "m.onnx", **build)
    r = cli("models", "add", "mine", str(model), *args)
    assert r.returncode == exit_code, r.stderr
    assert message in r.stderr and hint in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 2  # one error line, one hint, no traceback
    # nothing was registered or copied
    assert not (private_home / "models" / "user.json").exists()
    assert not (private_home / "models" / "mine").exists()


def test_declaring_the_contract_makes_the_same_model_fit(private_home, prior_models, cli, tmp_path):
    model = prior_models.onnx(tmp_path / "m.onnx", fixed=(64, 48), layout="nhwc")
    r = cli("models", "add", "fixed-nhwc", str(model), "--role", "person-segmentation",
            "--input", "fixed:64x48", "--layout", "nhwc")
    assert r.returncode == 0, r.stderr
    assert "person-segmentation (single image); input fixed:64x48, NHWC" in r.stdout


def test_a_model_without_a_prior_role_cannot_drive_matting(models_home, cli, tmp_path, key_image):
    import cv2

    img = tmp_path / "key.png"
    cv2.imwrite(str(img), (key_image[..., ::-1] * 255).round().astype(np.uint8))
    r = cli("matte", str(img), "-o", str(tmp_path / "m.png"), "--prior", "face-landmark", "--quiet")
    assert r.returncode == 14 and "has no person prior role" in r.stderr
    r = cli("matte", str(img), "-o", str(tmp_path / "m.png"), "--prior", "nobodys-model", "--quiet")
    assert r.returncode == 4 and "no prior 'nobodys-model' is registered" in r.stderr
    assert "rvm-mobilenetv3" in r.stderr and "priorfx models add nobodys-model" in r.stderr
    assert not (tmp_path / "m.png").exists()


# ------------------------------------------------------------------ devices
def test_cpu_and_auto_pick_the_cpu_where_no_gpu_provider_is_installed():
    assert devices.onnx_providers("cpu") == ["CPUExecutionProvider"]
    gpus = set(devices.ONNX_PROVIDERS.values()) & set(devices.available_onnx_providers())
    if not gpus:  # this machine: the PyPI onnxruntime wheel, CPU only
        assert devices.onnx_providers("auto") == ["CPUExecutionProvider"]


def test_a_missing_device_is_a_clear_error_not_a_silent_cpu_run():
    present = devices.available_onnx_providers()
    for device, provider in devices.ONNX_PROVIDERS.items():
        if provider in present:
            continue
        with pytest.raises(DeviceUnavailableError) as err:
            devices.onnx_providers(device)
        assert provider in err.value.message and devices.ONNX_WHEELS[device] in err.value.hint
    with pytest.raises(DeviceUnavailableError, match="torch device"):
        devices.onnx_providers("mps")
    with pytest.raises(DeviceUnavailableError, match="LiteRT models run on the CPU only"):
        devices.check_cpu_only("LiteRT", "cuda")
    with pytest.raises(UsageError, match="'gpu' is not one of auto, cpu, cuda"):
        devices.onnx_providers("gpu")


def test_torch_device_errors(prior_models):
    torch = pytest.importorskip("torch", reason="TorchScript needs the torch extra: pip install -e '.[test,torch]'")
    assert devices.torch_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError, match="has no CUDA device"):
            devices.torch_device("cuda")
        if not torch.backends.mps.is_available():
            assert devices.torch_device("auto") == "cpu"
    with pytest.raises(DeviceUnavailableError, match="onnxruntime device"):
        devices.torch_device("directml")


def test_device_flag_and_config_key(private_home, prior_models, cli, tmp_path, key_image):
    import cv2

    cli("models", "add", "key", str(prior_models.onnx(tmp_path / "k.onnx")), "--role", "person-matting")
    img = tmp_path / "key.png"
    cv2.imwrite(str(img), (key_image[..., ::-1] * 255).round().astype(np.uint8))
    if "CUDAExecutionProvider" not in devices.available_onnx_providers():
        r = cli("matte", str(img), "-o", str(tmp_path / "m.png"), "--prior", "key", "--device", "cuda", "--quiet")
        assert r.returncode == 13, r.stderr
        assert "device 'cuda' was asked for, but the installed onnxruntime has no CUDAExecutionProvider" in r.stderr
        assert "onnxruntime-gpu" in r.stderr and not (tmp_path / "m.png").exists()
        cfg = tmp_path / "config.toml"
        cfg.write_text('device = "cuda"\n')
        r = cli("matte", str(img), "-o", str(tmp_path / "m.png"), "--prior", "key", "--quiet",
                env={"PRIORFX_CONFIG": str(cfg)})
        assert r.returncode == 13 and "CUDAExecutionProvider" in r.stderr
    cfg = tmp_path / "bad.toml"
    cfg.write_text('device = "gpu"\n')
    r = cli("matte", str(img), "-o", str(tmp_path / "m.png"), "--prior", "key", "--quiet",
            env={"PRIORFX_CONFIG": str(cfg)})
    assert r.returncode == 2 and "device 'gpu' is not one of" in r.stderr
    # --device cpu and auto give the same bytes on a machine without a GPU provider
    outs = []
    for device in ("cpu", "auto"):
        out = tmp_path / f"m-{device}.exr"
        r = cli("matte", str(img), "-o", str(out), "--prior", "key", "--device", device, "--quiet")
        assert r.returncode == 0, r.stderr
        outs.append(out)
    from priorfx.io import read_image
    if not set(devices.ONNX_PROVIDERS.values()) & set(devices.available_onnx_providers()):
        assert np.array_equal(read_image(outs[0]), read_image(outs[1]))


# --------------------------------------------------------------- no torch
BLOCK_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked for this test")
sys.meta_path.insert(0, _NoTorch())
"""


def test_the_core_imports_and_mattes_without_torch(private_home, prior_models, cli, tmp_path, key_image):
    """A clean install without the torch extra: everything but TorchScript runs,
    and a TorchScript model names the extra to install."""
    cli("models", "add", "key", str(prior_models.onnx(tmp_path / "k.onnx")), "--role", "person-matting")
    np.save(tmp_path / "img.npy", key_image)
    code = BLOCK_TORCH + textwrap.dedent(f"""
        import numpy as np
        import priorfx.cli, priorfx.engines, priorfx.server.app, priorfx.cluster, priorfx.bench.matting
        from priorfx.matting import MattingParams, matte_image
        from priorfx.models import runtimes
        from priorfx.errors import UsageError
        r = matte_image(np.load({str(tmp_path / 'img.npy')!r}), MattingParams(prior="key", refine=False))
        print("alpha", float(r.alpha.mean()))
        try:
            runtimes.open_file({str(tmp_path / 'x.pt')!r}, "x", "torchscript")
        except UsageError as err:
            print("torchscript:", err)
        print("torch loaded:", "torch" in sys.modules)
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    expected = float(prior_models.key(key_image).mean())
    alpha_line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("alpha"))
    assert abs(float(alpha_line.split()[1]) - expected) < 1e-6
    assert "TorchScript models need torch, which is not installed (pip install 'priorfx[torch]')" in proc.stdout
    assert "torch loaded: False" in proc.stdout
