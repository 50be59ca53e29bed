"""`watch`'s options are declared once: the CLI's flags and the API's keywords come from it."""

from __future__ import annotations

import argparse

import pytest

from stream import watch
from stream.cli import build_parser
from stream.errors import BadInputError
from stream.options import DEVICES, OPTIONS, WATCH_OPTIONS, add_watch_flags, from_args, watch_config


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["watch", "clip.mp4", "--model", "m.onnx", *argv])


def test_every_declared_option_is_a_flag_and_a_keyword_with_one_default():
    parser = argparse.ArgumentParser()
    add_watch_flags(parser)
    flags = {a.dest: a for a in parser._actions}
    for option in WATCH_OPTIONS:
        if option.name == "dashboard":  # the CLI's is --no-dashboard: on by default on a terminal
            continue
        assert flags[option.name].option_strings == [option.flag]
        assert flags[option.name].default == (False if option.switch else option.default)
    cli = from_args(parse(), terminal=False)
    api = watch_config(["clip.mp4"], "m.onnx", {})
    assert cli == api  # no flag given, no keyword given: the same config


def test_the_cli_and_the_api_make_the_same_config_from_the_same_options():
    argv = ["--fps", "4", "--report", "r.json", "--duration", "30", "--no-retry", "--smooth", "3"]
    argv += ["--name", "a", "--metrics-port", "0", "--view-port", "0", "--skip-similar", "0"]
    cli = from_args(parse(*argv), terminal=True)
    api = watch_config(
        ["clip.mp4"],
        "m.onnx",
        {
            "fps": 4,
            "report": "r.json",
            "duration_s": 30,
            "max_reconnects": 0,
            "smoothing": 3,
            "name": "a",
            "metrics_port": 0,
            "view_port": 0,
            "skip_similar": 0,
            "dashboard": True,
        },
    )
    assert cli == api and cli.source.every_s == 0.25 and cli.monitor.names == ("a",)


@pytest.mark.parametrize(
    ("given", "hint"), [({"every": 1.0}, "every_s"), ({"duration": 5}, "duration_s"), ({"x": 1}, "")]
)
def test_an_unknown_keyword_is_refused_naming_it(color_model, given, hint):
    with pytest.raises(BadInputError, match=f"no option '{next(iter(given))}'") as caught:
        watch("clip.mp4", color_model, **given)
    assert hint in str(caught.value)


def test_device_choices_are_declared_once():
    from stream.model.engine import Device

    assert tuple(d.value for d in Device) == DEVICES == OPTIONS["device"].choices
    for sub in ("watch", "evaluate", "suggest", "label"):
        action = next(
            a for a in build_parser()._subparsers._group_actions[0].choices[sub]._actions if a.dest == "device"
        )
        assert tuple(action.choices) == DEVICES
