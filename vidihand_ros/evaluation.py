"""`vidihand eval PRED GT`: score a predicted dataset against a ground-truth one, frame by frame.

Both are ordinary vidihand datasets; in GT the pose keys hold ground truth. A GT frame is matched
with the PRED frame of the same `stamp_ns` (exact integers: both come from the same source frames),
taken from the PRED episodes that share the most stamps with the GT episode, so PRED may split a
recording into episodes differently. A GT frame without a PRED frame counts as missed, for both
hands. Episodes are the unit of time for the temporal metrics (no difference spans two GT
episodes), and all metrics pool frames over every episode rather than averaging episode means.

A hand is *present in GT* when valid (its pose finite: `dataset.validity`; the reader narrows
masks of older layouts) and presence >= 0.5; it is *detected* by PRED when valid and presence >=
`presence_threshold`. The 3D metrics without "-p" score the frames where it is both; "-p" scores
every GT-present frame, a miss counting as the placeholder hand
(`vidihand_ros.metrics.placeholder`). Acc-Err and Jitter are reported per s² (× fps², fps from each
GT episode's stamps unless given) and per frame² in the JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vidihand_ros import metrics as m
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.schema import hand_key
from vidihand_ros.errors import DatasetError
from vidihand_ros.geometry.resize import scale_pixels
from vidihand_ros.types import HAND_SIDES

#: GT presence at or above this means the hand is there (GT presence is normally 0 or 1).
GT_PRESENCE_THRESHOLD = 0.5
_FIELDS = ("valid", "presence", "joints_3d", "keypoints_2d")
#: Table columns: (metric key, header, unit). Keys are also those of `EvaluationResult.as_dict`.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("mpjpe_p", "MPJPE-p", "mm"),
    ("pa_mpjpe_p", "PA-MPJPE-p", "mm"),
    ("mpjpe", "MPJPE", "mm"),
    ("pa_mpjpe", "PA-MPJPE", "mm"),
    ("mrrpe", "MRRPE", "mm"),
    ("accel_error", "Acc-Err", "mm/s²"),
    ("jitter", "Jitter", "mm/s²"),
    ("facc", "FAcc", "%"),
    ("epe_2d", "2D EPE", "px"),
    ("ct", "CT", "mm"),
    ("mpjpe19", "MPJPE-19", "mm"),
    ("pck_auc", "PCK-AUC", "0-1"),
)
#: Units of every metric key (the per-frame² variants are in the JSON only).
UNITS: dict[str, str] = {
    **{key: unit for key, _, unit in COLUMNS},
    "facc": "fraction",
    "accel_error_frame": "mm/frame²",
    "jitter_frame": "mm/frame²",
}
ROWS = (*HAND_SIDES, "both")

Arrays = dict[str, NDArray[Any]]


@dataclass
class EvaluationResult:
    """Metrics per row ("left", "right", "both": pooled over both hands' frames) and frame counts."""

    metrics: dict[str, dict[str, float]]
    counts: dict[str, dict[str, int]]
    gt_frames: int
    matched_frames: int
    gt_episodes: int
    matched_episodes: int
    fps: float | None
    presence_threshold: float
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN becomes None."""

        def clean(v: float) -> float | None:
            return None if math.isnan(v) else v

        return {
            "metrics": {row: {k: clean(v) for k, v in vals.items()} for row, vals in self.metrics.items()},
            "units": dict(UNITS),
            "counts": self.counts,
            "gt_frames": self.gt_frames,
            "matched_frames": self.matched_frames,
            "gt_episodes": self.gt_episodes,
            "matched_episodes": self.matched_episodes,
            "fps": self.fps,
            "presence_threshold": self.presence_threshold,
            "notes": list(self.notes),
        }


class _Pool:
    """Per-frame values of every (row, metric), concatenated over episodes, then averaged."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], list[NDArray[np.float64]]] = {}

    def add(self, side: str, key: str, values: NDArray[Any]) -> None:
        for row in (side, "both") if side != "both" else ("both",):
            self.values.setdefault((row, key), []).append(np.asarray(values, dtype=np.float64).ravel())

    def get(self, row: str, key: str) -> NDArray[np.float64]:
        parts = self.values.get((row, key), [])
        return np.concatenate(parts) if parts else np.zeros(0)

    def mean(self, row: str, key: str) -> float:
        v = self.get(row, key)
        v = v[np.isfinite(v)]
        return float(v.mean()) if v.size else float("nan")


def evaluate(
    pred: DatasetReader | str | Path,
    gt: DatasetReader | str | Path,
    *,
    fps: float | None = None,
    presence_threshold: float = 0.5,
    placeholders: Mapping[str, NDArray[np.floating]] | None = None,
) -> EvaluationResult:
    """Score `pred` against `gt` (readers or dataset paths); see the module docstring.

    `fps` overrides the frame rate used for the per-s² temporal metrics; `placeholders` maps "left"
    / "right" to (21, 3) hands in metres for the "-p" metrics (default `metrics.placeholder`).
    """
    pred_r = pred if isinstance(pred, DatasetReader) else DatasetReader(pred)
    gt_r = gt if isinstance(gt, DatasetReader) else DatasetReader(gt)
    templates = {s: m.placeholder(s) for s in HAND_SIDES}
    templates.update({s: np.asarray(t, dtype=np.float64) for s, t in (placeholders or {}).items()})
    keys = ["stamp_ns", *(hand_key(s, f) for s in HAND_SIDES for f in _FIELDS)]
    for reader in (pred_r, gt_r):
        missing = [k for k in keys if k not in reader.keys]
        if missing:
            raise DatasetError(
                f"dataset lacks data/ keys needed for evaluation: {missing}", source=reader.path
            )
    kp_scale, notes = _keypoint_scale(pred_r, gt_r)
    pred_stamps = [pred_r.episode(j, ["stamp_ns"])["stamp_ns"] for j in range(pred_r.num_episodes)]

    pool = _Pool()
    counts = {
        row: dict.fromkeys(("gt_present", "detected", "scored", "missed", "false_positive"), 0)
        for row in ROWS
    }
    gt_frames = matched_frames = matched_episodes = 0
    for i in range(gt_r.num_episodes):
        g = gt_r.episode(i, keys)
        p, matched = _matched_prediction(pred_r, pred_stamps, g["stamp_ns"], keys, preferred=i)
        gt_frames += len(matched)
        matched_frames += int(matched.sum())
        matched_episodes += bool(matched.any())
        ep_fps = fps if fps is not None else gt_r.fps(i)
        hands = {}
        for side in HAND_SIDES:
            hands[side] = _score_hand(pool, side, g, p, presence_threshold, ep_fps, kp_scale, templates[side])
            for k, v in hands[side].items():
                counts[side][k] += int(np.sum(v))
                counts["both"][k] += int(np.sum(v))
        both = hands["left"]["scored"] & hands["right"]["scored"]
        pl, pr, gl, gr = (d[hand_key(s, "joints_3d")] for d in (p, g) for s in HAND_SIDES)
        pool.add("both", "mrrpe", m.mrrpe_per_frame(pl, pr, gl, gr, both))

    metrics = {row: {key: pool.mean(row, key) for key in UNITS} for row in ROWS}
    for row in ROWS:
        metrics[row]["pck_auc"] = m.pck_auc(pool.get(row, "hot3d_errors"))
    for side in HAND_SIDES:
        metrics[side]["mrrpe"] = float("nan")  # a two-hand quantity
    return EvaluationResult(
        metrics,
        counts,
        gt_frames,
        matched_frames,
        gt_r.num_episodes,
        matched_episodes,
        fps,
        presence_threshold,
        notes,
    )


def _keypoint_scale(pred: DatasetReader, gt: DatasetReader) -> tuple[tuple[float, float] | None, list[str]]:
    """(sx, sy) taking PRED's image pixels to GT's, when the stored image sizes differ."""
    ps, gs = pred.attrs.get("image_size"), gt.attrs.get("image_size")
    if not ps or not gs or list(ps) == list(gs):
        return None, []
    scale = (gs[0] / ps[0], gs[1] / ps[1])
    return scale, [f"PRED images are {ps[0]}x{ps[1]}, GT {gs[0]}x{gs[1]}: 2D keypoints rescaled to GT"]


def _matched_prediction(
    pred: DatasetReader,
    pred_stamps: list[NDArray[np.int64]],
    stamps: NDArray[np.int64],
    keys: list[str],
    preferred: int,
) -> tuple[Arrays, NDArray[np.bool_]]:
    """PRED rows for each GT stamp (missing: invalid, NaN), from the best-overlapping episodes first.

    Among equally overlapping PRED episodes the one at the GT episode's own index (`preferred`)
    wins: sequences imported from video often all start at stamp 0, so stamps alone are ambiguous.
    """
    n = len(stamps)
    out: Arrays = {}
    for key in keys:
        spec = pred.array(key)
        if key == "stamp_ns":
            out[key] = stamps.copy()
        elif spec.dtype == np.bool_:
            out[key] = np.zeros((n, *spec.shape[1:]), dtype=bool)
        else:
            out[key] = np.full((n, *spec.shape[1:]), np.nan, dtype=np.float64)
    matched = np.zeros(n, dtype=bool)
    overlaps = [int(np.isin(stamps, s).sum()) for s in pred_stamps]
    for j in sorted(range(len(overlaps)), key=lambda j: (-overlaps[j], j != preferred)):
        if overlaps[j] == 0 or matched.all():
            break
        order = np.argsort(pred_stamps[j], kind="stable")
        sorted_stamps = pred_stamps[j][order]
        pos = np.clip(np.searchsorted(sorted_stamps, stamps), 0, len(sorted_stamps) - 1)
        hit = (sorted_stamps[pos] == stamps) & ~matched
        if not hit.any():
            continue
        rows = order[pos[hit]]
        ep = pred.episode(j, keys[1:])
        for key in keys[1:]:
            out[key][hit] = ep[key][rows]
        matched |= hit
    return out, matched


def _score_hand(
    pool: _Pool,
    side: str,
    g: Arrays,
    p: Arrays,
    threshold: float,
    fps: float,
    kp_scale: tuple[float, float] | None,
    template: NDArray[np.float64],
) -> dict[str, NDArray[np.bool_]]:
    """Add one hand's per-frame values of one episode to `pool`; returns its frame masks."""
    gj, pj = g[hand_key(side, "joints_3d")], p[hand_key(side, "joints_3d")]
    gk, pk = g[hand_key(side, "keypoints_2d")], p[hand_key(side, "keypoints_2d")]
    if kp_scale is not None:
        pk = scale_pixels(pk, *kp_scale)
    with np.errstate(invalid="ignore"):  # valid rows have finite joints and keypoints
        present = g[hand_key(side, "valid")] & (g[hand_key(side, "presence")] >= GT_PRESENCE_THRESHOLD)
        detected = p[hand_key(side, "valid")] & (p[hand_key(side, "presence")] >= threshold)
    scored = present & detected
    filled = m.fill_missed(pj, present, detected, template)
    pool.add(side, "mpjpe_p", m.mpjpe_per_frame(filled, gj, present))
    pool.add(side, "pa_mpjpe_p", m.pa_mpjpe_per_frame(filled, gj, present))
    pool.add(side, "mpjpe", m.mpjpe_per_frame(pj, gj, scored))
    pool.add(side, "pa_mpjpe", m.pa_mpjpe_per_frame(pj, gj, scored))
    pool.add(side, "accel_error", m.accel_error_per_frame(pj, gj, fps, scored))
    pool.add(side, "accel_error_frame", m.accel_error_per_frame(pj, gj, None, scored))
    pool.add(side, "jitter", m.jitter_per_frame(pj, fps, detected))
    pool.add(side, "jitter_frame", m.jitter_per_frame(pj, None, detected))
    pool.add(side, "facc", (detected == present).astype(np.float64))
    pool.add(side, "epe_2d", m.epe_2d_per_frame(pk, gk, scored))
    pool.add(side, "ct", m.translation_error_per_frame(pj[:, 0], gj[:, 0], scored))
    pool.add(side, "mpjpe19", m.hot3d_mpjpe_per_frame(pj, gj, scored))
    joints = list(m.HOT3D_JOINTS)
    pool.add(side, "hot3d_errors", m.joint_errors(pj[:, joints], gj[:, joints], scored))
    return {
        "gt_present": present,
        "detected": detected,
        "scored": scored,
        "missed": present & ~scored,
        "false_positive": detected & ~present,
    }


def format_table(result: EvaluationResult) -> str:
    """The paper's table: one line per hand and one pooled over both, a header with units."""

    def cell(key: str, value: float) -> str:
        if math.isnan(value):
            return "-"
        if key == "facc":
            return f"{100 * value:.1f}"
        return f"{value:.3f}" if key == "pck_auc" else f"{value:.1f}"

    headers = [("", "")] + [(h, f"[{u}]") for _, h, u in COLUMNS]
    body = [[row] + [cell(k, result.metrics[row][k]) for k, _, _ in COLUMNS] for row in ROWS]
    widths = [max(len(h), len(u), *(len(r[c]) for r in body)) for c, (h, u) in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cells[0].ljust(widths[0]) if c == 0 else s.rjust(widths[c]) for c, s in enumerate(cells)
        ).rstrip()

    lines = [line([h for h, _ in headers]), line([u for _, u in headers])]
    lines += [line(r) for r in body]
    fps = f"{result.fps:g} fps" if result.fps is not None else "fps from GT stamps"
    lines.append("")
    lines.append(
        f"GT frames {result.gt_frames} in {result.gt_episodes} episodes; matched in PRED "
        f"{result.matched_frames} ({result.matched_episodes} episodes); presence >= "
        f"{result.presence_threshold:g}; Acc-Err/Jitter at {fps}"
    )
    for side in HAND_SIDES:
        c = result.counts[side]
        lines.append(
            f"{side}: present {c['gt_present']}, scored {c['scored']}, missed {c['missed']}, "
            f"false positives {c['false_positive']}"
        )
    lines += result.notes
    return "\n".join(lines)


def run_eval(
    pred_path: str | Path,
    gt_path: str | Path,
    json_out: bool = False,
    fps: float | None = None,
    presence_threshold: float = 0.5,
) -> int:
    """CLI body of `vidihand eval PRED GT [--json] [--fps FPS]`: print the table (or JSON); 0 on success."""
    result = evaluate(pred_path, gt_path, fps=fps, presence_threshold=presence_threshold)
    if json_out:
        print(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    else:
        print(format_table(result))
    return 0
