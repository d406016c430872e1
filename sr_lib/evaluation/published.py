"""Published x4 PSNR-Y (dB) on Set5 and Set14, to set our own numbers beside.

Ledig et al. (2017), Table 2 (bicubic, SRCNN, VDSR, SRResNet, SRGAN), with the same protocol as ``sr_lib.evaluation.evaluate``: Y of
ITU-R BT.601, 4-pixel border removed. Their bicubic LR comes from MATLAB's ``imresize``; ours from TensorFlow's
antialiased bicubic, so the bicubic rows differ slightly (Set14: 26.00 published, 26.09 here).
"""

PSNR_Y_X4 = {
    "Set5": {"bicubic": 28.43, "SRCNN": 30.48, "VDSR": 31.35, "SRResNet": 32.05, "SRGAN": 29.40},
    "Set14": {"bicubic": 26.00, "VDSR": 28.01, "SRResNet": 28.49, "SRGAN": 26.02},
}


def published(dataset: str, method: str) -> float:
    """The published x4 PSNR-Y of ``method`` on ``dataset``, or NaN when the paper has none."""
    return PSNR_Y_X4.get(dataset, {}).get(method, float("nan"))
