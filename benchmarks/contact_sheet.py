"""Write docs/images/contact_sheet.png (one example of every renderer type) and
docs/images/layout_sheet.png (one real-world page of every layout family)."""

from __future__ import annotations

import sys

from ecgml.records import iter_wfdb_paths, read_wfdb
from ecgml.render.sheet import contact_sheet, layout_sheet

if __name__ == "__main__":
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    rec = read_wfdb(iter_wfdb_paths("data/records/ptbxl_wfdb")[0]).window(0, 10)
    print(contact_sheet(rec, "docs/images/contact_sheet.png", seed=seed))
    print(layout_sheet(rec, "docs/images/layout_sheet.png", seed=seed))
