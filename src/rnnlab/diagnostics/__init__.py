"""Diagnostics: gradient flow through time, and the gates and memory of a trained gated cell."""

from rnnlab.diagnostics.gradient_flow import GradientFlow, gradient_norms, plot_gradient_flow

__all__ = ["GradientFlow", "gradient_norms", "plot_gradient_flow"]
