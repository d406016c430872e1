"""Measuring results: ``metrics`` (PSNR/SSIM on Y), ``niqe`` (no-reference NIQE), ``evaluate`` (models and bicubic
on image folders), ``plots``, ``tables``, ``zoom`` (zoomed crops) and ``published`` (the paper's numbers)."""
