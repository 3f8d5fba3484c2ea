"""Engines: backends that turn prompts into streamed tokens (llama.cpp in-process, scripted)."""
