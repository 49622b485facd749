"""llm-perf-opt: where DeepSeek-OCR spends time and memory, on a named GPU, for a named document workload."""

__version__ = "0.1.0"

__all__ = ["__version__"]
