"""The input modalities of TSN and their channel counts: the one definition the package uses.

    rgb           one RGB frame per snippet                  stored 3 channels, network 3
    flow          L stacked optical-flow fields (x, y)       stored 2L,         network 2L
    warped_flow   flow after cancelling camera motion        stored 2L,         network 2L
    rgbdiff       L+1 RGB frames; the network sees the       stored 3(L+1),     network 3L
                  L differences of consecutive frames

No imports: the converter's worker processes, the tf.data pipeline and the Keras-only model code
(which must stay free of TensorFlow) all read it.
"""

from __future__ import annotations

MODALITIES = ("rgb", "flow", "rgbdiff", "warped_flow")
FLOW_MODALITIES = ("flow", "warped_flow")


def check(modality: str) -> str:
    """Returns `modality` if it is one of MODALITIES, else raises ValueError naming it."""
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}. Received: modality={modality!r}")
    return modality


def is_flow(modality: str) -> bool:
    """True for the optical-flow modalities (x/y fields; a flip inverts x)."""
    return check(modality) in FLOW_MODALITIES


def stored_channels(modality: str, snippet_length: int = 5) -> int:
    """Channels of a decoded snippet as stored and served: 3, 2L, 2L or 3(L+1)."""
    if check(modality) == "rgb":
        return 3
    if modality in FLOW_MODALITIES:
        return 2 * snippet_length
    return 3 * (snippet_length + 1)


def network_channels(modality: str, snippet_length: int = 5) -> int:
    """Channels of the preprocessed network input: 3 (rgb), 2L (flow), 3L (rgbdiff)."""
    if check(modality) == "rgbdiff":
        return 3 * snippet_length
    return stored_channels(modality, snippet_length)
