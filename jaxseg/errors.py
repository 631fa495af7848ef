"""One exception type for every error a user can fix (bad data, bad config).

The command line prints these as a single line naming the culprit instead of a
traceback from deep inside jax.
"""


class JaxsegError(ValueError):
    """An error in the user's data or configuration, with a message naming the culprit."""


def check_choice(what: str, value, choices) -> None:
    """Raises JaxsegError unless ``value`` is one of ``choices``.

    Args:
      what: the name of the setting, e.g. ``"model.norm"``.
      value: the value given.
      choices: the allowed values.
    """
    if value not in choices:
        raise JaxsegError(f"unknown {what} {value!r}; choose one of {sorted(choices)}")
