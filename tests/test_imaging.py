"""`imaging`: the JPEG structure check agrees with libjpeg, PNG CRCs, declared sizes, CheckedImage.

The JPEG check must accept what real encoders write (libjpeg-turbo, OpenCV, Pillow: baseline,
optimised, progressive, restart intervals, subsampling, grey, 12-bit, lossless, CMYK, EXIF,
Motion-JPEG without DHT) and must never accept bytes libjpeg then refuses: mutants of those files
are checked against `imagecodecs.jpeg8_decode`.
"""

from __future__ import annotations

import io
import pickle
import struct
import zlib

import cv2
import imagecodecs
import numpy as np
import pytest
from PIL import Image

from tests.bagfactory import hand_photos
from vidihand_ros.imaging import (
    MAX_PIXELS,
    CheckedImage,
    CorruptImageError,
    SizeLimits,
    SizeMismatchError,
    check_declared_size,
    check_image,
    checked_info,
    jpeg_info,
    png_info,
)


def _without_dht(jpeg: bytes) -> bytes:
    """The JPEG with its DHT segments removed: what UVC Motion-JPEG cameras send."""
    out, pos = bytearray(jpeg[:2]), 2
    while jpeg[pos + 1] != 0xDA:
        length = (jpeg[pos + 2] << 8) | jpeg[pos + 3]
        if jpeg[pos + 1] != 0xC4:
            out += jpeg[pos : pos + 2 + length]
        pos += 2 + length
    return bytes(out + jpeg[pos:])


def _pillow(rgb: np.ndarray, mode: str = "RGB", **options: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).convert(mode).save(out, "JPEG", **options)
    return out.getvalue()


