"""Path and query parameters checked at the edge of the API (SPEC §7: 400, never 500)."""

from __future__ import annotations

import pytest
from chalice.app import BadRequestError

from chalicelib.api.params import array_id_param, limit_param, path_param


def test_a_spawn_array_id_is_accepted() -> None:
    assert array_id_param("render-20260127-a1b2c3") == "render-20260127-a1b2c3"


# API Gateway REST APIs hand path parameters over still percent-encoded
# (aws/chalice#688, #511): the CLI's `%3A` arrives as `%3A` and means `:`.
def test_an_encoded_id_is_decoded_before_it_is_checked() -> None:
    assert array_id_param("job%3Arender-20260127-a1b2c3") == "job:render-20260127-a1b2c3"
    assert array_id_param("job%3arender-1") == "job:render-1"


@pytest.mark.parametrize(
    "array_id",
    [
        "render-1%0A",  # decodes to a newline, which a `$`-anchored pattern let through
        "render-1\n",
        "%0Arender-1",
        "job%253Arender-1",  # double-encoded: decoded once it is `job%3Arender-1`
        "a%2Fb",
        "has%20space",
        "render-%FF",  # not UTF-8
        "render-%zz",  # not an escape: `%` stays, and is refused
        "",
    ],
)
def test_an_id_with_anything_around_it_is_refused(array_id: str) -> None:
    with pytest.raises(BadRequestError):
        array_id_param(array_id)


def test_decoding_happens_once() -> None:
    assert path_param("job%253Arender-1") == "job%3Arender-1"
    assert path_param("plain-1") == "plain-1"


@pytest.mark.parametrize("limit", ["5\n", "0", "101", "-1", "1e2", ""])
def test_a_limit_must_be_a_whole_number_from_1_to_100(limit: str) -> None:
    with pytest.raises(BadRequestError):
        limit_param({"limit": limit})
