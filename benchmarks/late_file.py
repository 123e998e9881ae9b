"""A late nightly export, by hand: MovieLens ml-latest-small ratings.csv is replaced (a rename,
as an export job does) by its second half while `catvec pretrain` runs, after several delays.
Each run must end one of two ways: refused in one line with nothing cached under the first
file's checksum, or trained with the checksum of the bytes it read. Also times the identity
check (a stat per part) against the sha256 it saves. Works in a temporary directory; the
data set is read from ../shared and never copied into the repository.

    .venv/bin/python benchmarks/late_file.py
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, movielens_dir  # noqa: E402

DELAYS = (0.0, 0.5, 1.0, 2.0, 4.0)


def sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    source = movielens_dir()
    if source is None:
        return 0
    from catvec.base.fingerprint import file_checksum
    from catvec.base.tables import input_state

    work = Path(tempfile.mkdtemp(prefix="catvec-late-"))
    try:
        lines = (source / "ratings.csv").read_text(encoding="utf-8").splitlines(keepends=True)
        late_text = lines[0] + "".join(lines[len(lines) // 2:])
        events = work / "ratings.csv"
        shutil.copy(source / "ratings.csv", events)
        t_state = timeit.timeit(lambda: input_state(str(events)), number=200) / 200
        t_hash = timeit.timeit(lambda: file_checksum(events), number=20) / 20
        print(f"identity check {t_state * 1e6:.0f} us, sha256 {t_hash * 1e3:.1f} ms "
              f"({events.stat().st_size / 1e6:.1f} MB): the check costs 1/{t_hash / t_state:.0f} of a second hash")
        for delay in DELAYS:
            out = work / f"out-{delay}"
            shutil.copy(source / "ratings.csv", events)
            first = sha(events)
            proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "catvec"), "pretrain", "--events", str(events),
                                     "--out", str(out), "--user-col", "userId", "--item-col", "movieId", "--no-tune",
                                     "--epochs", "2", "--dim", "16", "--quiet"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(delay)
            (work / "late.tmp").write_text(late_text, encoding="utf-8")
            os.replace(work / "late.tmp", events)
            _, stderr = proc.communicate()
            cache = sorted(p.name for p in (out / ".cache").iterdir()) if (out / ".cache").is_dir() else []
            if proc.returncode == 0:
                manifest = json.loads((out / "latest" / "manifest.json").read_text(encoding="utf-8"))
                rows = {first: len(lines) - 1, sha(events): late_text.count("\n") - 1}
                which = {first: "the first file", sha(events): "the late file"}.get(manifest["input"]["checksum"],
                                                                                   "NEITHER (a bug)")
                agree = rows.get(manifest["input"]["checksum"]) == manifest["corpus"]["events_read"]
                print(f"swap after {delay:.1f} s: trained on {manifest['corpus']['events_read']} events, "
                      f"manifest checksum = {which} ({'its' if agree else 'NOT its (a bug)'} row count); "
                      f"cache {cache}")
            else:
                print(f"swap after {delay:.1f} s: exit {proc.returncode}, cache {cache}: {stderr.strip()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