@pytest.fixture(scope="module")
def encoded() -> dict[str, bytes]:
    """Real encoders' JPEGs of real photos, 640×480 and an odd 333×251."""
    rgb, odd = hand_photos(640, 480)[0], hand_photos(333, 251)[1]
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    grey = cv2.cvtColor(odd, cv2.COLOR_RGB2GRAY)

    def cv(image: np.ndarray, *params: int) -> bytes:
        return bytes(cv2.imencode(".jpg", image, list(params))[1].tobytes())

    baseline = bytes(imagecodecs.jpeg8_encode(rgb, level=90))
    return {
        "baseline": baseline,
        "optimised": bytes(imagecodecs.jpeg8_encode(rgb, level=90, optimize=True)),
        "4:4:4": bytes(imagecodecs.jpeg8_encode(rgb, level=90, subsampling="444")),
        "4:2:2": bytes(imagecodecs.jpeg8_encode(rgb, level=75, subsampling="422")),
        "odd size": bytes(imagecodecs.jpeg8_encode(odd, level=90)),
        "grey": bytes(imagecodecs.jpeg8_encode(grey, level=90)),
        "12-bit": bytes(imagecodecs.jpeg8_encode(odd.astype(np.uint16) * 16, level=90, bitspersample=12)),
        "lossless": bytes(imagecodecs.jpeg8_encode(odd, lossless=True, predictor=3)),
        "opencv": cv(bgr),
        "progressive": cv(bgr, cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
        "restarts": cv(bgr, cv2.IMWRITE_JPEG_RST_INTERVAL, 7),
        "restart every MCU": cv(odd[..., ::-1], cv2.IMWRITE_JPEG_RST_INTERVAL, 1),
        "progressive restarts": cv(grey, cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_RST_INTERVAL, 2),
        "4:1:1": cv(bgr, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411),
        "pillow progressive": _pillow(rgb, progressive=True, optimize=True),
        "pillow EXIF": _pillow(rgb, exif=Image.Exif()),
        "pillow CMYK": _pillow(rgb, "CMYK"),
        "Motion-JPEG (no DHT)": _without_dht(baseline),
    }


def test_what_real_encoders_write_is_accepted(encoded: dict[str, bytes]) -> None:
    for name, jpeg in encoded.items():
        decoded = np.asarray(imagecodecs.jpeg8_decode(jpeg))
        info = jpeg_info(jpeg)
        assert (info.height, info.width) == decoded.shape[:2], name
        assert info.channels == (decoded.shape[2] if decoded.ndim == 3 else 1), name


def test_standard_huffman_tables_only_for_sequential_files(encoded: dict[str, bytes]) -> None:
    """libjpeg-turbo supplies the standard tables to a sequential file without DHT, not to a
    progressive one: that one does not decode, so it must not pass."""
    progressive = _without_dht(encoded["progressive"])
    with pytest.raises(imagecodecs.Jpeg8Error):
        imagecodecs.jpeg8_decode(progressive)
    with pytest.raises(CorruptImageError, match="Huffman table 0, which is not defined"):
        jpeg_info(progressive)


def _mutants(jpeg: bytes, rng: np.random.Generator, count: int) -> list[bytes]:
    """Bit flips and overwritten bytes anywhere and in the headers, random runs, planted 0xFF
    pairs, truncations with an EOI appended, inserted and deleted bytes."""
    header_end = jpeg.find(b"\xff\xda") + 16
    out = []
    for i in range(count):
        data = bytearray(jpeg)
        n = len(data)
        kind = i % 7
        if kind == 0:
            data[int(rng.integers(2, n))] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            data[int(rng.integers(2, header_end))] = int(rng.integers(256))
        elif kind == 2:
            length = int(rng.integers(1, 65))
            pos = int(rng.integers(2, n - length))
            data[pos : pos + length] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
        elif kind == 3:
            pos = int(rng.integers(header_end, n - 2))
            data[pos : pos + 2] = bytes([0xFF, int(rng.integers(256))])
        elif kind == 4:
            data = data[: int(rng.integers(2, n - 2))] + b"\xff\xd9"
        elif kind == 5:
            data.insert(int(rng.integers(2, n)), int(rng.integers(256)))
        else:
            pos = int(rng.integers(2, n - 16))
            del data[pos : pos + int(rng.integers(1, 16))]
        out.append(bytes(data))
    return out


def test_no_accepted_mutant_fails_to_decode(encoded: dict[str, bytes]) -> None:
    """The soundness claim, tested against libjpeg itself on 40 mutants of each encoder's file
    (a longer run of 8400 mutants found none either)."""
    rng = np.random.default_rng(7)
    accepted = rejected = 0
    for name, jpeg in encoded.items():
        for mutant in _mutants(jpeg, rng, 40):
            try:
                jpeg_info(mutant)
            except CorruptImageError:
                rejected += 1
                continue
            accepted += 1
            imagecodecs.jpeg8_decode(mutant)  # must not raise: that is the claim
            assert mutant, name
    assert accepted > 0 and rejected > 0


def test_two_kilobytes_overwritten_mid_file_is_caught(encoded: dict[str, bytes]) -> None:
    """The field report: 2 KB of garbage in the middle of a frame made libjpeg say "Unsupported
    marker" only when the dataset was read back."""
    rng = np.random.default_rng(0)
    for name in ("baseline", "opencv", "restarts", "progressive"):
        data = bytearray(encoded[name])
        middle = len(data) // 2
        data[middle : middle + 2048] = rng.integers(0, 256, 2048, dtype=np.uint8).tobytes()
        with pytest.raises(CorruptImageError, match="corrupt JPEG"):
            jpeg_info(bytes(data))


def test_what_cannot_be_caught_without_decoding_is_what_libjpeg_decodes(encoded: dict[str, bytes]) -> None:
    """A flipped bit inside the Huffman-coded data that creates no marker: libjpeg decodes it
    (to different pixels, no error), and the check accepts it: a limit, documented in
    `imaging._check_jpeg`, that only the container's checksums (mcap chunk CRCs) cover."""
    jpeg = encoded["baseline"]
    data = bytearray(jpeg)
    pos = len(data) // 2
    while data[pos] in (0xFE, 0xFF) or data[pos - 1] == 0xFF:
        pos += 1
    data[pos] ^= 0x01
    damaged = bytes(data)
    assert jpeg_info(damaged) == jpeg_info(jpeg)
    before, after = imagecodecs.jpeg8_decode(jpeg), imagecodecs.jpeg8_decode(damaged)
    assert before.shape == after.shape and not np.array_equal(before, after)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda j: j[:-2], "truncated"),
        (lambda j: j + b"trailing", "truncated"),
        (lambda j: b"\xff\xd8\xff\xd9", "EOI before any image data"),
        (lambda j: j[:-2] + b"\xff\xd0\xff\xd9", "restart marker in a scan without a restart interval"),
        (lambda j: j[:-2] + b"\xff\xd9\x12\x34\xff\xd9", "EOI with 4 bytes after it"),
        (lambda j: j.replace(b"\xff\xc0", b"\xff\xc5", 1), "unsupported JPEG process"),
        (lambda j: j.replace(b"\xff\xda", b"\xff\xc0\x00\x11" + bytes(15) + b"\xff\xda", 1), "second frame"),
    ],
)
def test_broken_structure_names_the_problem(encoded: dict[str, bytes], damage, reason: str) -> None:
    with pytest.raises(CorruptImageError, match=reason):
        jpeg_info(damage(encoded["baseline"]))


