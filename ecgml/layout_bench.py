"""The page-reading benchmark: per-lead scores on each lead's own plotted window, whether every lead was
placed right, and how well the lead confidence predicts a usable lead (a reliability table).

A lead's truth is every sample the page plots of it (NaN elsewhere); its score is the competition's
SNR (`ecgml.metric`: lag within 0.2 s, offset removed) over those samples. A lead counts as placed
right when its SNR is at least `OK_DB`: the wrong lead, the wrong time window or an inverted page give
SNRs near or below 0 dB. A lead the digitizer calls absent scores as zeros (a flat line, 0 dB).
"""

from __future__ import annotations

import csv
import fnmatch
import gzip
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecgml.metric import MAX_TIME_SHIFT, align_signals
from ecgml.records import LEADS
from ecgml.verdict import CONFIDENT, LAYOUT_KINDS, PAGE_FEATURES

OK_DB = 3.0  # a lead at or above this SNR is the right lead in the right window, traced usably
BINS = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0001)
# the leads of a page are right or wrong together (a layout, row order or page position read wrong moves
# every lead of the page), so a bin's observed share is as uncertain as its pages are few: validation
# (session 19), the 45 leads at 0.4-0.6 come from 18 pages, and their observed - predicted is -8 points
# with 90 % of page resamples between -27 and +15; resampling leads instead would say about +-12
RESAMPLES = 400


def lead_snr_db(truth: np.ndarray, pred: np.ndarray, fs: int) -> float:
    """SNR (dB) of `pred` against `truth` over the samples where `truth` is finite (pred NaN -> 0)."""
    ok = np.isfinite(truth)
    if ok.sum() < 2:
        return float("nan")
    idx = np.flatnonzero(ok)
    seg = slice(idx[0], idx[-1] + 1)
    t = np.nan_to_num(truth[seg])
    p = np.nan_to_num(np.asarray(pred[seg], dtype=np.float64))
    aligned = align_signals(t, p, int(fs * MAX_TIME_SHIFT))
    aligned = np.where(np.isfinite(aligned), aligned, 0.0)
    sig, noise = float(np.sum((t - t.mean()) ** 2 + t.mean() ** 2)), float(np.sum((t - aligned) ** 2))
    if float(np.ptp(t)) < 1e-6:
        return float("nan")  # a flat (lead-off) channel: nothing to place
    if noise <= 0:
        return 99.0
    return float(np.clip(10 * math.log10(sig / noise), -99, 99))


@dataclass
class PageResult:
    name: str
    family: str
    lead_db: dict[str, float]
    lead_conf: dict[str, float]
    lead_status: dict[str, str]
    verdict: str
    orientation_ok: bool | None
    seconds: float
    error: str = ""
    notes: list[str] = field(default_factory=list)
    parts: dict[str, dict[str, float]] = field(default_factory=dict)  # confidence evidence per lead
    layout: str = ""
    solver: dict[str, Any] = field(default_factory=dict)  # the layout solver's family evidence
    read_s: float = float("nan")  # page reading's own seconds (`seconds["layout_solve"]`; issue 14: <= 0.5 s)

    @property
    def all_placed(self) -> bool:
        vals = [v for v in self.lead_db.values() if np.isfinite(v)]
        return not self.error and bool(vals) and all(v >= OK_DB for v in vals)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "family": self.family, "lead_db": self.lead_db, "lead_conf": self.lead_conf,
            "lead_status": self.lead_status, "verdict": self.verdict, "orientation_ok": self.orientation_ok,
            "seconds": self.seconds, "error": self.error, "notes": self.notes, "parts": self.parts,
            "layout": self.layout, "solver": self.solver, "read_s": self.read_s,
        }  # fmt: skip


