"""How a clip's stored picture is turned for a viewer: FFmpeg's display matrix as quarter turns and flips.

Phones record sideways and store a display matrix (in MP4/MOV, the track header's matrix) saying how to turn
the picture; front cameras may add a mirror. The matrix is nine 32-bit integers, the first two columns in
16.16 fixed point (FFmpeg's ``AV_FRAME_DATA_DISPLAYMATRIX``). The decisions below follow ffplay's and
ffmpeg's own autorotation (a quarter turn, or a transpose when a mirror comes with it; flips for half and no
turns), so a frame comes out as those players show it. Angles that are not quarter turns snap to the nearest
one.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from fractions import Fraction

from PIL import Image

_MATRIX = struct.Struct("=9i")  # native byte order, as FFmpeg keeps it in memory


def read_matrix(data: bytes | None) -> tuple[int, ...] | None:
    """The nine integers of a display matrix's side data (None when there is none or it is malformed)."""
    if data is None or len(data) != _MATRIX.size:
        return None
    return _MATRIX.unpack(data)


def matrix_rotation(matrix: Sequence[int]) -> float:
    """The counter-clockwise angle in degrees the matrix turns the picture by (FFmpeg's
    ``av_display_rotation_get``); 0 for a degenerate matrix."""
    first, second = math.hypot(matrix[0], matrix[3]), math.hypot(matrix[1], matrix[4])
    if first == 0 or second == 0:
        return 0.0
    return -math.degrees(math.atan2(matrix[1] / second, matrix[0] / first))


def clockwise_rotation(counter_clockwise: float) -> int:
    """A counter-clockwise angle (degrees) as the clockwise quarter turn a viewer applies: 0, 90, 180 or 270
    (exiftool's ``Rotation`` tag reads the same: 90 for an upright phone clip)."""
    return int(round(-counter_clockwise / 90.0)) % 4 * 90


def quarter_turn(matrix: Sequence[int] | None) -> int:
    """The clockwise quarter turn of a display matrix (0 without one)."""
    return 0 if matrix is None else clockwise_rotation(matrix_rotation(matrix))


def display_transposes(matrix: Sequence[int] | None) -> tuple[Image.Transpose, ...]:
    """The Pillow transposes, in order, that show a stored picture as its display ``matrix`` says."""
    if matrix is None:
        return ()
    turn = quarter_turn(matrix)
    if turn == 90:  # ffplay: transpose "cclock_flip" when mirrored, else "clock"
        return (Image.Transpose.TRANSPOSE,) if matrix[3] > 0 else (Image.Transpose.ROTATE_270,)
    if turn == 270:  # ffplay: transpose "clock_flip" when mirrored, else "cclock"
        return (Image.Transpose.TRANSVERSE,) if matrix[3] < 0 else (Image.Transpose.ROTATE_90,)
    flips: list[Image.Transpose] = []
    if turn == 180 and matrix[0] < 0:
        flips.append(Image.Transpose.FLIP_LEFT_RIGHT)
    if matrix[4] < 0:
        flips.append(Image.Transpose.FLIP_TOP_BOTTOM)
    return tuple(flips)


def displayed_size(width: int, height: int, turn: int, pixel_aspect: Fraction | None) -> tuple[int, int]:
    """The size a viewer sees of a ``width``×``height`` stored picture: non-square pixels stretched, then the
    clockwise quarter ``turn`` applied."""
    if pixel_aspect and pixel_aspect != 1:
        width = max(1, round(width * pixel_aspect))
    return (height, width) if turn in (90, 270) else (width, height)
