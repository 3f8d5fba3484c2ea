"""mstui: a terminal app for sequential inference-time scaling under the MarkovScale method."""

__version__ = "0.1.0"
