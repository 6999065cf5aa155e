#!/usr/bin/env bash
# split.sh POOL DEV TRAIN_DIR HOLDOUT_DIR
#
# The data split of the bundled tiny model. POOL is the folder written by
# `SCALES="512 768" shared/data/photos/fetch_more.sh POOL` (944 tiles of 64 source photos);
# DEV is the dev photo folder (the 96 dev_NNN.jpg crops, beside fetch_more.sh).
# Every tile of eight source photos is held out of training, among them the sources of the four
# bundled demo photos (assets/photos: astronaut, chelsea, notre-dame, seeding), so the README's
# demo runs on photos the model has not seen. TRAIN_DIR gets symlinks to the other tiles (845 of
# that pool; 2307 of the five-scale one, SCALES="384 512 640 768 1024", of the last transformer run);
# HOLDOUT_DIR gets copies of the 18 dev photos cut from the held-out sources (used for the
# feature-distance table and the demo sheets).
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 POOL DEV TRAIN_DIR HOLDOUT_DIR" >&2; exit 2; }
pool=$(cd "$1" && pwd)
dev=$2
held=(scikit-image__astronaut scikit-image__chelsea mvtb-data__notre-dame
      lomiri-wallpapers-16.04__seeding_by_Clements_Engelhardt scikit-image__coffee
      mvtb-data__P1070503 mvtb-data__flowers5 mvtb-data__street)
mkdir -p "$3" "$4"
n=0
for f in "$pool"/*.jpg; do
    src=$(basename "$f"); src=${src%%__s*}
    skip=0
    for h in "${held[@]}"; do [ "$src" = "$h" ] && skip=1; done
    if [ $skip = 0 ]; then ln -sf "$f" "$3/"; n=$((n + 1)); fi
done
echo "$n training tiles in $3"
# The dev photos cut from the held-out sources (their SOURCES.md names each crop's source).
for d in 001 005 006 010 018 019 041 044 047 051 054 064 067 082 085 088 090 092; do
    cp "$dev/dev_$d.jpg" "$4/"
done
echo "18 held-out dev photos in $4"
