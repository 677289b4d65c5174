"""The two kinds of stage failure; the tasks decide retry or store by kind."""


class StageFailure(Exception):
    """A failure that a retry cannot fix (bad expression, math error, 4xx)."""


class TransientFailure(Exception):
    """A failure that may pass (service unreachable, 5xx, export queue full)."""
