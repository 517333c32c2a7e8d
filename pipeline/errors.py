"""Error types the CLI maps onto exit codes."""


class InputError(ValueError):
    """Bad user input: the CLI prints the message on one line and exits with 2.

    Messages name the argument, the value and what to pass instead.
    """


class NoDataError(InputError):
    """The request is well-formed but the source holds nothing for it (exit 2)."""


class ProductError(RuntimeError):
    """A product failed its checks before publishing: nothing is published (exit 1)."""


def request_failure(exc: BaseException) -> str:
    """The cause of a failed network request in a few words, for a one-line error.

    requests and urllib3 wrap the cause several times over (``ConnectionError`` of a
    ``MaxRetryError`` of a ``NameResolutionError``, each repeating the URL and the pool
    settings); urllib's ``URLError`` keeps it in ``reason``. This walks to the innermost
    one and names the usual ones plainly: a host name that does not resolve (no network,
    or a wrong URL), a refused connection, a timeout. Anything else is its type and the
    first line of its message.
    """
    chain = [exc]
    while len(chain) < 16:
        cur = chain[-1]
        nxt = getattr(cur, "reason", None)  # urllib3 MaxRetryError, urllib URLError
        if not isinstance(nxt, BaseException):
            nxt = next((a for a in getattr(cur, "args", ()) if isinstance(a, BaseException)),
                       None)  # requests' ConnectionError of a MaxRetryError
        if not isinstance(nxt, BaseException):
            nxt = cur.__cause__
        if not isinstance(nxt, BaseException) or any(nxt is c for c in chain):
            break
        chain.append(nxt)
    names = {type(c).__name__ for c in chain}
    text = " ".join(str(c) for c in chain)
    if names & {"NameResolutionError", "gaierror"} or "Name or service not known" in text:
        return "host name not found: no network, or a wrong URL"
    if "ConnectionRefusedError" in names or "Connection refused" in text:
        return "connection refused"
    if "timeout" in names or any("Timeout" in n for n in names):
        return "timed out"
    inner = chain[-1]
    first = (str(inner).splitlines() or [""])[0][:200]
    return f"{type(inner).__name__}: {first}" if first else type(inner).__name__
