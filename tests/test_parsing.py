"""The comma-list parsers behind every ``a,b,c`` option."""

from __future__ import annotations

import pytest

from pointseg_cli.errors import ConfigError, PointsError
from pointseg_cli.parsing import parse_floats, parse_ints, parse_mapping, parse_names, split_list


def test_split_list():
    assert split_list(" a, b ,c", what="--x") == ["a", "b", "c"]
    assert split_list("32x64X64", what="--tile", sizes=True) == ["32", "64", "64"]
    with pytest.raises(ConfigError, match="--x has an empty item in 'a,,b'"):
        split_list("a,,b", what="--x")


def test_parse_floats():
    assert parse_floats("2, 0.5,0.5", what="--spacing") == (2.0, 0.5, 0.5)
    assert parse_floats(None, what="--spacing") is None and parse_floats("", what="--spacing") is None
    with pytest.raises(ConfigError, match=r"--spacing must be numbers separated by commas \(e.g. 1,1\); got 'a'"):
        parse_floats("a", what="--spacing", example="1,1")


def test_parse_ints():
    assert parse_ints("0,10,20", what="--grid") == (0, 10, 20)
    assert parse_ints("128x128", what="--tile", sizes=True, lengths=(2, 3)) == (128, 128)
    with pytest.raises(ConfigError, match="--grid must be integers"):
        parse_ints("1.5", what="--grid")
    with pytest.raises(ConfigError, match="--grid values must be >= 0; got '-1,2'"):
        parse_ints("-1,2", what="--grid", minimum=0)
    with pytest.raises(ConfigError, match=r"--tile must have 2 or 3 values \(e.g. 0,10,20\); got 1"):
        parse_ints("5", what="--tile", lengths=(2, 3))


def test_parse_names():
    assert parse_names(" a, b ,c", what="--classes") == ("a", "b", "c")
    assert parse_names(["a", "b"], what="--classes") == ("a", "b")
    assert parse_names(None, what="--classes") is None and parse_names(" ", what="--classes") is None
    with pytest.raises(PointsError, match="--classes repeats a name"):
        parse_names("a,a", what="--classes", error=PointsError)
    with pytest.raises(ConfigError, match="--classes has an empty name"):
        parse_names("a,,b", what="--classes")


def test_parse_mapping():
    assert parse_mapping(" Tumor = tumour, Type 1=nucleus", what="--class-map") == {
        "Tumor": "tumour", "Type 1": "nucleus"
    }
    assert parse_mapping(None, what="--class-map") == {}
    for bad in ("a", "=b", "a="):
        with pytest.raises(ConfigError, match="--class-map must be pairs like"):
            parse_mapping(bad, what="--class-map")
    with pytest.raises(ConfigError, match="maps 'a' twice"):
        parse_mapping("a=b,a=c", what="--class-map")
