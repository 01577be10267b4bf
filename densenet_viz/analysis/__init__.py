"""Numbers about a model: closed forms per architecture, `analyze()` and its reports, measurement on real
and meta tensors, the plain-vs-efficient trade, and the memory budget."""

from .closed_form import analyze, clear_cache, max_batch_that_fits, memory_growth
from .measure import measure_activation_bytes, measure_cuda_peak, measure_macs
from .report import DTYPES, MEMORY_LABELS, MODES, AnalysisReport, MemoryReport

__all__ = [
    "DTYPES",
    "MEMORY_LABELS",
    "MODES",
    "AnalysisReport",
    "MemoryReport",
    "analyze",
    "clear_cache",
    "max_batch_that_fits",
    "measure_activation_bytes",
    "measure_cuda_peak",
    "measure_macs",
    "memory_growth",
]
