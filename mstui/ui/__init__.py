"""The Textual terminal UI: live runs, step-through, trace replay with what-if, and fits."""
