"""End-to-end digitizer speed, A/B interleaved: seconds per image per type and the score of each variant.

    python benchmarks/digitize_speed.py --set runs/bench/digitize --per-type 4 \
        --variant before=/tmp/ecgml-before:torch --variant after=.:auto [--rounds 2] [--json out.json]

A variant is NAME=SRC[:RUNTIME]: SRC is a folder holding an `ecgml` package (this checkout, or an older
commit's, e.g. `git worktree add /tmp/ecgml-before <commit>`), RUNTIME sets ECGML_RUNTIME (auto, openvino,
onnxruntime, torch; ignored by code that predates it). Each variant runs in its own process with the
shipped weights loaded once; images go to the variants in turn (A, B, A, B, ...) so machine load hits them
alike. Seconds are wall time of `Digitizer.digitize` (image load, geometry, canonical page, extraction,
assembly), one image at a time; the first image of each variant is a warm-up and not counted. The score
is `ecgml.metric` on the images timed, so a speed change that moves the output shows up there. CPU seconds
of each worker (all its threads) are printed too: on a machine others load, they move far less than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

WORKER = "--worker"
STAGES = ("load", "geometry", "canonical", "extract", "assemble")
# flatbed scans among the Kaggle capture types (the rest are photos and screens); CPU seconds (all threads of
# a worker) are reported beside wall seconds: on a machine others load, they move far less than wall time
SCANS = ("0001", "0003", "0004", "0011", "0012")


def worker() -> int:
    """Child: load the digitizer once, then answer one JSON line per image path read from stdin."""
    from ecgml.digitize import load_digitizer

    digitizer = load_digitizer(os.environ.get("ECGML_SPEED_MODEL") or None)
    where = str(Path(sys.modules["ecgml"].__file__ or "").parent)
    print(json.dumps({"ready": True, "ecgml": where}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        t0, c0 = time.perf_counter(), time.process_time()
        res = digitizer.digitize(job["path"], job["fs"])
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
        segs = res.segments(job["n_rows"])
        stages = dict(res.seconds, load=secs - sum(res.seconds.values()))  # load: image decoding
        out = {"seconds": secs, "cpu": cpu, "stages": stages}
        out["segments"] = {k: v.tolist() for k, v in segs.items()}
        print(json.dumps(out), flush=True)
    return 0


@dataclass
class Variant:
    name: str
    src: Path
    runtime: str
    proc: Any = None
    where: str = ""
    seconds: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)  # CPU seconds of the worker (all its threads)
    stages: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    segments: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> Variant:
        name, _, rest = spec.partition("=")
        src, _, runtime = rest.partition(":")
        if not name or not src:
            raise SystemExit(f"bad --variant {spec!r}: want NAME=SRC[:RUNTIME]")
        return cls(name, Path(src).resolve(), runtime or "auto")

    def start(self, threads: int, model: str | None) -> None:
        env = dict(os.environ, PYTHONPATH=str(self.src), ECGML_RUNTIME=self.runtime)
        env["ECGML_THREADS"] = str(threads)
        env["ECGML_SPEED_MODEL"] = model or ""
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.where = json.loads(self.proc.stdout.readline())["ecgml"]

    def run(self, path: Path, fs: int, n_rows: dict[str, int]) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps({"path": str(path), "fs": fs, "n_rows": n_rows}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"variant {self.name}: worker died on {path}")
        return dict(json.loads(line))

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def pick_images(set_dir: Path, per_type: int) -> list[tuple[int, str]]:
    """The first `per_type` ECG ids of each type, interleaved by type (id order of types.csv)."""
    from ecgml.kaggle import read_types

    by_type: dict[str, list[int]] = {}
    for i, t in read_types(set_dir / "types.csv").items():
        by_type.setdefault(t, []).append(int(i))
    picked = [(i, t) for t, ids in sorted(by_type.items()) for i in sorted(ids)[:per_type]]
    return sorted(picked, key=lambda p: (sorted(by_type[p[1]]).index(p[0]), p[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", dest="set_dir", type=Path, default=Path("runs/bench/digitize"))
    ap.add_argument("--variant", action="append", required=True, help="NAME=SRC[:RUNTIME], twice or more")
    ap.add_argument("--per-type", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=1, help="times each image is digitized per variant")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default=None, help="a --model value (default: the shipped weights)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)

    from ecgml.kaggle import read_long_table, read_test_table, test_image_path
    from ecgml.metric import score_ecg, summarise
    from ecgml.records import LEADS

    variants = [Variant.parse(v) for v in a.variant]
    images = pick_images(a.set_dir, a.per_type)
    table = read_test_table(a.set_dir / "test.csv")
    jobs = {}
    for i, _ in images:
        g = table[table["id"] == str(i)]  # test.csv ids are text
        n_rows = {str(lead): int(n) for lead, n in zip(g["lead"], g["number_of_rows"], strict=True)}
        jobs[i] = (test_image_path(a.set_dir, i), int(g["fs"].iloc[0]), n_rows)
    for v in variants:
        v.start(a.threads, a.model)
        print(f"{v.name}: ecgml from {v.where}, runtime {v.runtime}", file=sys.stderr)
    warm = jobs[images[0][0]]
    for v in variants:
        v.run(*warm)
    t_start = time.time()
    for r in range(a.rounds):
        for k, (i, t) in enumerate(images):
            order = variants if (k + r) % 2 == 0 else variants[::-1]
            for v in order:
                out = v.run(*jobs[i])
                v.seconds.setdefault(t, []).append(out["seconds"])
                v.cpu.setdefault(t, []).append(out.get("cpu", float("nan")))
                for s, x in out["stages"].items():
                    v.stages.setdefault(t, {}).setdefault(s, []).append(x)
                v.segments[i] = {lead: np.asarray(x) for lead, x in out["segments"].items()}
            print(f"round {r + 1} image {k + 1}/{len(images)} ({t})", file=sys.stderr, flush=True)
    for v in variants:
        v.stop()

    sol = read_long_table(a.set_dir / "solution.csv")
    sol = sol[sol["ecg"].isin(list(jobs))]
    labels = {
        int(e): {str(lead): p.sort_values("row")["value"].to_numpy() for lead, p in g.groupby("lead")}
        for e, g in sol.groupby("ecg")
    }
    types = dict(images)
    reports = {}
    for v in variants:
        per_ecg = []
        for i, (_, fs, _) in jobs.items():
            s = score_ecg(i, fs, labels[i], v.segments[i])
            s.type = types[i]
            per_ecg.append(s)
        reports[v.name] = summarise(per_ecg)
    base = variants[0]
    diffs = {
        v.name: max(
            float(np.max(np.abs(v.segments[i][ld] - base.segments[i][ld]))) for i in jobs for ld in LEADS
        )
        for v in variants[1:]
    }

    head = ["type", "n"] + [f"{v.name} s/image" for v in variants] + [f"{v.name} dB" for v in variants]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in sorted(base.seconds):
        row = [t, str(sum(1 for _, tt in images if tt == t))]
        row += [f"{np.median(v.seconds[t]):.2f}" for v in variants]
        row += [f"{reports[v.name].per_type[t]:.2f}" for v in variants]
        lines.append("| " + " | ".join(row) + " |")
    row = ["**all**", str(len(images))]
    row += [f"**{np.median([x for xs in v.seconds.values() for x in xs]):.2f}**" for v in variants]
    row += [f"**{reports[v.name].score:.2f}**" for v in variants]
    lines.append("| " + " | ".join(row) + " |")
    print("\n".join(lines))
    for v in variants:
        med = {s: float(np.median([x for t in v.stages for x in v.stages[t].get(s, [])])) for s in STAGES}
        print(f"{v.name}: median seconds per stage " + ", ".join(f"{s} {x:.2f}" for s, x in med.items()))
        cpu = [x for xs in v.cpu.values() for x in xs]
        scans = [x for t, xs in v.cpu.items() if t in SCANS for x in xs]
        print(f"{v.name}: median CPU seconds per image {np.median(cpu):.2f} (scans {np.median(scans):.2f})")
    for name, d in diffs.items():
        print(f"{name}: max |output - {base.name}| = {d:.2e} mV")
    when = time.strftime("%H:%M UTC", time.gmtime(t_start))
    n = len(images) * a.rounds
    print(f"started {when}, {n} images per variant, load average {os.getloadavg()[0]:.1f} at the end")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        out = {
            v.name: {
                "src": v.where,
                "runtime": v.runtime,
                "seconds": v.seconds,
                "cpu": v.cpu,
                "stages": v.stages,
                "score": reports[v.name].score,
                "per_type": reports[v.name].per_type,
            }
            for v in variants
        }
        a.json.write_text(json.dumps({"variants": out, "max_abs_diff_mv": diffs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(worker() if sys.argv[1:] == [WORKER] else main())
