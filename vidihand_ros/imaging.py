"""Image bytes ↔ pixels, and checking image bytes before anything trusts what they declare.

JPEG pass-through (a source JPEG copied straight into the dataset) must never store bytes that do
not decode, at >1000 frames/s, so `jpeg_info` checks the whole file's marker structure, entropy-
coded data included, with numpy, without decoding it. Every encoding's declared size goes through
`check_declared_size` before any pixel buffer is allocated (decompression bombs), and the bytes
that pass come back as a `CheckedImage`, the evidence the dataset relies on not to check twice.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache

import imagecodecs
import numpy as np
from numpy.typing import NDArray

#: Default limit on the pixels one frame may declare (8192×8192 = 67 Mpx, 201 MB as RGB):
#: `vidihand convert --max-pixels` changes it.
MAX_PIXELS = 8192 * 8192
#: libjpeg's limit on either side (JPEG_MAX_DIMENSION).
JPEG_MAX_SIDE = 65500


class CorruptImageError(ValueError):
    """The bytes are not a decodable image of the declared format (or declare a refused size).

    `field` is the message field the problem is in ('data' for compressed bytes, 'width'/'height'
    for a raw Image's declared size).
    """

    def __init__(self, message: str, field: str = "data") -> None:
        super().__init__(message)
        self.field = field


class SizeMismatchError(CorruptImageError):
    """The frame declares another size than its calibration gives (`SizeLimits.expected`)."""


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    channels: int
    #: Bits per sample: 8 for ordinary JPEGs, 12 (or 2–16 lossless) for high-bit-depth ones.
    precision: int = 8


@dataclass(frozen=True)
class SizeLimits:
    """What a frame may declare: at most `max_pixels`, and exactly `expected` (w, h) when known
    (the size its stream already has, or its calibration's), `expected_by` saying whose it is."""

    max_pixels: int = MAX_PIXELS
    expected: tuple[int, int] | None = None
    expected_by: str = "its calibration"


DEFAULT_LIMITS = SizeLimits()


def check_declared_size(width: int, height: int, limits: SizeLimits = DEFAULT_LIMITS) -> None:
    """Refuse a declared size before anything is allocated or decoded for it.

    The one check for every encoding (JPEG SOF, PNG IHDR, raw Image width/height, video
    streams): a positive size, at most `limits.max_pixels` pixels, and the calibration's size
    when it gives one (SizeMismatchError).
    """
    if width <= 0 or height <= 0:
        raise CorruptImageError(f"bad image size {width}x{height}", "width" if width <= 0 else "height")
    if width * height > limits.max_pixels:
        raise CorruptImageError(
            f"image declares {width}x{height} = {width * height} pixels, over the limit of "
            f"{limits.max_pixels} (--max-pixels)"
        )
    if limits.expected is not None and (width, height) != limits.expected:
        w, h = limits.expected
        raise SizeMismatchError(f"image is {width}x{height}, not {w}x{h} as {limits.expected_by}")


class CheckedImage(bytes):
    """Image bytes that passed `check_image`, with what they declare.

    The type is the evidence: bytes are immutable, so a frame carrying a CheckedImage need not be
    checked again where the dataset decides to copy it (`checked_info`). Pickled, it becomes plain
    bytes (the receiver checks them itself).
    """

    info: ImageInfo
    codec: str

    def __reduce__(self) -> tuple[type[bytes], tuple[bytes]]:
        return bytes, (bytes(self),)


def check_image(
    data: bytes | NDArray[np.uint8], codec: str, limits: SizeLimits = DEFAULT_LIMITS
) -> CheckedImage:
    """`data` (any buffer) as a CheckedImage of `codec` ('jpeg' or 'png'); CorruptImageError if not.

    A JPEG loses any padding after its EOI marker (what a pass-through copy must hold).
    """
    image = CheckedImage(data)  # copied out of the message's buffer, as bytes(data) would be
    if codec == "jpeg":
        info, end = _check_jpeg(image, limits)
        if end != len(image):
            image = CheckedImage(memoryview(image)[:end])
    elif codec == "png":
        info = png_info(image, limits)
    else:
        raise ValueError(f"cannot check compressed format {codec!r}")
    image.info, image.codec = info, codec
    return image


def checked_info(data: bytes, codec: str, limits: SizeLimits = DEFAULT_LIMITS) -> ImageInfo:
    """What `data` declares: a CheckedImage's recorded info, else `data` is checked now."""
    if isinstance(data, CheckedImage) and data.codec == codec:
        return data.info
    if codec == "jpeg":
        return jpeg_info(data, limits)
    if codec == "png":
        return png_info(data, limits)
    raise CorruptImageError(f"cannot read compressed format {codec!r}")


# --------------------------------------------------------------------------------------------
# JPEG


def jpeg_info(data: bytes, limits: SizeLimits = DEFAULT_LIMITS) -> ImageInfo:
    """Size, channels and precision of a JPEG whose whole structure checks out; CorruptImageError
    otherwise. See `_check_jpeg` for what is checked and what cannot be."""
    return _check_jpeg(data, limits)[0]


def _check_jpeg(data: bytes, limits: SizeLimits) -> tuple[ImageInfo, int]:
    """(info, length without trailing padding) of a JPEG that libjpeg will decode without error.

    Checked in one walk over the markers, the entropy-coded data by numpy (every 0xFF and the
    byte after it), nothing decoded; a camera's repeated headers are walked once (`_HEADS`):
    - SOI first; between scans only DQT/DHT/DRI/SOS/APPn/COM segments, each with contents that
      fill its length exactly (quantisation tables of 64 or 128 bytes, Huffman tables that form
      a prefix code with DC symbols in range);
    - exactly one SOF, of a process libjpeg decodes (baseline, extended, progressive, lossless
      Huffman; hierarchical and arithmetic coding refused), before the first SOS, with 1, 3 or 4
      components, sampling factors that divide the largest, a size within `limits`;
    - every SOS: components of the frame, once each, ≤ 10 blocks per MCU, Huffman and
      quantisation tables defined by then (libjpeg-turbo's standard tables stand in for missing
      ones in sequential files only), scan parameters libjpeg accepts, and a second scan only
      in a progressive file or after a first that lacked components;
    - inside scans every 0xFF followed by 0x00 (stuffing), a fill 0xFF, or the next restart
      marker RST0–7 in sequence, as many as the restart interval implies (one extra tolerated);
      any other marker ends the scan and must be a valid segment;
    - EOI last (0x00/0xFF camera padding after it allowed, and dropped).

    These mirror the conditions under which libjpeg-turbo (3.1, via imagecodecs) stops with an
    error; tested on files from libjpeg-turbo, OpenCV and Pillow and on thousands of mutants of
    them, none that passed failed to decode (tests/test_imaging.py).

    What cannot be caught without decoding, and what libjpeg does with it: damage inside the
    Huffman-coded data that creates no marker. libjpeg does not raise for that either: it
    decodes to wrong pixels with at most a warning (of 300 random single-bit flips in a scan,
    297 decoded to different pixels without an error; the 3 that raised had created an
    "Unsupported marker", which this check rejects). Likewise a scan cut short with an EOI
    appended decodes (the rest grey); restart markers, when present, show the loss. Only the
    container's checksums (mcap chunk CRCs) cover such damage.
    """
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise CorruptImageError("not a JPEG (no SOI marker)")
    end = jpeg_end(data)
    if end is None:
        raise CorruptImageError("truncated JPEG (no EOI marker at the end)")
    head = _known_head(data, end)
    if head is not None and head.single_scan:  # the usual camera frame: headers seen before
        check_declared_size(head.info.width, head.info.height, limits)
        if _scan_runs_to_eoi(data, head.end, end):
            return head.info, end
    return _JpegWalk(data, end, limits).run(), end


@dataclass(frozen=True)
class _Head:
    """A file's start up to its first scan's data, walked once: the walk's state there."""

    end: int
    state: dict[str, object]
    info: ImageInfo
    #: One scan, no restart interval: the entropy-coded data must then run to the EOI.
    single_scan: bool


#: Walked heads by their bytes: a camera's frames repeat their headers (tables, frame, scan
#: header) byte for byte, and the walk up to there is a function of those bytes.
_HEADS: dict[bytes, _Head] = {}
_HEADS_KEPT = 32


def _known_head(data: bytes, end: int) -> _Head | None:
    sos = data.find(b"\xff\xda", 2, min(end, 1 << 16))
    if sos < 0 or sos + 4 > end:
        return None
    return _HEADS.get(bytes(data[: sos + 2 + ((data[sos + 2] << 8) | data[sos + 3])]))


def _scan_runs_to_eoi(data: bytes, start: int, end: int) -> bool:
    """Whether the first marker after `start` is the EOI at the end: every 0xFF before it is
    followed by 0x00 (stuffing) or 0xFF (fill). The whole check of a single-scan file's data."""
    a = np.frombuffer(data, np.uint8, count=end)
    ff = (a[start : end - 1] == 0xFF).nonzero()[0]
    after = a[start + 1 : end][ff].tobytes()
    first = len(after) - len(after.lstrip(b"\x00\xff"))
    return first < len(after) and start + int(ff[first]) == end - 2


# Start-of-frame markers: what libjpeg decodes, and all of them (DHT C4, JPG C8, DAC CC excluded).
_SOF_DECODED = frozenset({0xC0, 0xC1, 0xC2, 0xC3})  # baseline, extended, progressive, lossless
_SOF_ALL = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_DHT, _SOS, _DQT, _DRI, _EOI, _COM = 0xC4, 0xDA, 0xDB, 0xDD, 0xD9, 0xFE
_APPN = frozenset(range(0xE0, 0xF0))
#: Markers of the segments a decodable file may have between scans (APPn/COM skipped by length).
_SEGMENTS = _SOF_ALL | _APPN | {_DHT, _SOS, _DQT, _DRI, _COM}
#: Huffman table slots libjpeg-turbo fills with the standard tables in sequential files that
#: define none (Motion-JPEG frames from UVC cameras omit their DHT); not in progressive/lossless.
_STANDARD_HUFFMAN = 0b11


@dataclass(frozen=True)
class _Frame:
    """A parsed SOF segment."""

    process: int
    precision: int
    height: int
    width: int
    #: (component id, horizontal sampling, vertical sampling, quantisation table) per component.
    components: tuple[tuple[int, int, int, int], ...]

    @property
    def progressive(self) -> bool:
        return self.process == 0xC2

    @property
    def lossless(self) -> bool:
        return self.process == 0xC3

    def info(self) -> ImageInfo:
        return ImageInfo(self.width, self.height, len(self.components), self.precision)


class _JpegWalk:
    """One JPEG's marker walk: the state libjpeg keeps between segments, checked as it goes."""

    def __init__(self, data: bytes, end: int, limits: SizeLimits) -> None:
        self.data, self.end, self.limits = data, end, limits
        self.frame: _Frame | None = None
        self.quant = 0  # bit i: quantisation table i defined
        self.dc_tables = self.ac_tables = 0  # bit i: Huffman table i defined by a DHT
        self.dc_max_symbol: tuple[int, ...] = (0, 0, 0, 0)
        self.restart_interval = 0
        self.scans = 0
        self.multiple_scans = False
        self.jfif = False  # an APP0 JFIF marker (implies YCbCr)
        self.adobe_transform: int | None = None  # an APP14 Adobe marker's colour transform
        self.latched = 0  # bit i: component i has its quantisation table (latched at its first scan)
        self.scan_mcus = 0
        self._markers: _Markers | None = None

    def fail(self, what: str, pos: int) -> CorruptImageError:
        return CorruptImageError(f"corrupt JPEG: {what} at byte {pos}")

    def run(self) -> ImageInfo:
        data, end = self.data, self.end
        pos = self._resume()
        after_scan = pos != 2
        while True:
            if pos + 2 > end or data[pos] != 0xFF:
                raise self.fail("no marker where a segment should start", pos)
            while data[pos + 1] == 0xFF and pos + 2 < end:  # fill bytes before a marker
                pos += 1
            code = data[pos + 1]
            if code == _EOI:
                return self._finish(pos)
            if code not in _SEGMENTS:
                where = "in the entropy-coded data" if after_scan else "between segments"
                raise self.fail(f"unexpected marker 0x{code:02X} {where}", pos)
            if pos + 4 > end:
                raise self.fail(f"marker 0x{code:02X} cut off", pos)
            seg_end = pos + 2 + ((data[pos + 2] << 8) | data[pos + 3])
            if seg_end < pos + 4 or seg_end > end:
                raise self.fail(f"marker 0x{code:02X} with a bad length", pos)
            body = bytes(data[pos + 4 : seg_end])
            if code == _SOS:
                self._scan_header(body, pos)
                if self.scans == 1:
                    self._remember(seg_end)
                pos, after_scan = self._scan_end(seg_end), True
                continue
            if code == _DQT:
                quant = _quant_tables(body)
                if quant < 0:
                    raise self.fail("bad quantisation table", pos)
                self.quant |= quant
            elif code == _DHT:
                self._huffman_tables(body, pos)
            elif code in _SOF_ALL:
                self._frame(body, code, pos)
            elif code == _DRI:
                if len(body) != 2:
                    raise self.fail("DRI segment with a bad length", pos)
                self.restart_interval = (body[0] << 8) | body[1]
            elif code == 0xE0 or code == 0xEE:
                self._colour_marker(code, body)
            pos, after_scan = seg_end, False

    def _resume(self) -> int:
        """Where to walk on from: past the first scan header when these header bytes were walked
        before (their state restored, the size checked against this call's limits), else 2."""
        head = _known_head(self.data, self.end)
        if head is None:
            return 2
        self.__dict__.update(head.state)
        check_declared_size(head.info.width, head.info.height, self.limits)
        return self._scan_end(head.end)

    def _remember(self, head_end: int) -> None:
        if len(_HEADS) >= _HEADS_KEPT:
            _HEADS.clear()
        assert self.frame is not None
        state = {k: v for k, v in vars(self).items() if k not in ("data", "end", "limits", "_markers")}
        single = not self.multiple_scans and not self.restart_interval
        _HEADS[bytes(self.data[:head_end])] = _Head(head_end, state, self.frame.info(), single)

    def _colour_marker(self, code: int, body: bytes) -> None:
        """APP0 JFIF / APP14 Adobe: what libjpeg takes the colour space from (as it reads them)."""
        if code == 0xE0 and len(body) >= 14 and body[:5] == b"JFIF\0":
            self.jfif = True
        elif code == 0xEE and len(body) >= 12 and body[:5] == b"Adobe":
            self.adobe_transform = body[11]

    def _rgb_colour_space(self, frame: _Frame) -> bool:
        """Whether libjpeg reads this 3-component frame as RGB, not YCbCr (default_decompress_parms)."""
        if self.jfif:
            return False
        if self.adobe_transform is not None:
            return self.adobe_transform == 0
        return tuple(c[0] for c in frame.components) == (82, 71, 66)  # component ids 'R', 'G', 'B'

    def _finish(self, pos: int) -> ImageInfo:
        if self.frame is None or self.scans == 0:
            raise self.fail("EOI before any image data", pos)
        if pos + 2 != self.end:
            raise self.fail(f"EOI with {self.end - pos - 2} bytes after it", pos)
        return self.frame.info()

    def _frame(self, body: bytes, code: int, pos: int) -> None:
        if self.frame is not None:
            raise self.fail("a second frame header (SOF)", pos)
        if code not in _SOF_DECODED:
            raise self.fail(f"unsupported JPEG process (SOF 0x{code:02X}: hierarchical or arithmetic)", pos)
        frame = _parse_frame(body, code)
        if isinstance(frame, str):
            raise self.fail(frame, pos)
        if frame.width > JPEG_MAX_SIDE or frame.height > JPEG_MAX_SIDE:
            raise self.fail(f"frame size {frame.width}x{frame.height} over libjpeg's {JPEG_MAX_SIDE}", pos)
        check_declared_size(frame.width, frame.height, self.limits)
        self.frame = frame

    def _huffman_tables(self, body: bytes, pos: int) -> None:
        tables = _parse_huffman(body)
        if isinstance(tables, str):
            raise self.fail(tables, pos)
        for table_class, slot, max_symbol in tables:
            if table_class:
                self.ac_tables |= 1 << slot
            else:
                self.dc_tables |= 1 << slot
                self.dc_max_symbol = (*self.dc_max_symbol[:slot], max_symbol, *self.dc_max_symbol[slot + 1 :])

    def _scan_header(self, body: bytes, pos: int) -> None:
        frame = self.frame
        if frame is None:
            raise self.fail("scan (SOS) before the frame header", pos)
        ns = body[0] if body else 0
        if not 1 <= ns <= 4 or len(body) != 4 + 2 * ns:
            raise self.fail("SOS segment with a bad length", pos)
        ss, se, ah, al = body[1 + 2 * ns], body[2 + 2 * ns], body[3 + 2 * ns] >> 4, body[3 + 2 * ns] & 15
        problem = _scan_parameters(frame, ns, ss, se, ah, al)
        if problem:
            raise self.fail(problem, pos)
        ids = [c[0] for c in frame.components[:4]]  # libjpeg finds scan components among the first 4
        used = 0
        components = []
        for k in range(ns):
            selector, tables = body[1 + 2 * k], body[2 + 2 * k]
            index = ids.index(selector) if selector in ids else -1
            if index < 0 or used >> index & 1:
                raise self.fail(f"scan names component {selector}, not in the frame (or twice)", pos)
            used |= 1 << index
            component = frame.components[index]
            components.append(component)
            self._scan_tables(frame, tables >> 4, tables & 15, ss, ah, pos)
            if not frame.lossless and not self.latched >> index & 1:
                if not self.quant >> component[3] & 1:
                    raise self.fail(f"quantisation table {component[3]} used before it is defined", pos)
                self.latched |= 1 << index
        if ns > 1 and sum(h * v for _, h, v, _ in components) > 10:
            raise self.fail("scan with more than 10 blocks per MCU", pos)
        if self.scans == 0:
            self.multiple_scans = frame.progressive or ns < len(frame.components)
            if (
                frame.lossless
                and len(frame.components) != 1
                and not (len(frame.components) == 3 and self._rgb_colour_space(frame))
            ):  # libjpeg converts no colour space in lossless mode, and is asked for RGB
                raise self.fail("lossless JPEG that is not greyscale or RGB", pos)
        elif not self.multiple_scans:
            raise self.fail("a second scan in a single-scan image", pos)
        self.scans += 1
        self.scan_mcus = _mcu_count(frame, components)

    def _scan_tables(self, frame: _Frame, dc: int, ac: int, ss: int, ah: int, pos: int) -> None:
        """The Huffman tables libjpeg derives at this scan's start must exist and be in range."""
        if frame.progressive:  # a DC band's first scan needs its DC table, an AC band its AC table
            needs_dc, needs_ac = ss == 0 and ah == 0, ss != 0
        else:  # sequential: both; lossless: DC only
            needs_dc, needs_ac = True, not frame.lossless
        standard = 0 if frame.progressive or frame.lossless else _STANDARD_HUFFMAN
        if needs_dc and (dc > 3 or not (self.dc_tables | standard) >> dc & 1):
            raise self.fail(f"scan uses DC Huffman table {dc}, which is not defined", pos)
        if needs_ac and (ac > 3 or not (self.ac_tables | standard) >> ac & 1):
            raise self.fail(f"scan uses AC Huffman table {ac}, which is not defined", pos)
        if needs_dc and self.dc_max_symbol[dc] > (16 if frame.lossless else 15):
            raise self.fail(f"DC Huffman table {dc} has a symbol out of range", pos)

    def _scan_end(self, start: int) -> int:
        """Where the entropy-coded data starting at `start` ends (its terminating marker), with
        the restart markers before it in sequence and as many as the restart interval implies."""
        markers = self._markers
        if markers is None:
            markers = self._markers = _Markers(self.data, self.end)
        found = markers.scan(start)
        if found is None:
            raise self.fail("entropy-coded data without an end", start)
        end, restarts = found
        interval = self.restart_interval
        if interval:
            expected = -(-self.scan_mcus // interval) - 1
            if len(restarts) not in (expected, expected + 1):  # (an extra one at the end is harmless)
                raise self.fail(f"{len(restarts)} restart markers in a scan that needs {expected}", start)
        elif len(restarts):
            raise self.fail("restart marker in a scan without a restart interval", start)
        if len(restarts):
            wrong = np.flatnonzero((restarts & 7) != (np.arange(len(restarts)) & 7))
            if wrong.size:
                raise self.fail(f"restart marker {int(wrong[0])} out of sequence in the scan", start)
        return end


class _Markers:
    """Every 0xFF of a file and the byte after it, found with numpy once per file.

    Inside entropy-coded data, an 0xFF followed by 0x00 (stuffing) or 0xFF (fill) is data; any
    other follower is a marker, exactly where libjpeg's bit reader stops.
    """

    def __init__(self, data: bytes, end: int) -> None:
        a = np.frombuffer(data, np.uint8, count=end)
        self.pos = (a[:-1] == 0xFF).nonzero()[0]
        self.after = a[1:][self.pos].tobytes()

    def scan(self, start: int) -> tuple[int, NDArray[np.uint8]] | None:
        """(position of the marker that ends a scan starting at `start`, the restart marker codes
        before it); None when no marker ends it."""
        k = int(np.searchsorted(self.pos, start))
        tail = self.after[k:]
        i = k + len(tail) - len(tail.lstrip(b"\x00\xff"))  # the first marker: few Python steps
        if i == len(self.after):
            return None
        if not 0xD0 <= self.after[i] <= 0xD7:
            return int(self.pos[i]), _NO_RESTARTS
        after = np.frombuffer(self.after, np.uint8)[i:]  # restart markers: numpy over the rest
        real = np.flatnonzero((after != 0x00) & (after != 0xFF))
        codes = after[real]
        terminal = np.flatnonzero((codes & 0xF8) != 0xD0)
        if not terminal.size:
            return None
        t = int(terminal[0])
        return int(self.pos[i + real[t]]), codes[:t]


_NO_RESTARTS = np.zeros(0, np.uint8)


@lru_cache(maxsize=64)
def _quant_tables(body: bytes) -> int:
    """Bit mask of the tables a DQT segment defines, -1 when its contents do not fill its length."""
    p, defined = 0, 0
    while p < len(body):
        precision, slot = body[p] >> 4, body[p] & 15
        if precision > 1 or slot > 3 or p + 1 + 64 * (precision + 1) > len(body):
            return -1
        defined |= 1 << slot
        p += 1 + 64 * (precision + 1)
    return defined


@lru_cache(maxsize=64)
def _parse_huffman(body: bytes) -> tuple[tuple[int, int, int], ...] | str:
    """(class 0 DC / 1 AC, slot, largest symbol) per table of a DHT segment, or what is wrong.

    A table's code lengths must form a prefix code in which no code is all ones (libjpeg's
    jpeg_make_d_derived_tbl check); cached: a camera repeats the same tables in every frame.
    """
    tables = []
    p = 0
    while p < len(body):
        if p + 17 > len(body):
            return "Huffman table cut off"
        table_class, slot = body[p] >> 4, body[p] & 15
        counts = body[p + 1 : p + 17]
        total = sum(counts)
        if table_class > 1 or slot > 3 or p + 17 + total > len(body):
            return "bad Huffman table"
        code = 0
        longest = max((i for i, c in enumerate(counts, 1) if c), default=0)
        for length in range(1, longest + 1):
            code += counts[length - 1]
            if code >= 1 << length:
                return "Huffman table that is not a prefix code"
            code <<= 1
        symbols = body[p + 17 : p + 17 + total]
        tables.append((table_class, slot, max(symbols, default=0)))
        p += 17 + total
    return tuple(tables)


@lru_cache(maxsize=64)
def _parse_frame(body: bytes, process: int) -> _Frame | str:
    """A SOF segment, or what is wrong with it (as libjpeg's get_sof and initial_setup check)."""
    if len(body) < 6:
        return "SOF segment cut off"
    precision, height, width, nf = body[0], (body[1] << 8) | body[2], (body[3] << 8) | body[4], body[5]
    if nf not in (1, 3, 4) or len(body) != 6 + 3 * nf:
        return f"bad frame header ({nf} components)"
    if width == 0 or height == 0:
        return f"bad frame header ({width}x{height})"
    lossless = process == 0xC3
    if not (2 <= precision <= 16 if lossless else precision in (8, 12)):
        return f"bad frame header ({precision}-bit samples)"
    components = tuple(
        (body[6 + 3 * i], body[7 + 3 * i] >> 4, body[7 + 3 * i] & 15, body[8 + 3 * i]) for i in range(nf)
    )
    if len({c[0] for c in components}) != nf:
        return "frame header names a component twice"
    max_h, max_v = max(c[1] for c in components), max(c[2] for c in components)
    for _, h, v, quant_table in components:
        if not (1 <= h <= 4 and 1 <= v <= 4) or max_h % h or max_v % v or quant_table > 3:
            return "bad sampling factors or quantisation table in the frame header"
    return _Frame(process, precision, height, width, components)


def _scan_parameters(frame: _Frame, ns: int, ss: int, se: int, ah: int, al: int) -> str:
    """What libjpeg refuses in a scan's Ss/Se/Ah/Al for the frame's process ('' when fine)."""
    if frame.lossless:
        if not 1 <= ss <= 7 or se != 0 or ah != 0 or al >= frame.precision:
            return "bad lossless scan parameters"
    elif frame.progressive:
        bad = se != 0 if ss == 0 else (ss > se or se > 63 or ns != 1)
        if bad or (ah != 0 and al != ah - 1) or al > 13:
            return "bad progressive scan parameters"
    return ""  # sequential: libjpeg only warns about odd Ss/Se/Ah/Al


def _mcu_count(frame: _Frame, components: list[tuple[int, int, int, int]]) -> int:
    """MCUs in a scan of these components (libjpeg's per_scan_setup), for the restart count."""
    unit = 1 if frame.lossless else 8
    max_h = max(c[1] for c in frame.components)
    max_v = max(c[2] for c in frame.components)
    if len(components) == 1:
        _, h, v, _ = components[0]
        return -(-frame.width * h // (max_h * unit)) * -(-frame.height * v // (max_v * unit))
    return -(-frame.width // (max_h * unit)) * -(-frame.height // (max_v * unit))


#: Bytes that cameras pad a JPEG with after its EOI marker (UVC/MJPEG encoders often do).
_PADDING = frozenset({0x00, 0xFF})
_MAX_PADDING = 4096


def jpeg_end(data: bytes) -> int | None:
    """Length of the JPEG proper: up to and including its EOI marker, ignoring trailing padding.

    None when no EOI marker ends the data (a truncated file).
    """
    if data[-2:] == b"\xff\xd9":
        return len(data)
    end = data.rfind(b"\xff\xd9", max(0, len(data) - _MAX_PADDING))
    if end < 0 or any(byte not in _PADDING for byte in data[end + 2 :]):
        return None
    return end + 2


def strip_jpeg_padding(data: bytes) -> bytes:
    """The JPEG without bytes after its EOI marker (unchanged when there are none)."""
    end = jpeg_end(data)
    return data if end is None or end == len(data) else data[:end]


# --------------------------------------------------------------------------------------------
# PNG

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Channels per PNG colour type, and the bit depths each allows.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


def png_info(data: bytes, limits: SizeLimits = DEFAULT_LIMITS) -> ImageInfo:
    """Size and channels from a PNG's IHDR, checked before anything is decoded; CorruptImageError
    for a size over `limits`, a bad header, a chunk whose CRC does not match, or a missing IEND.

    The IHDR is read from bytes 16..24 first, so a decompression bomb (a tiny file declaring
    20000×20000) is refused without inflating a byte. The chunk CRCs are PNG's own integrity
    check (zlib.crc32, about 1 GB/s); damage inside the compressed data that keeps the CRCs is
    for the decoder to find.
    """
    if len(data) < 45 or not data.startswith(_PNG_MAGIC) or data[12:16] != b"IHDR":
        raise CorruptImageError("not a PNG (no signature/IHDR)")
    if data[-8:-4] != b"IEND":
        raise CorruptImageError("truncated PNG (no IEND chunk at the end)")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", data[16:29])
    check_declared_size(width, height, limits)
    if depth not in _PNG_DEPTHS.get(colour, ()) or compression or filtering or interlace > 1:
        raise CorruptImageError(f"bad PNG header (colour type {colour}, {depth}-bit)")
    _check_png_chunks(data)
    return ImageInfo(width, height, _PNG_CHANNELS[colour], depth)


def _check_png_chunks(data: bytes) -> None:
    """Walk the chunks: lengths inside the file, every CRC right, IDAT present, IEND last."""
    view = memoryview(data)
    pos, n, seen_idat = 8, len(data), False
    while pos + 12 <= n:
        length = int.from_bytes(view[pos : pos + 4], "big")
        chunk_end = pos + 12 + length
        if chunk_end > n:
            raise CorruptImageError(f"corrupt PNG: chunk at byte {pos} runs past the end")
        kind = bytes(view[pos + 4 : pos + 8])
        (crc,) = struct.unpack(">I", view[chunk_end - 4 : chunk_end])
        if zlib.crc32(view[pos + 4 : chunk_end - 4]) != crc:
            raise CorruptImageError(f"corrupt PNG: CRC mismatch in the {kind!r} chunk at byte {pos}")
        seen_idat = seen_idat or kind == b"IDAT"
        if kind == b"IEND":
            if chunk_end != n or not seen_idat:
                raise CorruptImageError("corrupt PNG: IEND before the end or no image data")
            return
        pos = chunk_end
    raise CorruptImageError("corrupt PNG: chunks do not end with IEND")


# --------------------------------------------------------------------------------------------
# Pixels


def decode_rgb(data: bytes, encoding: str) -> NDArray[np.uint8]:
    """Decode JPEG/PNG bytes to an (H, W, 3) uint8 RGB array."""
    try:
        if encoding == "jpeg":
            img = imagecodecs.jpeg8_decode(data)
            if img.dtype == np.uint16:  # a 12-bit JPEG: scale 0..4095 to 0..255
                return to_rgb8((img >> 4).astype(np.uint8))
        elif encoding == "png":
            img = imagecodecs.png_decode(data)
        else:
            raise ValueError(f"cannot decode compressed format {encoding!r}")
    except (imagecodecs.Jpeg8Error, imagecodecs.PngError) as err:
        raise CorruptImageError(f"cannot decode {encoding}: {err}") from err
    return to_rgb8(np.asarray(img))


def to_rgb8(img: NDArray) -> NDArray[np.uint8]:
    """Bring a decoded image to (H, W, 3) uint8: grey is repeated, alpha dropped, 16-bit scaled."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise CorruptImageError(f"unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(img, 3, axis=2))
    return np.ascontiguousarray(img[:, :, :3])


def encode_jpeg(rgb: NDArray[np.uint8], quality: int) -> bytes:
    return bytes(imagecodecs.jpeg8_encode(rgb, level=quality))


def resize_rgb(rgb: NDArray[np.uint8], width: int, height: int) -> NDArray[np.uint8]:
    """Area-averaged resize (OpenCV), the usual choice for downscaling camera frames."""
    import cv2

    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    return np.asarray(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA), dtype=np.uint8)
