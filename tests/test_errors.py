from pointseg_cli.errors import ConfigError, PointsError


def test_messages_stay_on_one_line_whatever_the_data_holds() -> None:
    exc = PointsError("header was 'a\nb', then 'c\r\nd' and 'e\rf'")
    assert "\n" not in str(exc) and "\r" not in str(exc)
    assert str(exc) == "header was 'a\\nb', then 'c\\nd' and 'e\\rf'"


def test_a_one_line_message_is_unchanged() -> None:
    assert str(ConfigError("--tile must have 2 or 3 positive sizes; got '0'")) == (
        "--tile must have 2 or 3 positive sizes; got '0'"
    )
