"""Synthetic action videos in the UCF101 layout, for tests and the demo.

Three modules: `render` (the class grid and the clip renderer), `dataset` (the folder, its
split files and marker, and `write_records`: generated examples as a records folder, no
videos), `command` (the command line); the names below are the ones callers use.

    python -m tsn_keras.synthetic --out demo_out/videos                 # 8 classes x 30 clips
    python -m tsn_keras.synthetic --out /tmp/s --classes 4 --clips_per_class 3 --width 32 \
        --height 24 --fps 10 --seconds 1 --duration_jitter 0

Each class is one cell of an appearance x motion grid: a textured blob of one colour moving in
one direction (`RedBlobMoveUp`, `RedBlobMoveDown`, `GreenBlobMoveUp`, ...). The grid is
built so that each stream of a two-stream network sees only half of the label:

  * Appearance classes differ ONLY in hue. The colours are isoluminant (same luma under the
    BT.601 weights that cv2.COLOR_RGB2GRAY uses), the blob has the same shape, size
    distribution and texture in every class, so the grayscale frames that optical flow is
    computed on have the same distribution for every colour: flow alone cannot tell them apart.
  * Motion classes differ ONLY in direction. The start position is uniform over the frame and
    the blob wraps around the edges (a torus), there is no motion blur, and the speed is drawn
    from the same range for every direction, so a single RGB frame carries no information about
    the direction: RGB alone cannot tell them apart.

The background is a cluttered, textured, coloured scene that is static in the world, with fresh
noise on every frame; a fraction of the clips has camera jitter (a random walk of 1 px steps
within +-2% of the width that shifts the whole frame, the blob included). The blob moves
1.4-2.8% of the width per frame (2.2-4.5 px at 160 px, 0.35-0.7 widths a second at 25 fps) with a
small perpendicular drift. Clips are grouped as in UCF101 (`v_<Class>_gGG_cCC.avi`): the clips
of one group share a background, and a whole group goes to one side of the split (the
lowest-numbered groups are the test set, as in UCF101's split 1), so the test set shows
backgrounds never seen in training.

Grid rule for `classes=N` (N even, 2 <= N <= 48):
  * N <= 24: N/2 appearances x 2 motions (Up, Down). Not Left/Right: training flips clips
    horizontally (TSN's augmentation), which would turn a left-moving clip into a right-moving
    one under the same label (train with --random_flip=false for such classes).
  * N > 24: N must be a multiple of 4; N/4 appearances x 4 motions (Up, Down, Left, Right).
Appearances are taken in the order of `APPEARANCES` (Red, Green, Blue, Yellow, ...). Class
labels follow the alphabetical order of the class names, as in UCF101's classInd.txt, so the
`ucf101` and `folder` readers of tsn_keras.splits give the same labels.

Output (`<out>` is the video root; split files as UCF101 ships them, CRLF line endings):
    <out>/<Class>/v_<Class>_gGG_cCC.avi
    <out>/ucfTrainTestlist/classInd.txt      "1 BlueBlobMoveDown"
    <out>/ucfTrainTestlist/trainlist01.txt   "BlueBlobMoveDown/v_BlueBlobMoveDown_g04_c01.avi 1"
    <out>/ucfTrainTestlist/testlist01.txt    "BlueBlobMoveDown/v_BlueBlobMoveDown_g01_c01.avi"
    <out>/synthetic.json                     the parameters and the summary

Running twice with the same parameters reuses the files (a finished synthetic.json with the same
parameters and every video present); other parameters replace the files a previous run wrote.
A folder that holds other files and no synthetic.json is refused.

Codecs: `mp4v` (MPEG-4 Part 2) and `MJPG` (motion JPEG), both in .avi; with this OpenCV
(5.0, FFmpeg backend) both read back with the exact frame count and size. Width and height must
be even: the encoders round odd sizes down.
"""

from tsn_keras.synthetic.command import main
from tsn_keras.synthetic.dataset import (
    CODECS,
    MARKER_NAME,
    SPLIT_DIR_NAME,
    format_dataset_summary,
    write_dataset,
    write_records,
)
from tsn_keras.synthetic.render import (
    APPEARANCES,
    MOTIONS,
    RenderedClip,
    SyntheticClass,
    class_grid,
    grid_shape,
    make_background,
    render_clip,
)

__all__ = [
    "APPEARANCES",
    "CODECS",
    "MARKER_NAME",
    "MOTIONS",
    "SPLIT_DIR_NAME",
    "RenderedClip",
    "SyntheticClass",
    "class_grid",
    "format_dataset_summary",
    "grid_shape",
    "main",
    "make_background",
    "render_clip",
    "write_dataset",
    "write_records",
]
