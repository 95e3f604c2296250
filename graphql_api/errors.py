"""The errors the API shows to its caller as they are; anything else is unexpected and masked."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from graphql import GraphQLError

from usage.validation import InvalidUsage


class PermissionDeniedError(Exception):
    """The caller may not do this. Shown to the caller; never turned into an empty answer."""


class NotAuthenticatedError(PermissionDeniedError):
    """No valid credentials came with the request; the HTTP answer is 401."""


class BadArgumentError(Exception):
    """An argument is wrong; the message names it and the problem."""

    def __init__(self, argument: str, problem: str) -> None:
        super().__init__(f"{argument}: {problem}")


class ServiceUnavailableError(Exception):
    """A dependency (the database) is down; the message says what was not done, without internal addresses."""


VISIBLE_ERRORS = (PermissionDeniedError, PermissionDenied, BadArgumentError, InvalidUsage, ServiceUnavailableError)


def should_mask_error(error: GraphQLError) -> bool:
    """Validation errors (no original error) and our own refusals are shown; anything unexpected is masked."""
    original = error.original_error
    # GraphQL's own refusals (a variable of the wrong type or null where a value is required) name the path.
    return original is not None and not isinstance(original, (*VISIBLE_ERRORS, GraphQLError))
