"""Real video files of many kinds, written with Debian's ffmpeg, and FFmpeg's own frame count.

Each maker writes a small file (64x48 to 160x120, under 2 s) with `ffmpeg -f lavfi` test
patterns; `ffprobe_frames` is `ffprobe -count_frames`, the count the decoder must match.
`damage_ogg_packet` makes the damaged Theora file that OpenCV stops on: it sets the first bit
of one video packet (a "header" packet in the middle of the frames, which the decoder refuses)
and rewrites the page's CRC so that the demuxer still hands the packet over.
"""

import shutil
import struct
import subprocess

import pytest

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")
needs_ffmpeg = pytest.mark.skipif(
    not (FFMPEG and FFPROBE),
    reason="no ffmpeg/ffprobe on PATH (scripts/setup_env.sh test installs Debian's ffmpeg)",
)

# name -> (file name, ffmpeg output arguments); input: a test pattern (see `make`)
KINDS = {
    "theora_damaged": ("damaged.ogg", ["-c:v", "libtheora", "-q:v", "7", "-g", "50"]),
    "mpeg1_es": ("stream.m1v", ["-c:v", "mpeg1video", "-f", "mpeg1video"]),
    "vfr_mp4": (
        "vfr.mp4",
        # the first 20 frames 1/25 s apart, the rest 1/10 s: a variable frame rate
        [
            "-vf",
            "setpts='if(lt(N,20),N/25,0.8+(N-20)/10)/TB'",
            "-fps_mode",
            "passthrough",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ],
    ),  # fmt: skip
    "yuv444p": ("yuv444.mp4", ["-c:v", "libx264", "-pix_fmt", "yuv444p"]),
    "yuv410p": ("yuv410.mkv", ["-c:v", "ffv1", "-pix_fmt", "yuv410p"]),
    "yuvj422p": ("yuvj422.avi", ["-c:v", "mjpeg", "-pix_fmt", "yuvj422p"]),
    "avi_mpeg4": ("xvid.avi", ["-c:v", "mpeg4", "-q:v", "5"]),
    "vp8_webm": ("vp8.webm", ["-c:v", "libvpx", "-b:v", "200k"]),
    "gif": ("anim.gif", ["-c:v", "gif"]),
}


def make(kind: str, folder, frames: int = 40, size: str = "96x64") -> str:
    """Writes the file of `kind` (KINDS) into `folder`; returns its path."""
    name, args = KINDS[kind]
    if kind == "theora_damaged":
        size, frames = "160x120", 100  # packets large enough to damage one in the middle
    path = str(folder / name)
    source = f"testsrc2=size={size}:rate=25"
    cmd = [FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", source, "-frames:v", str(frames)]
    subprocess.run([*cmd, *args, path], check=True)
    if kind == "theora_damaged":
        damage_ogg_packet(path)
    return path


def ffprobe_frames(path: str) -> int:
    """`ffprobe -count_frames`: the frames FFmpeg decodes from the first video stream."""
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return int(out.strip().rstrip(","))


def _crc_table():
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_CRC = _crc_table()


def _ogg_crc(data: bytes) -> int:
    """Ogg's page checksum (CRC-32, polynomial 0x04c11db7, no reflection, initial 0)."""
    r = 0
    for x in data:
        r = ((r << 8) & 0xFFFFFFFF) ^ _CRC[((r >> 24) ^ x) & 0xFF]
    return r


def _ogg_pages(data: bytes):
    """(offset, header size, body size, lacing values) of each Ogg page."""
    i = 0
    while i < len(data):
        assert data[i : i + 4] == b"OggS", f"no Ogg page at byte {i}"
        segments = data[i + 26]
        lacing = list(data[i + 27 : i + 27 + segments])
        yield i, 27 + segments, sum(lacing), lacing
        i += 27 + segments + sum(lacing)


def damage_ogg_packet(path: str) -> None:
    """Damages the largest packet of the middle page of an Ogg file, keeping its CRC valid."""
    data = bytearray(open(path, "rb").read())
    pages = list(_ogg_pages(bytes(data)))
    offset, header, body, lacing = pages[len(pages) // 2]
    packets, at, length = [], offset + header, 0
    for value in lacing:
        length += value
        if value < 255:  # a packet ends on a lacing value below 255
            packets.append((at, length))
            at, length = at + length, 0
    start, _ = max(packets, key=lambda p: p[1])
    data[start] |= 0x80  # a frame packet starting with bit 1: Theora refuses it as a header
    data[offset + 22 : offset + 26] = b"\0\0\0\0"
    crc = _ogg_crc(bytes(data[offset : offset + header + body]))
    data[offset + 22 : offset + 26] = struct.pack("<I", crc)
    with open(path, "wb") as f:
        f.write(data)
