"""Which problem comes next: a built-in generated level or an imported set, cycled in order."""

from __future__ import annotations

from mstui.core.problems import Problem, load_problem_set

LEVEL_CHOICES: tuple[int | None, ...] = (None, 1, 2, 3, 4, 5)
BATCH = 200  # problems generated per set: enough to never repeat in a session


class ProblemPicker:
    """Serves problems one by one from `spec` ('gen' or a .jsonl path) at an optional level."""

    def __init__(self, spec: str = "gen", *, level: int | None = None, seed: int = 0) -> None:
        self.spec = spec
        self.level = level
        self.seed = seed
        self.index = -1
        self._cache: dict[str, list[Problem]] = {}

    @property
    def set_name(self) -> str:
        """The problem set's name as stored with runs ('gen:L3', a file path, ...)."""
        if self.spec == "gen" and self.level is not None:
            return f"gen:L{self.level}"
        return self.spec

    @property
    def builtin(self) -> bool:
        """Whether levels can be chosen (only the built-in generator has them)."""
        return self.spec == "gen"

    def cycle_level(self) -> str:
        """Next level choice (all → L1 … L5 → all) for the built-in set; its label."""
        if self.builtin:
            i = LEVEL_CHOICES.index(self.level)
            self.level = LEVEL_CHOICES[(i + 1) % len(LEVEL_CHOICES)]
            self.index = -1
        return self.level_label

    def set_level(self, level: int | None) -> None:
        """Choose a level (None = all) and start its problems from the first."""
        if level not in LEVEL_CHOICES:
            raise ValueError(f"level must be one of 1–5 or all, not {level!r}")
        self.level = level
        self.index = -1

    @property
    def level_label(self) -> str:
        """'all levels' or 'level N'."""
        return "all levels" if self.level is None else f"level {self.level}"

    def next(self) -> Problem:
        """The next problem of the set (wrapping around); ProblemSetError on a bad file."""
        name = self.set_name
        if name not in self._cache:
            size = BATCH if self.builtin else None
            self._cache[name] = load_problem_set(name, size, self.seed)[0]
        problems = self._cache[name]
        self.index = (self.index + 1) % len(problems)
        return problems[self.index]
