"""Torch-free building blocks shared by every layer: cost counters and atomic file output."""

from llm_perf_opt.core.atomic import atomic_write_bytes, atomic_write_text, check_output_folder, staged_directory
from llm_perf_opt.core.counts import Cost

__all__ = ["Cost", "atomic_write_bytes", "atomic_write_text", "check_output_folder", "staged_directory"]
