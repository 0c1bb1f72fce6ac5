"""The shared surgery rules (idrop.core.surgery): which blocks get Information Dropout."""

from __future__ import annotations

import pytest

from idrop.core.surgery import Block, check_all_found, plan, selector


def test_plan_finds_map_norm_act_blocks():
    kinds = ["map", "norm", "relu", "map", "softplus", "dropout", "other", "map", "map+relu", "map", "other"]
    assert plan(kinds) == [
        Block(0, 1, 2, None, "relu"),
        Block(3, None, 4, None, "softplus"),
        Block(8, None, None, None, "relu"),
    ]
    assert plan(kinds, replace="dropout") == [Block(3, None, 4, 5, "softplus")]
    assert plan(["map", "dropout", "relu"]) == []  # a dropout between map and activation is no block
    assert plan([]) == []


def test_bad_replace_and_unknown_names_raise():
    with pytest.raises(ValueError, match="Invalid value received for argument `replace`"):
        plan(["map", "relu"], replace="all")
    with pytest.raises(ValueError, match=r"argument `layers`.*such maps here: \['a', 'b'\].*Received: layers=\['c'\]"):
        check_all_found(["a", "c"], ["a"], ["b", "a"])
    check_all_found(lambda n, m: True, [], ["a"])  # a predicate may match nothing
    assert selector("a")("a", None) and not selector(["a"])("b", None) and selector(None)("x", None)
