"""Error types the CLI maps onto exit codes."""


class InputError(ValueError):
    """Bad user input: the CLI prints the message on one line and exits with 2.

    Messages name the argument, the value and what to pass instead.
    """


class NoDataError(InputError):
    """The request is well-formed but the source holds nothing for it (exit 2)."""


class ProductError(RuntimeError):
    """A product failed its checks before publishing: nothing is published (exit 1)."""
