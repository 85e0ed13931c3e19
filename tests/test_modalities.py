"""The one definition of the modalities and their channel counts."""

import pytest

from tsn_keras import modalities

ALL = ("rgb", "flow", "warped_flow", "rgbdiff")


def test_channel_counts():
    assert [modalities.network_channels(m) for m in ALL] == [3, 10, 10, 15]
    assert [modalities.stored_channels(m) for m in ALL] == [3, 10, 10, 18]
    assert modalities.network_channels("flow", 3) == 6
    assert modalities.stored_channels("rgbdiff", 3) == 12  # L+1 RGB frames
    assert [modalities.is_flow(m) for m in ALL] == [False, True, True, False]


@pytest.mark.parametrize(
    "fn",
    [modalities.check, modalities.is_flow, modalities.stored_channels, modalities.network_channels],
)
def test_unknown_modality_is_named(fn):
    with pytest.raises(ValueError, match="Received: modality='depth'"):
        fn("depth")
