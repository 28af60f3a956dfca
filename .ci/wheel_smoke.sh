#!/usr/bin/env bash
# Build the wheel, install it into a virtual environment of its own outside the source tree, and run a small part
# of the main job from the installed package in a folder outside the repository: what a user who installs the wheel
# gets (the embedded corpus, the figure modules, the command line), not what the source tree happens to hold.
#
# Usage: .ci/wheel_smoke.sh PYTHON TORCH_SPEC   (the Makefile passes its venv's python and $(TORCH))
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
PYTHON=${1:?python of the build environment}
TORCH=${2:?torch requirement, e.g. torch==2.13.0}
WORK=${AMTHEORY_SMOKE_DIR:-${TMPDIR:-/tmp}/amtheory-wheel-smoke}
case "$WORK/" in "$REPO"/*) echo "wheel smoke: $WORK is inside the source tree" >&2; exit 2 ;; esac
PIP=(-m pip install -q --disable-pip-version-check)

rm -rf "$WORK"
mkdir -p "$WORK/wheel" "$WORK/run"

echo "== wheel: build"
"$PYTHON" -m pip wheel -q --disable-pip-version-check --no-deps -w "$WORK/wheel" .
WHEEL=$(ls "$WORK"/wheel/amtheory-*.whl)

echo "== wheel: contents against the source tree"
"$PYTHON" - "$WHEEL" <<'EOF'
import sys
import zipfile
from pathlib import Path

names = set(zipfile.ZipFile(sys.argv[1]).namelist())
wanted = [p.as_posix() for pattern in ("amtheory/data/embedded/*", "amtheory/data/*.json", "paper_figures/*.py")
          for p in sorted(Path().glob(pattern)) if p.is_file()]
missing = [n for n in wanted if n not in names]
if not any(n.startswith("amtheory/data/embedded/") for n in wanted) or missing:
    sys.exit(f"wheel smoke: the wheel lacks {missing or 'the embedded corpus'}")
print(f"{sys.argv[1].rsplit('/', 1)[-1]}: {len(names)} files, package data and paper_figures included")
EOF

echo "== wheel: install into $WORK/venv"
"$PYTHON" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" "${PIP[@]}" "$TORCH"
"$VPY" "${PIP[@]}" "$WHEEL[plot]"

echo "== wheel: run from $WORK/run"
cd "$WORK/run"
"$WORK/venv/bin/amtheory" --version | tee version.txt
grep -qx "amtheory $(basename "$WHEEL" | cut -d- -f2)" version.txt
"$VPY" - "$WORK/venv" <<'EOF'
import sys
from pathlib import Path

import amtheory
import paper_figures
from amtheory.diffusion.data import TokenCorpus
from amtheory.studies.memorization.data import embedded_corpus_path

venv = Path(sys.argv[1]).resolve()
for module in (amtheory, paper_figures):
    if venv not in Path(module.__file__).resolve().parents:
        sys.exit(f"wheel smoke: {module.__name__} imported from {module.__file__}, not from the installed wheel")
corpus = TokenCorpus.load(embedded_corpus_path())  # checks every array against the manifest's checksums
print(f"embedded corpus from the wheel: {corpus.vocab_size} ids, {len(amtheory.available_backends())} backends")
EOF
"$WORK/venv/bin/amtheory" run --preset tiny --part hopfield --device cpu --no-progress --out out > run.log 2>&1 ||
    { tail -n 40 run.log; exit 1; }
tail -n 3 run.log
grep -qi "hopfield" out/SUMMARY.md || { echo "wheel smoke: out/SUMMARY.md has no Hopfield section" >&2; exit 1; }
test -s out/figures/compare_hopfield.png || { echo "wheel smoke: no figure written" >&2; exit 1; }
echo "wheel smoke: passed"
