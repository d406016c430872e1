"""sr_lib.console's engine choice for `upscale`: Eigen's kernels where oneDNN would run below AVX-512 (there it is
half as fast for this network), nothing elsewhere, and never against the user's own TF_ENABLE_ONEDNN_OPTS."""

import os
import subprocess
import sys

import pytest

from sr_lib import console
from sr_lib.core import device

AVX512 = "flags\t\t: fpu avx2 fma avx512f avx512bw avx512_bf16\n"
AVX2 = "flags\t\t: fpu avx2 fma\n"


@pytest.mark.parametrize("flags, cap, argv, environ, expected", [
    (AVX2, "", ["upscale", "a.png"], {}, {"TF_ENABLE_ONEDNN_OPTS": "0"}),
    (AVX512, "AVX2", ["upscale", "a.png"], {}, {"TF_ENABLE_ONEDNN_OPTS": "0"}),  # The portability cap counts too.
    (AVX512, "", ["upscale", "a.png"], {}, {}),  # oneDNN is the faster engine on AVX-512 (and has bf16).
    (AVX512, "AVX512_CORE_BF16", ["upscale", "a.png"], {}, {}),
    (AVX2, "", ["evaluate", "--data", "x"], {}, {}),  # Only upscale chooses.
    (AVX2, "", ["upscale", "a.png"], {"TF_ENABLE_ONEDNN_OPTS": "1"}, {}),  # The user's choice stands.
])
def test_upscale_uses_eigen_only_below_avx512(monkeypatch, flags, cap, argv, environ, expected):
    monkeypatch.setattr(device, "cpuinfo", lambda: flags)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert console.upscale_engine(argv, environ) == expected


def test_upscale_starts_tensorflow_with_the_chosen_engine(tmp_path):
    # oneDNN can only be switched before TensorFlow starts: `python -m sr_lib upscale` under the AVX2 cap must start it
    # with oneDNN off (TensorFlow announces oneDNN at start-up when it is on; --verbose keeps that line).
    import keras
    import numpy as np
    from PIL import Image

    from sr_lib.nets.models import make_generator

    keras.utils.set_random_seed(0)
    make_generator(num_blocks=1, channels=4, scale=2).save(tmp_path / "g.keras")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    command = [sys.executable, "-m", "sr_lib", "upscale", "--model", str(tmp_path / "g.keras"), str(tmp_path / "a.png"),
               "--out", str(tmp_path / "out"), "--verbose", "--no-progress"]
    env = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    result = subprocess.run(command, capture_output=True, text=True, env={**env, "ONEDNN_MAX_CPU_ISA": "AVX2"},
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "oneDNN custom operations are on" not in result.stdout + result.stderr
    assert (tmp_path / "out" / "a_x2.png").is_file()
