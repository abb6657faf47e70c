"""IDs a user types back: a full id or a unique prefix of one, and short unique forms for tables."""

from __future__ import annotations

from collections.abc import Iterable

from ._common import fail

__all__ = ["AmbiguousId", "UnknownId", "pick_id", "resolve_id", "short_ids"]

SHORT_MIN = 12  # shortest prefix a table shows; longer where ids share it


class UnknownId(LookupError):
    """No id starts with what was given."""


class AmbiguousId(LookupError):
    """More than one id starts with what was given."""

    def __init__(self, given: str, matches: int) -> None:
        super().__init__(f"ambiguous: {matches} matches for '{given}'; give more of the id")
        self.matches = matches


def resolve_id(given: str, ids: Iterable[str]) -> str:
    """Return the id equal to `given`, else the one id it is a prefix of (case-insensitive).

    Raises:
        UnknownId: no id starts with `given`.
        AmbiguousId: several do (the message says "ambiguous: N matches").
    """
    known = list(dict.fromkeys(ids))
    if given in known:
        return given
    wanted = given.lower()
    matches = [item for item in known if item.lower().startswith(wanted)] if wanted else known
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UnknownId(f"nothing starts with '{given}'")
    raise AmbiguousId(given, len(matches))


def pick_id(given: str, ids: Iterable[str], *, what: str, listing: str) -> str:
    """Resolve `given` among `ids`, or exit 1 naming the command that lists them.

    `what` names the kind of id ("daemon"), `listing` the CLI command that shows them
    (`clawgate hub daemons`), so every error says what to run next.
    """
    try:
        return resolve_id(given, ids)
    except AmbiguousId as exc:
        fail(f"{exc} ({what}s); see `{listing}`", 1)
    except UnknownId:
        fail(f"no {what} starts with '{given}'; see `{listing}`", 1)


def short_ids(ids: Iterable[str], minimum: int = SHORT_MIN) -> dict[str, str]:
    """Map each id to its shortest prefix (at least `minimum` long) that no other id shares."""
    known = list(dict.fromkeys(ids))
    short: dict[str, str] = {}
    for item in known:
        length = min(minimum, len(item))
        while length < len(item) and any(
            other != item and other.lower().startswith(item[:length].lower()) for other in known
        ):
            length += 1
        short[item] = item[:length]
    return short