def score_page(
    name: str, family: str, truth: np.ndarray, result: Any, seconds: float, orientation_ok: bool | None = None
) -> PageResult:
    """Per-lead SNR of a `DigitizeResult` against a (n, 12) truth with NaN where the page shows nothing."""
    rec = result.record
    n = min(truth.shape[0], rec.signal.shape[0])
    dbs, confs, stats = {}, {}, {}
    for j, lead in enumerate(LEADS):
        if not np.isfinite(truth[:n, j]).any():
            continue
        dbs[lead] = lead_snr_db(truth[:n, j], rec.signal[:n, j], rec.fs)
        confs[lead] = float(result.confidence.get(lead, 0.0))
        stats[lead] = str(getattr(result, "status", {}).get(lead, "read"))
    rep = getattr(result, "report", None)
    parts = {k: v for k, v in (rep.parts if rep is not None else {}).items() if k in dbs}
    return PageResult(
        name, family, dbs, confs, stats, str(getattr(result, "verdict", "")), orientation_ok, seconds,
        notes=list(result.notes), parts=parts, layout=result.geometry.layout.name,
        solver=dict(getattr(result, "evidence", {}).get("family", {})),
        read_s=float(getattr(result, "seconds", {}).get("layout_solve", float("nan"))),
    )  # fmt: skip


def failed_page(name: str, family: str, truth: np.ndarray, error: str, seconds: float) -> PageResult:
    leads = [lead for j, lead in enumerate(LEADS) if np.isfinite(truth[:, j]).any()]
    return PageResult(
        name, family, {lead: 0.0 for lead in leads}, {lead: 0.0 for lead in leads},
        {lead: "absent" for lead in leads}, "refused", None, seconds, error,
    )  # fmt: skip


# ------------------------------------------------------------------------------------ outside pages


def outside_pages(folder: str | Path) -> list[tuple[str, str, Path, np.ndarray]]:
    """(name, family, png, truth (5000, 12) at 500 Hz) of the outside generator's reference pages."""
    folder = Path(folder)
    out = []
    with open(folder / "index.csv") as f:
        for row in csv.DictReader(f):
            name = row["name"]
            fam = row["layout"] + ("+" + row["rhythm_lead"] if row["rhythm_lead"] not in ("", "None") else "")
            truth = np.genfromtxt(folder / "truth" / f"{name}.csv", delimiter=",", names=True)
            arr = np.stack([truth[lead].astype(np.float64) for lead in LEADS], axis=1)
            out.append((name, fam, folder / "pages" / f"{name}.png", arr))
    return out


