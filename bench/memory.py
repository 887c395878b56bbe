"""Peak memory of identifying one large image: decode (`read_image`) and analyse (`analyze`: locate, crop, embed,
read) at the pixel cap, each case in a fresh process so that its peak (VmHWM) is its own. Reports the process's
peak resident memory and the peak over the same process after loading the models on a small image (what one
analysis adds to a warm server). Bounded: a few images, one at a time. Usage:

    PYTHONPATH=src python bench/memory.py [--sides 7700 4000 1600]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import io, json, re, sys, time
import numpy as np
from PIL import Image
from raiox.synth import demo_catalog, render_scene
from raiox.vision import analyze, get_embedder, read_image

def peak_mb():  # VmHWM: this process's own high-water mark (ru_maxrss carries the parent's over exec)
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) / 1024

data = open(sys.argv[1], "rb").read()
embedder = get_embedder()
small = io.BytesIO()
Image.fromarray((render_scene([demo_catalog()[4].spec], seed=4).image * 255).astype(np.uint8)).save(small, "PNG")
analyze(read_image(small.getvalue()), embedder)  # models loaded and warm
warm = peak_mb()
t0 = time.perf_counter()
found = analyze(read_image(data, max_pixels=60_000_000), embedder)
seconds = time.perf_counter() - t0
peak = peak_mb()
print(json.dumps({"warm_mb": round(warm), "peak_mb": round(peak), "added_mb": round(peak - warm),
                  "seconds": round(seconds, 1), "implants": len(found)}))
"""

def film(side: int, bits: int) -> bytes:
    """A rendered scene tiled up to SIDE x SIDE, as a BITS-bit PNG."""
    import io

    import numpy as np
    from PIL import Image

    from raiox.synth import demo_catalog, render_scene

    scene = render_scene([demo_catalog()[4].spec], seed=3).image
    pixels = np.tile(scene, (side // scene.shape[0] + 1, side // scene.shape[1] + 1))[:side, :side]
    buf = io.BytesIO()
    scale, kind = (65535, np.uint16) if bits == 16 else (255, np.uint8)
    Image.fromarray((pixels * scale).astype(kind)).save(buf, "PNG")
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[7700, 4000, 1600])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for side in args.sides:
            for bits in (8, 16):
                path = Path(tmp) / f"{side}-{bits}.png"
                path.write_bytes(film(side, bits))
                out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True,
                                     check=True, timeout=900)
                rows.append({"side": side, "bits": bits, "file_mb": round(path.stat().st_size / 2**20, 1),
                             **json.loads(out.stdout.strip().splitlines()[-1])})
                print(rows[-1], flush=True)
    print("| image | file MB | warm process MB | peak MB | added by the image MB | seconds | implants |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['side']}x{r['side']} {r['bits']}-bit PNG | {r['file_mb']} | {r['warm_mb']} | {r['peak_mb']} "
              f"| {r['added_mb']} | {r['seconds']} | {r['implants']} |")

if __name__ == "__main__":
    main()
