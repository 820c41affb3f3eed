"""Hand tracking: stable left/right identities from noisy per-frame handedness labels."""

from __future__ import annotations

import numpy as np
import pytest

from tests.synthetic_hands import hand_template
from vidihand_ros.estimators.mediapipe.tracking import Detection, HandTracker

#: 2D keypoint shapes (pixels, wrist at 0) of a right hand and its mirror image, the left hand.
RIGHT_SHAPE = hand_template()[:, :2] * 900.0
LEFT_SHAPE = RIGHT_SHAPE * [-1.0, 1.0]


def _detection(side: str, centre: np.ndarray, label: str, score: float, mirror: bool = True) -> Detection:
    shape = LEFT_SHAPE if side == "left" and mirror else RIGHT_SHAPE
    return Detection(keypoints_2d=shape + centre, handedness=label, score=score, presence=0.95, payload=side)


def _run(
    tracker: HandTracker,
    centres: dict[str, np.ndarray],
    rng: np.random.Generator,
    flip: float = 0.2,
    same_label_frames: tuple[int, ...] = (),
    mirror: bool = True,
) -> list[dict[str, str]]:
    """Feed each hand (true side → (T, 2) centre track, NaN = absent); return side → true side per frame."""
    frames = len(next(iter(centres.values())))
    out = []
    for k in range(frames):
        dets = []
        for side, track in centres.items():
            if np.isnan(track[k]).any():
                continue
            label = side if rng.random() >= flip else ("left" if side == "right" else "right")
            if k in same_label_frames:
                label = "right"
            dets.append(_detection(side, track[k], label, float(rng.uniform(0.5, 1.0)), mirror))
        dets = [dets[i] for i in rng.permutation(len(dets))]  # detector order means nothing
        out.append({side: str(det.payload) for side, det in tracker.update(dets).items()})
    return out


def _swaps(result: list[dict[str, str]], start: int) -> int:
    """Frames from `start` on where a reported side is not the hand's true side."""
    return sum(side != true for frame in result[start:] for side, true in frame.items())


def _smooth_path(frames: int, start: tuple[float, float], amplitude: float, phase: float) -> np.ndarray:
    k = np.arange(frames)[:, None]
    return np.asarray(start) + amplitude * np.hstack(
        [np.sin(2 * np.pi * k / 90 + phase), 0.6 * np.sin(2 * np.pi * k / 70 + 2 * phase)]
    )


def test_label_noise_never_swaps_two_hands() -> None:
    rng = np.random.default_rng(0)
    frames = 400
    centres = {
        "left": _smooth_path(frames, (200.0, 330.0), 60.0, 0.0),
        "right": _smooth_path(frames, (460.0, 330.0), 60.0, 1.5),
    }
    both_right = tuple(range(100, 400, 37))  # now and then the detector calls both hands 'right'
    result = _run(HandTracker(), centres, rng, flip=0.2, same_label_frames=both_right)
    assert all(len(frame) == 2 for frame in result)
    assert _swaps(result, start=5) == 0


def test_raw_labels_would_swap_often() -> None:
    """Control: a 'tracker' that believes each label swaps sides in ~20% of frames."""
    rng = np.random.default_rng(0)
    centres = {"left": _smooth_path(200, (200.0, 330.0), 60.0, 0.0)}
    tracker = HandTracker(vote_window=1)
    result = _run(tracker, centres, rng, flip=0.2)
    assert _swaps(result, start=5) > 20


def test_crossing_hands_keep_their_identity() -> None:
    """Two identical-looking hands pass through each other: only their motion tells them apart."""
    rng = np.random.default_rng(1)
    frames = 120
    s = (1 - np.cos(np.linspace(0, np.pi, frames)))[:, None] / 2  # smooth 0 → 1
    left = np.hstack([150 + 340 * s, np.full((frames, 1), 300.0)])
    right = np.hstack([490 - 340 * s, np.full((frames, 1), 300.0)])
    result = _run(HandTracker(), {"left": left, "right": right}, rng, flip=0.2, mirror=False)
    assert _swaps(result, start=5) == 0
    # At the end the left hand is on the image's right: identity, not position, decided its side.
    assert left[-1, 0] > right[-1, 0]


def test_a_new_hand_gets_its_own_vote() -> None:
    """A right hand leaves; later a left hand enters at the same place and must not inherit 'right'."""
    rng = np.random.default_rng(2)
    frames = 80
    right = np.full((frames, 2), [400.0, 300.0])
    right[30:] = np.nan
    left = np.full((frames, 2), [400.0, 300.0])
    left[:40] = np.nan
    tracker = HandTracker(max_missed=5)
    result = _run(tracker, {"right": right, "left": left}, rng, flip=0.0)
    assert all(frame == {"right": "right"} for frame in result[:30])
    assert all(frame == {} for frame in result[30:40])
    assert all(frame == {"left": "left"} for frame in result[40:])


