"""Metrics that torchmetrics lacks, in its ``Metric`` style."""

from rnnlab.metrics.perplexity import Perplexity
from rnnlab.metrics.span_f1 import SpanF1, extract_spans

__all__ = ["Perplexity", "SpanF1", "extract_spans"]
