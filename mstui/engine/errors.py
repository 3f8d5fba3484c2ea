"""Engine errors carry one-line messages that say what to do."""


class ModelError(Exception):
    """A model cannot be found, read or loaded; str(error) is the line to show the user."""