def test_restart_markers_out_of_sequence_or_missing(encoded: dict[str, bytes]) -> None:
    jpeg = encoded["restarts"]
    first = jpeg.find(b"\xff\xd0", jpeg.find(b"\xff\xda"))
    swapped = bytearray(jpeg)
    swapped[first + 1] = 0xD3
    with pytest.raises(CorruptImageError, match="out of sequence"):
        jpeg_info(bytes(swapped))
    missing = bytearray(jpeg)
    missing[first : first + 2] = b"\x00\x00"
    with pytest.raises(CorruptImageError, match="restart markers in a scan that needs"):
        jpeg_info(bytes(missing))


def test_camera_padding_after_eoi_is_accepted_and_dropped(encoded: dict[str, bytes]) -> None:
    jpeg = encoded["baseline"]
    checked = check_image(np.frombuffer(jpeg + b"\x00" * 100 + b"\xff" * 7, np.uint8), "jpeg")
    assert bytes(checked) == jpeg and checked.info == jpeg_info(jpeg)


# --------------------------------------------------------------------------------------------
# Declared sizes


def _jpeg_declaring(jpeg: bytes, width: int, height: int) -> bytes:
    """A real JPEG whose frame header is rewritten to declare width×height (a forged header)."""
    sof = jpeg.find(b"\xff\xc0")
    data = bytearray(jpeg)
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def test_declared_size_limits() -> None:
    check_declared_size(8192, 8192)
    with pytest.raises(CorruptImageError, match="over the limit of 67108864"):
        check_declared_size(8192, 8193)
    with pytest.raises(CorruptImageError, match="over the limit of 100"):
        check_declared_size(11, 10, SizeLimits(max_pixels=100))
    with pytest.raises(SizeMismatchError, match="image is 32x24, not 64x48 as its CameraInfo"):
        check_declared_size(32, 24, SizeLimits(expected=(64, 48), expected_by="its CameraInfo"))
    with pytest.raises(CorruptImageError, match="bad image size"):
        check_declared_size(0, 10)
    assert MAX_PIXELS == 8192 * 8192


@pytest.mark.parametrize("side", [20000, 65500])
def test_a_forged_jpeg_size_is_refused_before_anything_else(encoded: dict[str, bytes], side: int) -> None:
    forged = _jpeg_declaring(encoded["baseline"], side, side)
    with pytest.raises(CorruptImageError, match=f"{side}x{side} = {side * side} pixels"):
        jpeg_info(forged)
    with pytest.raises(CorruptImageError, match="libjpeg's 65500"):
        jpeg_info(_jpeg_declaring(encoded["baseline"], 65535, 10), SizeLimits(max_pixels=10**12))


