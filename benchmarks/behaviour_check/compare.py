"""Compares two outputs of run.sh: results.csv (wall-time columns aside), history, summaries.

Usage: python benchmarks/behaviour_check/compare.py OUT_BEFORE OUT_AFTER (exit 1 if any differ).
"""

import csv
import glob
import json
import sys

a, b = sys.argv[1:3]
bad = 0
for f in sorted(glob.glob(f"{a}/**/results.csv", recursive=True)):
    g = f.replace(a, b, 1)
    ra, rb = ([{k: v for k, v in r.items() if "time" not in k} for r in csv.DictReader(open(x))]
              for x in (f, g))
    print(f, "same" if ra == rb else "DIFFERENT")
    bad += ra != rb
for f in sorted(glob.glob(f"{a}/**/history.jsonl", recursive=True)):
    g = f.replace(a, b, 1)
    same = open(f).read() == open(g).read()
    print(f, "same" if same else "DIFFERENT")
    bad += not same
for f in sorted(glob.glob(f"{a}/**/summary.json", recursive=True)):
    g = f.replace(a, b, 1)
    same = json.load(open(f))["replicas"] == json.load(open(g))["replicas"]
    print(f, "same" if same else "DIFFERENT")
    bad += not same
print("ALL IDENTICAL" if not bad else f"{bad} DIFFER")
sys.exit(bool(bad))
