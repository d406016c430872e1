"""A built wheel is complete, not only the editable install: every subpackage and data file, the CLI, and the
shipped model loading with safe_mode=True from the installed package alone."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "saved_models" / "srresnet_x4" / "srresnet_x4.keras"


def test_wheel_installs_and_runs(tmp_path):
    source = tmp_path / "source"  # A copy: setuptools builds in the source tree (build/, *.egg-info).
    shutil.copytree(ROOT / "sr_lib", source / "sr_lib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", source)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("sr_lib-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    packages = sorted({str(path.parent.relative_to(ROOT)) for path in (ROOT / "sr_lib").rglob("__init__.py")})
    assert packages and all(f"{package}/__init__.py" in names for package in packages), (packages, names)
    assert "sr_lib/evaluation/niqe_pris_params.npz" in names and "sr_lib/evaluation/NIQE_NOTICE.txt" in names
    # Installed into a folder of its own; the dependencies (TensorFlow, ...) come from this environment. Run from
    # tmp_path, so that the checkout's sr_lib is not importable from the current directory.
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    env = {"PYTHONPATH": str(target), "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"}
    help_run = subprocess.run([sys.executable, "-m", "sr_lib", "--help"], capture_output=True, text=True, env=env,
                              cwd=tmp_path)
    assert help_run.returncode == 0 and "upscale" in help_run.stdout and "mos" in help_run.stdout, help_run.stderr
    script = ("import sys, keras, sr_lib\n"
              f"assert sr_lib.__file__.startswith({str(target)!r}), sr_lib.__file__\n"
              f"model = keras.saving.load_model({str(SHIPPED)!r}, safe_mode=True)\n"
              "from sr_lib.evaluation import niqe\n"
              "assert niqe.pristine_model()[0].shape == (36,)\n"
              "print(model.count_params())\n")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert int(loaded.stdout.split()[-1]) > 1_000_000
