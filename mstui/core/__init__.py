"""Headless core: chain math, fitting, policies, belief, answer extraction and the refinement loop.

Nothing here imports textual, llama_cpp or sqlite; tests/test_core_imports.py enforces it.
"""
