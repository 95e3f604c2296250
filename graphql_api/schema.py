"""The GraphQL schema. The exported SDL is committed as schema.graphql: it is the contract for frontends."""

from __future__ import annotations

from decimal import Decimal

import strawberry
from django.db import connection
from strawberry.schema.config import StrawberryConfig

# Money leaves the API as a plain decimal string ("0.000150"), never "1.5E-4" and never a float.
DecimalScalar = strawberry.scalar(
    name="Decimal",
    description="An exact decimal number, serialised as a plain string such as 0.000150.",
    serialize=lambda value: format(value, "f"),
    parse_value=lambda value: Decimal(str(value)),
)


@strawberry.type
class Health:
    ok: bool
    database: str


@strawberry.type
class Query:
    @strawberry.field(description="Whether the service can reach its database.")
    def health(self) -> Health:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return Health(ok=True, database="ok")
        except Exception as exc:  # reported, not raised: a health probe must always answer
            return Health(ok=False, database=f"error: {type(exc).__name__}")


CONFIG = StrawberryConfig(scalar_map={Decimal: DecimalScalar})
schema = strawberry.Schema(query=Query, config=CONFIG)
