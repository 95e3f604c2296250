"""costTimeline's answer executed by Strawberry with nothing else: the answer is computed once, then the same query
runs against a schema whose field returns it as it is (no SQL, no HTTP, no JSON). Imported after Django is set up.

This module does not use postponed annotations: Strawberry reads the field's argument types when the class is made.
"""

from types import SimpleNamespace
from typing import Any

import strawberry
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.types import Info

from graphql_api.schema import CONFIG
from graphql_api.slices.inputs import Dimension, Granularity, MetricOrder, TimeRange
from graphql_api.slices.reading import MAX_ROWS, usage_slice
from graphql_api.slices.types import UsageSlice


def prebuilt_timeline_schema() -> strawberry.Schema:
    answers: dict[str, UsageSlice] = {}

    @strawberry.type
    class Prebuilt:
        @strawberry.field
        def cost_timeline(
            self,
            info: Info[Any, Any],
            range: TimeRange | None = None,
            granularity: Granularity = Granularity.DAY,
            group_by: list[Dimension] | None = None,
        ) -> UsageSlice:
            if "timeline" not in answers:
                answers["timeline"] = usage_slice(
                    info, range, None, group_by, granularity, MetricOrder.PERIOD, MAX_ROWS, fill_gaps=True
                )
            return answers["timeline"]

    return strawberry.Schema(query=Prebuilt, config=CONFIG, extensions=[ParserCache, ValidationCache])


def executor(query: str, staff: Any) -> Any:
    """A callable running `query` on the prebuilt schema as `staff`; the first run computes the answer."""
    schema = prebuilt_timeline_schema()
    context = SimpleNamespace(request=SimpleNamespace(user=staff), user=staff, api_key=None)

    def run() -> Any:
        result = schema.execute_sync(query, context_value=context)
        assert result.errors is None, result.errors
        return result.data

    run()
    return run
