"""Path and query parameters checked at the edge of the API (SPEC §7: 400, never 500)."""

from __future__ import annotations

import pytest
from chalice.app import BadRequestError

from chalicelib.api.arrays import array_id_param, limit_param


def test_a_spawn_array_id_is_accepted() -> None:
    assert array_id_param("render-20260127-a1b2c3") == "render-20260127-a1b2c3"


# API Gateway hands path parameters over URL-decoded, so `%0A` arrives as a newline,
# which a `$`-anchored pattern let through.
@pytest.mark.parametrize("array_id", ["render-1\n", "render-1\n\n", "\nrender-1", ""])
def test_an_id_with_anything_around_it_is_refused(array_id: str) -> None:
    with pytest.raises(BadRequestError):
        array_id_param(array_id)


@pytest.mark.parametrize("limit", ["5\n", "0", "101", "-1", "1e2", ""])
def test_a_limit_must_be_a_whole_number_from_1_to_100(limit: str) -> None:
    with pytest.raises(BadRequestError):
        limit_param({"limit": limit})