def test_a_short_dropout_keeps_the_track_and_its_votes() -> None:
    rng = np.random.default_rng(3)
    frames = 60
    right = _smooth_path(frames, (400.0, 300.0), 40.0, 0.0)
    right[30:33] = np.nan  # missed for 3 frames (< max_missed)
    tracker = HandTracker(max_missed=5)
    _run(tracker, {"right": right[:40]}, rng, flip=0.0)
    # Right after the dropout, a confidently wrong label cannot flip an established hand.
    det = _detection("right", right[40], "left", 1.0)
    assert tracker.update([det]) == {"right": det}


@pytest.mark.parametrize("seed", range(5))
def test_one_hand_with_label_noise(seed: int) -> None:
    rng = np.random.default_rng(seed)
    centres = {"left": _smooth_path(1000, (300.0, 300.0), 80.0, 0.3)}
    result = _run(HandTracker(), centres, rng, flip=0.2)
    assert all(len(frame) == 1 for frame in result)
    assert _swaps(result, start=5) == 0


def test_a_hand_whose_labels_really_change_follows_them() -> None:
    """Votes decide in the end: a track consistently labelled the other side switches within the window."""
    tracker = HandTracker(vote_window=15)
    centre = np.array([300.0, 300.0])
    for _ in range(15):
        tracker.update([_detection("right", centre, "right", 0.9)])
    sides = [next(iter(tracker.update([_detection("right", centre, "left", 0.9)]))) for _ in range(15)]
    # It takes 12 contrary votes of 15 (80% of the window's weight): 11 do nothing.
    assert sides == ["right"] * 11 + ["left"] * 4


def test_two_hands_never_share_a_side_and_the_stronger_vote_wins() -> None:
    tracker = HandTracker()
    a, b = np.array([200.0, 300.0]), np.array([450.0, 300.0])
    for _ in range(10):
        tracker.update([_detection("right", a, "right", 0.9)])
    # A second hand appears, also labelled 'right' (confidently), for several frames.
    for _ in range(5):
        out = tracker.update([_detection("right", a, "right", 0.9), _detection("left", b, "right", 1.0)])
        assert sorted(out) == ["left", "right"]
        assert out["right"].keypoints_2d[0, 0] == pytest.approx(200.0)  # the established hand keeps it


def test_payload_is_passed_through_untouched() -> None:
    payload = {"world_landmarks": np.zeros((21, 3))}
    det = Detection(RIGHT_SHAPE + 300.0, "right", 0.9, 0.8, payload=payload)
    assert HandTracker().update([det])["right"].payload is payload


def test_a_jump_beyond_the_gate_starts_a_new_track() -> None:
    tracker = HandTracker(max_match_px=50.0, vote_window=15)
    for _ in range(10):
        tracker.update([_detection("right", np.array([100.0, 300.0]), "right", 0.9)])
    # A far jump is not the same hand: its single 'left' vote decides (no inherited 'right' votes).
    out = tracker.update([_detection("left", np.array([500.0, 300.0]), "left", 0.6)])
    assert list(out) == ["left"]


def test_more_than_two_detections_report_the_two_most_present() -> None:
    dets = [
        Detection(RIGHT_SHAPE + np.array([100.0 + 200 * i, 300.0]), "right" if i % 2 else "left", 0.9, p)
        for i, p in enumerate([0.9, 0.2, 0.8])
    ]
    out = HandTracker().update(dets)
    assert sorted(d.presence for d in out.values()) == [0.8, 0.9]


def test_reset_forgets_tracks() -> None:
    tracker = HandTracker()
    centre = np.array([300.0, 300.0])
    for _ in range(15):
        tracker.update([_detection("right", centre, "right", 0.9)])
    tracker.reset()
    assert list(tracker.update([_detection("right", centre, "left", 0.6)])) == ["left"]


def test_bad_handedness_label() -> None:
    with pytest.raises(ValueError, match="handedness"):
        Detection(RIGHT_SHAPE, "Left", 0.9, 0.9)


# --- head turns, duplicates, entry side -------------------------------------------------------------


def _head_turn(frames: int, at: int, step_px: float, turn_frames: int = 4) -> np.ndarray:
    """(T, 2) image shift of everything in view: `step_px` per frame during a head turn at `at`."""
    shift = np.zeros((frames, 2))
    for k in range(turn_frames):
        shift[at + k :, 0] += step_px
    return shift