def web_copy(png: Path, out_dir: Path, width: int, jpeg_quality: int) -> Path:
    """`png` as a small web copy: downscaled (area-averaged) to `width` px and JPEG-encoded.

    Why: most real ECG pages reach users as 600-1400 px JPEGs (about 2.5-5 px/mm on Letter paper), and
    the outside generator's pages are the only ones whose truth we did not draw; degraded, they check
    the reader at the resolution the world actually sends."""
    import cv2

    img = cv2.imread(str(png), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{png}: not a readable image")
    h, w = img.shape[:2]
    if width <= 0 or width > w:
        raise ValueError(f"{png}: web-copy width {width} must be in 1..{w}")
    small = cv2.resize(img, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{png.stem}-w{width}-q{jpeg_quality}.jpg"
    if not cv2.imwrite(str(out), small, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]):
        raise ValueError(f"{out}: could not be written")
    return out


def outside_config(folder: str | Path, name: str) -> dict[str, Any]:
    with gzip.open(Path(folder) / "pages" / f"{name}.json.gz") as f:
        return dict(json.load(f))


# ---------------------------------------------------------------------------------------- summaries


def family_summary(pages: list[PageResult]) -> dict[str, dict[str, float]]:
    """Per family: pages, share with every lead placed right, orientation accuracy, mean-ratio score (dB),
    share of confidently wrong leads (confidence >= 0.8 and SNR < 3 dB)."""
    out: dict[str, dict[str, float]] = {}
    fams = sorted({p.family for p in pages})
    for fam in fams + ["all"]:
        ps = [p for p in pages if fam in ("all", p.family)]
        dbs = [v for p in ps for v in p.lead_db.values() if np.isfinite(v)]
        conf_wrong = [
            p.lead_conf[k] >= CONFIDENT and v < OK_DB
            for p in ps
            for k, v in p.lead_db.items()
            if np.isfinite(v)
        ]
        oris = [p.orientation_ok for p in ps if p.orientation_ok is not None]
        ratios = [min(10 ** (v / 10), 384.0) for v in dbs]
        out[fam] = {
            "pages": len(ps),
            "all_placed": float(np.mean([p.all_placed for p in ps])) if ps else float("nan"),
            "orientation": float(np.mean(oris)) if oris else float("nan"),
            "score_db": 10 * math.log10(max(float(np.mean(ratios)), 1e-30)) if ratios else float("nan"),
            "median_lead_db": float(np.median(dbs)) if dbs else float("nan"),
            "confidently_wrong": float(np.mean(conf_wrong)) if conf_wrong else float("nan"),
            "refused": float(np.mean([bool(p.error) for p in ps])) if ps else float("nan"),
            "median_s": float(np.median([p.seconds for p in ps])) if ps else float("nan"),
            "read_s": _median_finite([p.read_s for p in ps]),
        }
    return out


def reliability(
    pages: list[PageResult], bins: tuple[float, ...] = BINS, resamples: int = RESAMPLES, seed: int = 0
) -> list[dict[str, float]]:
    """Per confidence bin: leads, pages, mean predicted confidence, observed share with SNR >= OK_DB, and
    `gap_lo`, `gap_hi`: the central 90 % of observed - predicted over `resamples` resamples of the pages
    (NaN without any; `bootstrap_pages`)."""
    counts = _bin_counts(pages, bins)  # (pages, bins, 3): leads, summed confidence, leads right
    gaps = bootstrap_pages(counts, resamples, seed)
    rows = []
    for b, (lo, hi) in enumerate(zip(bins[:-1], bins[1:], strict=True)):
        n, conf, right = counts[:, b].sum(axis=0)
        rows.append({
            "lo": lo, "hi": min(hi, 1.0), "leads": int(n), "pages": int((counts[:, b, 0] > 0).sum()),
            "predicted": float(conf / n) if n else float("nan"),
            "observed": float(right / n) if n else float("nan"),
            "gap_lo": float(gaps[0, b]), "gap_hi": float(gaps[1, b]),
        })  # fmt: skip
    return rows


def _bin_counts(pages: list[PageResult], bins: tuple[float, ...]) -> np.ndarray:
    """Per page, per bin: (leads, summed confidence, leads right) over the scored leads."""
    out = np.zeros((len(pages), len(bins) - 1, 3))
    for i, p in enumerate(pages):
        for k, v in p.lead_db.items():
            if not np.isfinite(v):
                continue
            c = float(p.lead_conf[k])
            b = int(np.searchsorted(bins, c, side="right")) - 1
            if 0 <= b < len(bins) - 1:
                out[i, b] += (1.0, c, float(v >= OK_DB))
    return out


def bootstrap_pages(counts: np.ndarray, resamples: int, seed: int = 0) -> np.ndarray:
    """(2, bins): the 5th and 95th percentiles of each bin's observed - predicted over resamples of whole
    pages (with replacement; `counts` from `_bin_counts`); NaN where no resample fills the bin."""
    nb = counts.shape[1]
    if resamples <= 0 or len(counts) == 0:
        return np.full((2, nb), np.nan)
    rng = np.random.default_rng(seed)
    w = rng.multinomial(len(counts), np.full(len(counts), 1.0 / len(counts)), size=resamples)
    tot = np.einsum("rp,pbk->rbk", w, counts)  # (resamples, bins, 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = (tot[..., 2] - tot[..., 1]) / tot[..., 0]
    out = np.full((2, nb), np.nan)
    for b in range(nb):
        g = gap[:, b][np.isfinite(gap[:, b])]
        if g.size:
            out[:, b] = np.percentile(g, [5, 95])
    return out


def markdown(pages: list[PageResult]) -> str:
    fam = family_summary(pages)
    lines = [
        "| family | pages | every lead right | orientation | score dB | median lead dB "
        "| conf>=0.8 & <3 dB | refused | median s | page reading s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k, s in fam.items():
        lines.append(
            f"| {k} | {s['pages']:.0f} | {s['all_placed']:.0%} | {s['orientation']:.1%} "
            f"| {s['score_db']:.2f} | {s['median_lead_db']:.2f} | {s['confidently_wrong']:.1%} "
            f"| {s['refused']:.0%} | {s['median_s']:.1f} | {s['read_s']:.2f} |"
        )
    reads = [p.read_s for p in pages if np.isfinite(p.read_s)]
    if reads:
        lines += [
            "",
            f"Page reading (issue 14: <= 0.5 s per image): median {np.median(reads):.2f} s, "
            f"95th percentile {np.percentile(reads, 95):.2f} s, max {max(reads):.2f} s "
            f"over {len(reads)} pages.",
        ]
    lines += [
        "",
        "| confidence | leads | pages | predicted | observed (SNR >= 3 dB) "
        "| observed - predicted, 90 % over pages |",
        "|---|---|---|---|---|---|",
    ]
    for r in reliability(pages):
        lines.append(
            f"| {r['lo']:.1f}-{r['hi']:.1f} | {r['leads']} | {r['pages']} | {r['predicted']:.2f} "
            f"| {r['observed']:.2f} | {_span(r['gap_lo'], r['gap_hi'])} |"
        )
    return "\n".join(lines)


def _median_finite(values: list[float]) -> float:
    """Median of the finite values (NaN if none): results saved before a field existed load it as NaN."""
    v = [x for x in values if np.isfinite(x)]
    return float(np.median(v)) if v else float("nan")


def _span(lo: float, hi: float) -> str:
    return f"{lo:+.2f} .. {hi:+.2f}" if np.isfinite(lo) and np.isfinite(hi) else "-"


# ------------------------------------------------------------------------------------- renderer set

# every layout family of the renderer's catalogue (ecgml.render.layouts), Cabrera and partial pages
# included; 6x2 both columns 0-5 s, as ECG-Image-Kit; 3x5 is scored on its 12 standard leads (its
# V4R/V8/V9 are derived from V1/V2/V5/V6 and carry no truth); panel pages (each lead in its own gridded
# box, ecgml.render.panels) last, so the families before them keep their pages
FAMILIES = (
    "3x4+1R", "3x4", "3x4+3R", "3x4+V1", "6x2", "6x2+II", "6x2-seq", "12x1", "cabrera-3x4+1R",
    "cabrera-6x2", "cabrera-12x1", "6x1-limb", "6x1-chest", "12x1-top", "12x1-bottom", "3x5",
    "panels:3x4+1R", "panels:12x1",
)  # fmt: skip
# capture types cycled per family: clean Kaggle-style page, scan, photo, screen photo, real-world
# styles (fonts, label placement, headers, speeds, gains) and small real-world copies
CAPTURES = ("0001", "realworld", "0003", "0005", "lowres", "0006", "realworld", "0009")


def page_orientation(page_map: Any) -> int:
    """Quarter turn (degrees, counter-clockwise) of the paper in the image, as geometry reports it."""
    c = np.array(page_map.paper_mm) / 2
    p = page_map.mm_to_px(np.array([c, c + [1.0, 0.0]]))
    d = p[1] - p[0]
    return int(90 * np.round(np.degrees(np.arctan2(-d[1], d[0])) / 90)) % 360


def render_set(
    folder: str | Path,
    records_dir: str | Path,
    per_family: int,
    seed: int,
    split_file: str | Path | None,
    splits: tuple[str, ...] = ("test",),
    families: tuple[str, ...] = FAMILIES,
    pages: tuple[str, ...] = (),
    gain: str | None = None,
    captures: tuple[str, ...] = CAPTURES,
    speed: str | None = None,
) -> Iterator[tuple[str, str, Path, np.ndarray, int | None]]:
    """`per_family` pages per layout family from records of `splits`, at 500 Hz: (name, family, png,
    truth with NaN where not plotted, orientation), page i of every family before page i + 1.

    Each page is rendered when it is reached (then cached in `folder`), so a run stopped early has
    covered every family alike and a later run goes on where it stopped. Page k of the family-major
    order (FAMILIES[f], page i: k = f * per_family + i) always has record k and seed `seed * 1000 + k`.
    `pages`: only the pages whose names match one of these patterns (e.g. "*_005": capture CAPTURES[5]).
    `gain` forces the printed gain (5, 10, 20 or mixed; default: the renderer's draw), `speed` the paper
    speed (25, 50 or 12.5 mm/s), `captures` the capture types cycled over (a set of its own: give it its
    own folder)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    recs: list[Path] = []
    for i in range(per_family):
        for fam in families:
            f = FAMILIES.index(fam) if fam in FAMILIES else len(FAMILIES) + families.index(fam)
            k = f * per_family + i  # a subset of the families draws the same pages as the whole set
            name = f"{fam.replace(':', '-')}_{i:03d}"
            if pages and not any(fnmatch.fnmatch(name, p) for p in pages):
                continue
            png, npz = folder / f"{name}.png", folder / f"{name}.npz"
            if not (png.exists() and npz.exists()):
                if not recs:
                    from ecgml.digitize_bench import bench_records

                    recs = bench_records(records_dir, split_file, splits)
                cap = captures[i % len(captures)]
                _render_page(recs[k % len(recs)], fam, cap, seed * 1000 + k, png, npz, gain, speed)
            z = np.load(npz)
            yield (f"{name} ({z['type']})", fam, png, z["truth"], int(z["orientation"]))


def _render_page(
    record: Path,
    family: str,
    capture: str,
    seed: int,
    png: Path,
    npz: Path,
    gain: str | None = None,
    speed: str | None = None,
) -> None:
    """One benchmark page and its truth (written truth last: a page without it is drawn again)."""
    import cv2

    from ecgml.records import read_wfdb, resample
    from ecgml.render.page import plotted_mask
    from ecgml.render.presets import render

    rec = resample(read_wfdb(record).window(0, 10), 500, 5000)
    r = render(rec, capture, seed, layout=family, gain=gain, speed=speed)
    m = plotted_mask(r.layout, 500, 5000)
    truth = np.where(m, rec.signal.astype(np.float64), np.nan)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(r.image, cv2.COLOR_RGB2BGR))
    png.write_bytes(buf.tobytes())
    tmp = npz.with_name(npz.stem + ".tmp.npz")
    np.savez_compressed(tmp, truth=truth, orientation=page_orientation(r.page_map), type=capture)
    tmp.replace(npz)


# ------------------------------------------------------------------------------------- calibration


# the calibration's evidence: each factor's log (the raw confidence is their product, so its log is their
# sum: a fit on the logs can weigh each factor by how much it really says, which the product cannot)
# and the lead's beats against the simultaneous leads' with its page's (`lead_checks`, session 13)
CAL_FEATURES = (
    "trace", "read_share", "geometry", "agreement", *LAYOUT_KINDS, "pulse", *PAGE_FEATURES,
    "beats", "page_beats", "page_limbs",
)  # fmt: skip
CAL_TRANSFORM = "log"


def with_doubts(parts: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Stored evidence with the page's (`verdict.doubt_evidence`) where results of older code lack it
    (computed from the leads the results keep: those with truth, as a rule every lead the page shows)."""
    from ecgml.verdict import LIMB_LEADS, doubt_evidence, limbs_agree

    einthoven = float(limbs_agree(parts))  # session 25 evidence, from the leads' own
    parts = {k: {"page_einthoven": einthoven if k in LIMB_LEADS else 0.0} | p for k, p in parts.items()}
    done: tuple[str, ...] = (*PAGE_FEATURES, "page_conflicts")
    if all("beats" in p for p in parts.values()):
        done = (*done, "page_beats")
    if all(f in part for part in parts.values() for f in done):
        return parts
    page = doubt_evidence(parts)
    return {lead: part | page[lead] for lead, part in parts.items()}


def _lead_rows(
    pages: list[PageResult], features: tuple[str, ...] = CAL_FEATURES, transform: str = CAL_TRANSFORM
) -> tuple[np.ndarray, np.ndarray]:
    """(features (n, len(features)), right (n,)) over every scored lead that has its evidence parts."""
    from ecgml.verdict import feature_values, has_features

    x, y = [], []
    for p in pages:
        parts = with_doubts(p.parts)
        for lead, db in p.lead_db.items():
            part = parts.get(lead)
            if part is None or not np.isfinite(db) or p.lead_status.get(lead) in ("absent", "unreadable"):
                continue
            if not has_features(part, features):
                continue  # a result of code older than this evidence
            x.append(feature_values(part, list(features), transform))
            y.append(db >= OK_DB)
    return np.array(x, np.float64).reshape(-1, len(features)), np.array(y, np.float64)


def fit_calibration(
    pages: list[PageResult],
    l2: float = 1.0,
    features: tuple[str, ...] = CAL_FEATURES,
    transform: str = CAL_TRANSFORM,
) -> dict[str, Any]:
    """Logistic regression (Newton, L2 on the weights) of 'SNR >= OK_DB' on the confidence evidence.

    Every weight is kept >= 0 (a feature whose fit comes out negative is dropped and the rest refitted):
    more evidence for a lead must never lower its confidence, whatever a small set happens to show."""
    x, y = _lead_rows(pages, features, transform)
    if len(y) < 20:
        raise ValueError(f"too few scored leads to calibrate ({len(y)})")
    a = np.hstack([np.ones((len(y), 1)), x])
    use = np.ones(a.shape[1], bool)
    while True:
        w = _logistic(a[:, use], y, l2)
        neg = np.flatnonzero(w[1:] < 0)
        if neg.size == 0:
            break
        use[np.flatnonzero(use)[1 + neg[np.argmin(w[1:][neg])]]] = False
    full = np.zeros(a.shape[1])
    full[use] = w
    w = full
    return {"features": list(features), "transform": transform, "bias": float(w[0]),
            "weights": [float(v) for v in w[1:]], "ok_db": OK_DB, "leads": int(len(y)),
            "share_right": float(y.mean()), "pages": len(pages)}  # fmt: skip


def _logistic(a: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    w = np.zeros(a.shape[1])
    reg = np.full(a.shape[1], l2)
    reg[0] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(a @ w)))
        g = a.T @ (p - y) + reg * w
        h = (a * (p * (1 - p))[:, None]).T @ a + np.diag(reg + 1e-9)
        step = np.linalg.solve(h, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def recalibrated(pages: list[PageResult], cal: dict[str, Any] | None, cap: bool = True) -> list[PageResult]:
    """The same pages with each lead's confidence recomputed from its stored evidence by `cal`
    (what the digitizer with that calibration would report; the fallback cap is applied as it does;
    `cap=False`: without the raw evidence product's gate, `verdict.calibrate`)."""
    from ecgml.verdict import READ_AT, has_features, lead_confidence

    out = []
    for p in pages:
        conf, stat = dict(p.lead_conf), dict(p.lead_status)
        for lead, part in with_doubts(p.parts).items():
            if stat.get(lead) in ("absent", "unreadable"):
                continue
            if cal is not None and not has_features(part, cal["features"]):
                continue  # a result of code older than the calibration's evidence: kept as reported
            c = lead_confidence(part, cal, cap=cap)
            conf[lead] = c
            stat[lead] = "read" if c >= READ_AT else "uncertain"
        out.append(PageResult(**{**p.__dict__, "lead_conf": conf, "lead_status": stat}))
    return out


def load_pages(path: str | Path) -> list[PageResult]:
    fields = set(PageResult.__dataclass_fields__)
    return [
        PageResult(**{k: v for k, v in d.items() if k in fields}) for d in json.loads(Path(path).read_text())
    ]
