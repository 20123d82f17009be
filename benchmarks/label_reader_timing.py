"""What reading the printed lead names adds to digitizing one image: interleaved runs, reader off and on.

    python benchmarks/label_reader_timing.py runs/bench/layout_test --limit 12 [--threads 2]
    python benchmarks/label_reader_timing.py runs/bench/layout_test --reader-only --limit 16

`--reader-only`: geometry and the canonical page once per image (not timed), then the reader alone
(`read_page_labels` + `apply_labels`) three times, wall and CPU seconds: on a machine shared with other
jobs the CPU seconds say what it costs, the wall seconds what it took here.

Each image is digitized with `read_labels` off and on, in alternating order (off-on, on-off, ...), so load
drifts hit both alike. Prints the median per-image difference (wall and CPU seconds) and the median time of
the reader itself (`LabelReading.seconds`, which includes the re-read of a page turned 180 degrees only
when that happens: then the whole digitization runs twice).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ecgml.digitize import load_digitizer, load_image


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--limit", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reader-only", action="store_true")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    dig = load_digitizer(None)
    from ecgml.page_reader import load_reader

    load_reader()  # the first use exports and caches the reader's graph: not part of an image's time
    pngs = sorted(a.folder.glob("*.png"))[: a.limit]
    if a.reader_only:
        return _reader_only(pngs)
    d_wall, d_cpu, reader = [], [], []
    for k, png in enumerate(pngs):
        img = load_image(png)
        got: dict[bool, tuple[float, float]] = {}
        for on in (False, True) if k % 2 == 0 else (True, False):
            dig.read_labels = on
            w0, c0 = time.perf_counter(), time.process_time()
            res = dig.digitize_image(img, 500, png)
            got[on] = (time.perf_counter() - w0, time.process_time() - c0)
            if on and "labels" in res.evidence:
                reader.append(float(res.evidence["labels"]["seconds"]))
        d_wall.append(got[True][0] - got[False][0])
        d_cpu.append(got[True][1] - got[False][1])
        print(f"{png.name}: off {got[False][0]:.2f} s, on {got[True][0]:.2f} s", flush=True)
    print(
        f"{len(pngs)} images, {a.threads} threads: reading adds median {np.median(d_wall):.3f} s wall, "
        f"{np.median(d_cpu):.3f} s CPU; the reader itself median {np.median(reader):.3f} s wall"
    )
    return 0


def _reader_only(pngs: list[Path]) -> int:
    from ecgml.digitize import CANONICAL_PX_PER_MM, estimate_geometry, read_page_labels
    from ecgml.geometry.canonical import canonical_page
    from ecgml.layout_solve import Solved
    from ecgml.page_reader import apply_labels

    wall, cpu = [], []
    for png in pngs:
        img = load_image(png)
        geo = estimate_geometry(img, png)
        page = canonical_page(img, geo.page_map, CANONICAL_PX_PER_MM)
        for _ in range(3):
            w0, c0 = time.perf_counter(), time.process_time()
            labels = read_page_labels(page, geo.layout)
            apply_labels(Solved(geo.layout, []), labels)
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
        print(
            f"{png.name} [{geo.layout.name}]: {np.median(wall[-3:]):.3f} s wall, "
            f"{np.median(cpu[-3:]):.3f} s CPU"
        )
    print(f"{len(pngs)} images: the reader median {np.median(wall):.3f} s wall, {np.median(cpu):.3f} s CPU, "
          f"max {max(cpu):.3f} s CPU")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