def _head_turn_with_wrong_labels(tracker: HandTracker) -> list[dict[str, str]]:
    """Both hands jump 220 px a frame for 4 frames (beyond the 150 px gate) while the detector
    swaps their labels for 6 frames; returns side → true side per frame."""
    frames = 200
    turn = _head_turn(frames, at=100, step_px=-220.0)
    centres = {
        "left": _smooth_path(frames, (900.0, 330.0), 30.0, 0.0) + turn,
        "right": _smooth_path(frames, (1200.0, 330.0), 30.0, 1.5) + turn,
    }
    out = []
    for k in range(frames):
        wrong = 100 <= k < 106
        dets = [
            _detection(side, track[k], ("right" if side == "left" else "left") if wrong else side, 0.95)
            for side, track in centres.items()
        ]
        found = tracker.update(dets, image_size=(1600, 900))
        out.append({side: str(det.payload) for side, det in found.items()})
    return out


def test_a_head_turn_with_wrong_labels_keeps_both_sides() -> None:
    out = _head_turn_with_wrong_labels(HandTracker(view="egocentric"))
    assert all(len(frame) == 2 for frame in out)
    assert _swaps(out, start=0) == 0


def test_control_without_common_motion_a_head_turn_swaps_sides() -> None:
    """Control for the test above: with the shifted matching disabled, the same turn swaps the hands."""
    assert _swaps(_head_turn_with_wrong_labels(HandTracker(view="egocentric", max_shift_px=0.0)), start=0) > 0


def test_a_hand_lost_during_a_head_turn_keeps_its_side() -> None:
    """The left hand vanishes for 3 frames while the head turns; it comes back 500 px away, mislabelled."""
    rng = np.random.default_rng(5)
    frames = 120
    turn = _head_turn(frames, at=60, step_px=-125.0)
    left = _smooth_path(frames, (700.0, 400.0), 20.0, 0.0) + turn
    right = _smooth_path(frames, (1000.0, 400.0), 20.0, 1.0) + turn
    left[60:63] = np.nan
    tracker = HandTracker(view="egocentric")
    out = []
    for k in range(frames):
        dets = [_detection("right", right[k], "right", 0.95)]
        if np.isfinite(left[k]).all():
            dets.append(_detection("left", left[k], "right" if 63 <= k < 66 else "left", 0.95))
        dets = [dets[i] for i in rng.permutation(len(dets))]
        out.append(
            {side: str(det.payload) for side, det in tracker.update(dets, image_size=(1600, 900)).items()}
        )
    assert _swaps(out, start=0) == 0
    assert all(frame.get("left") == "left" for frame in out[63:])


def test_one_hand_reported_twice_is_one_hand() -> None:
    """MediaPipe now and then reports one hand twice: the copy must not become the other side."""
    tracker = HandTracker()
    centre = np.array([400.0, 300.0])
    for _ in range(20):
        tracker.update([_detection("right", centre, "right", 0.95)])
    copy = _detection("right", centre + 6.0, "right", 0.9)
    out = tracker.update([_detection("right", centre, "right", 0.95), copy])
    assert list(out) == ["right"] and out["right"].score == 0.95


@pytest.mark.parametrize(("view", "expected"), [("egocentric", "left"), ("exocentric", "right")])
def test_a_new_hand_at_the_edge_takes_its_entry_side_despite_wrong_first_labels(
    view: str, expected: str
) -> None:
    """A hand comes in at the image's left edge; the detector calls it 'right', then 'left', for its
    first frames. On a head camera that is a left hand from its first frame; facing a person, a right
    hand (the first labels agree then)."""
    tracker = HandTracker(view=view)  # type: ignore[arg-type]
    sides = []
    for k in range(30):
        centre = np.array([40.0 + 4 * k, 500.0])
        if view == "egocentric":
            label = "right" if k < 2 else "left"
        else:
            label = "right" if k < 2 or k % 3 else "left"
        out = tracker.update([_detection("left", centre, label, 0.95)], image_size=(1280, 720))
        sides += list(out)
    assert sides == [expected] * 30


def test_no_entry_vote_without_an_image_size_or_with_view_any() -> None:
    for tracker, size in ((HandTracker(view="egocentric"), None), (HandTracker(view="any"), (1280, 720))):
        out = tracker.update([_detection("left", np.array([40.0, 500.0]), "right", 0.95)], image_size=size)
        assert list(out) == ["right"]
