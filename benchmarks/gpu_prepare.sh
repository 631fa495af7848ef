#!/usr/bin/env bash
# Prepares what the GPU machine lacks, in folders git ignores (.whl, .gpu_data), so that the
# device tool carries them with the working tree (64 MiB in all):
#   .whl/       wheels of clu, ml_collections, tensorflow-datasets and the dependencies of
#               theirs the GPU image does not have (Python 3.12, x86-64);
#   .gpu_data/  a copy of cmr96 and an ACDC subset: the first ACDC_PATIENTS (16) training
#               patients' slices (train.list order) and every validation volume.
# Then, on the GPU machine: bash benchmarks/gpu_suite.sh $OUT   (carry: .whl, .gpu_data).
# Usage (from the repository root, with ../shared/data beside it):
#   bash benchmarks/gpu_prepare.sh [SHARED_DATA_DIR]
set -euo pipefail
shared=${1:-../shared/data}
patients=${ACDC_PATIENTS:-16}
rm -rf .whl .gpu_data
mkdir -p .whl .gpu_data/acdc/data
platforms="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64"
# The versions pyproject's install resolves here (the GPU image has the rest).
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp $platforms -d .whl \
  clu==0.0.12 ml_collections==1.1.0 tensorflow-datasets==4.9.10 tensorflow-metadata==1.21.0 \
  array_record==0.8.6 dm-tree==0.1.10 immutabledict==4.3.1 simple-parsing==0.1.9 \
  termcolor==3.3.0 toml==0.10.2 docstring_parser==0.18.0 googleapis-common-protos==1.76.0 \
  importlib_resources==7.1.0
python3 -m pip wheel -q --no-deps promise==2.3 -w .whl  # promise has no wheel on PyPI
cp -r "$shared/cmr96" .gpu_data/cmr96
acdc="$shared/acdc"
cp "$acdc/val.list" "$acdc/train.list" .gpu_data/acdc/
head -n "$((patients * 2))" "$acdc/train.list" >.gpu_data/acdc/patients.tmp  # 2 frames each
grep -F -f .gpu_data/acdc/patients.tmp "$acdc/train_slices.list" >.gpu_data/acdc/train_slices.list
rm .gpu_data/acdc/patients.tmp
while read -r name; do cp "$acdc/data/$name.h5" .gpu_data/acdc/data/; done \
  < <(cat .gpu_data/acdc/train_slices.list "$acdc/val.list")
echo "$(wc -l <.gpu_data/acdc/train_slices.list) ACDC training slices of $patients patients," \
  "$(wc -l <"$acdc/val.list") validation volumes; $(du -sh .whl .gpu_data | tr '\n' ' ')"
