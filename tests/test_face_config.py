"""The face configuration: defaults, a full file, where it is found, and each bad value named by its line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camera.faceconfig import CONFIG_ENV, DetectorConfig, FaceConfig, FaceConfigError, LivenessConfig, QualityLimits

FULL = """\
# a site's own detector
[detector]
format = "scrfd"
model = "models/scrfd_500m.onnx"
input_size = [320, 256]
score_threshold = 0.6
nms_threshold = 0.4

[quality]
min_face_px = 80
max_yaw_deg = 30
min_brightness = 40
max_brightness = 220

[liveness]
model = "/opt/naiad/liveness.onnx"
threshold = 0.7
"""


def test_a_full_file_reads_with_model_paths_from_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "face.toml"
    path.write_text(FULL)
    config = FaceConfig.load(path)
    assert config.detector == DetectorConfig("scrfd", tmp_path / "models/scrfd_500m.onnx", (320, 256), 0.6, 0.4)
    assert config.quality == QualityLimits(min_face_px=80, max_yaw_deg=30, min_brightness=40, max_brightness=220)
    assert config.liveness == LivenessConfig(Path("/opt/naiad/liveness.onnx"), 0.7)


def test_an_empty_file_is_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "face.toml"
    path.write_text("")
    assert FaceConfig.load(path) == FaceConfig()
    assert FaceConfig().detector.model is None and FaceConfig().detector.format == "centerface"


def test_resolve_takes_the_argument_then_the_variable_then_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.setenv("NAIAD_CONFIG_DIR", str(tmp_path / "config"))
    assert FaceConfig.resolve() == FaceConfig()  # nothing anywhere: defaults
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "face.toml").write_text("[liveness]\nthreshold = 0.6\n")
    assert FaceConfig.resolve().liveness.threshold == 0.6
    named = tmp_path / "named.toml"
    named.write_text("[liveness]\nthreshold = 0.8\n")
    monkeypatch.setenv(CONFIG_ENV, str(named))
    assert FaceConfig.resolve().liveness.threshold == 0.8
    argument = tmp_path / "argument.toml"
    argument.write_text("[liveness]\nthreshold = 0.9\n")
    assert FaceConfig.resolve(argument).liveness.threshold == 0.9


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ('[detector]\nformat = "retinaface"\n', 2, "the format must be one of"),
        ('[detector]\n\nformat = "yunet"\n', 3, "this format needs its model file"),
        ("[detector]\ninput_size = [320]\n", 2, "two whole numbers"),
        ("[detector]\ninput_size = [320.5, 240]\n", 2, "two whole numbers"),
        ("[detector]\ninput_size = [4096, 240]\n", 2, "two whole numbers"),
        ("[detector]\nscore_threshold = 1.5\n", 2, "from 0 to 1"),
        ('[detector]\nnms_threshold = "high"\n', 2, "a number is required"),
        ("[detector]\nmodel = 3\n", 2, "a file path"),
        ("[quality]\n\nmax_yaw_deg = 120\n", 3, "an angle from 0 to 90"),
        ("[quality]\nmin_face_px = true\n", 2, "a number is required"),
        ("[quality]\nmin_brightness = 200\nmax_brightness = 100\n", 2, "below max_brightness"),
        ("[quality]\nmax_clipped = nan\n", 2, "a number is required"),
        ("[quality]\nsharpness = 1\n", 2, "unknown setting"),
        ("[liveness]\nthreshold = -0.1\n", 2, "between 0 and 1"),
        ("[liveness]\nthreshold = 0\n", 2, "both excluded"),  # accepts every face the hard checks pass
        ("[liveness]\nthreshold = 1.0\n", 2, "both excluded"),
        ("[detectors]\nformat = 'yunet'\n", 1, "unknown table"),
        ("detector = 'yunet'\n", 1, "not a table"),
        ("[detector]\nformat = \n", 2, "not valid TOML"),
    ],
)
def test_a_bad_value_is_named_by_its_line_and_reason(tmp_path: Path, text: str, line: int, reason: str) -> None:
    path = tmp_path / "face.toml"
    path.write_text(text)
    with pytest.raises(FaceConfigError) as caught:
        FaceConfig.load(path)
    assert caught.value.params["line"] == line
    assert reason in str(caught.value) and str(path) in str(caught.value)
    assert caught.value.remedy_text


def test_a_setting_in_another_table_is_named_where_it_is(tmp_path: Path) -> None:
    path = tmp_path / "face.toml"
    path.write_text("[liveness]\nthreshold = 0.5\n\n[detector]\nthreshold = 0.5\n")
    with pytest.raises(FaceConfigError) as caught:
        FaceConfig.load(path)
    assert caught.value.params["line"] == 5


def test_a_missing_or_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(FaceConfigError, match="No such file"):
        FaceConfig.load(tmp_path / "none.toml")
    binary = tmp_path / "face.toml"
    binary.write_bytes(b"\xff\xfe[detector]")
    with pytest.raises(FaceConfigError, match="not UTF-8"):
        FaceConfig.load(binary)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('[]=."\n 0123456789-_abcdeflmnoprstuyz#')), max_size=120))
def test_any_text_is_a_configuration_or_a_config_error(text: str) -> None:
    try:
        config = FaceConfig.loads(text)
    except FaceConfigError as exc:
        assert exc.params["line"] >= 0 and str(exc)
    else:
        assert isinstance(config, FaceConfig)