def _png_bomb(width: int, height: int) -> bytes:
    """A real PNG of width×height black RGB pixels: about 1 MB for 20000×20000, 1.2 GB decoded.

    Built fast: 100 rows deflated once, then repeated (each block ends with a full flush, which
    resets the compressor, so every block compresses to the same bytes); an all-zero stream's
    Adler-32 is known in closed form (A = 1, B = length mod 65521).
    """
    rows = 100
    assert height % rows == 0
    block = bytes((1 + 3 * width) * rows)  # each row: filter type 0, then zero samples
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    compressed = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    size = len(block) * (height // rows)
    adler = ((size % 65521) << 16) | 1
    idat = b"\x78\xda" + compressed * (height // rows) + deflate.flush() + struct.pack(">I", adler)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_the_png_bomb_is_a_real_png() -> None:
    """A small one decodes to the pixels it declares (the big one, 1.2 GB, is not decoded here)."""
    small = _png_bomb(50, 300)
    assert np.asarray(imagecodecs.png_decode(small)).shape == (300, 50, 3)
    assert png_info(small).width == 50


@pytest.fixture(scope="module")
def png_bomb() -> bytes:
    return _png_bomb(20000, 20000)


def test_a_png_bomb_is_refused_from_its_header(png_bomb: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(png_bomb) < 2_000_000

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("the PNG was decoded")

    monkeypatch.setattr(imagecodecs, "png_decode", no_decoding)
    with pytest.raises(CorruptImageError, match="20000x20000 = 400000000 pixels"):
        png_info(png_bomb)
    assert png_info(png_bomb, SizeLimits(max_pixels=400_000_000)).width == 20000  # header only


def test_png_chunk_crcs_are_checked() -> None:
    png = bytes(imagecodecs.png_encode(hand_photos(64, 48)[0]))
    assert png_info(png).channels == 3
    idat = png.find(b"IDAT")
    damaged = bytearray(png)
    damaged[idat + 20] ^= 0x40
    with pytest.raises(CorruptImageError, match="CRC mismatch in the b'IDAT' chunk"):
        png_info(bytes(damaged))
    with pytest.raises(CorruptImageError, match="truncated PNG"):
        png_info(png[:-20])


# --------------------------------------------------------------------------------------------
# CheckedImage


def test_checked_image_is_the_evidence_and_pickles_as_bytes(encoded: dict[str, bytes]) -> None:
    jpeg = encoded["baseline"]
    checked = check_image(jpeg, "jpeg")
    assert isinstance(checked, CheckedImage) and checked == jpeg
    assert checked_info(checked, "jpeg") is checked.info
    assert checked_info(jpeg, "jpeg") == checked.info  # plain bytes are checked now
    restored = pickle.loads(pickle.dumps(checked))
    assert type(restored) is bytes and restored == jpeg
    with pytest.raises(CorruptImageError):
        checked_info(jpeg[:-2], "jpeg")


def test_remembered_headers_skip_no_check(encoded: dict[str, bytes]) -> None:
    """Headers seen before are not walked again, but each call's size limits still apply and the
    entropy-coded data is still checked."""
    jpeg = encoded["baseline"]
    jpeg_info(jpeg)  # its headers are now known
    with pytest.raises(CorruptImageError, match="over the limit of 100"):
        jpeg_info(jpeg, SizeLimits(max_pixels=100))
    with pytest.raises(SizeMismatchError):
        jpeg_info(jpeg, SizeLimits(expected=(64, 48)))
    planted = bytearray(jpeg)
    planted[len(jpeg) // 2 : len(jpeg) // 2 + 2] = b"\xff\x57"
    with pytest.raises(CorruptImageError, match="unexpected marker 0x57 in the entropy-coded data"):
        jpeg_info(bytes(planted))
