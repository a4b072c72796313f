"""The files ``vsrestore eval`` writes: results.json, results.md, a bar plot, side-by-side crops.

- ``results.json``: settings, the command line, the metrics, and per method its status
  (``ok`` or ``skipped`` with the reason), chosen setting and sweep (peers), mean and
  per-picture metrics, and the difference to the best peer in the main metric.
- ``results.md``: the same as Markdown tables, methods sorted by the main metric.
- ``TASK_METRIC.png``: horizontal bars of the main metric (drawn with PIL).
- ``crop_N_NAME.png``: input | best peer | ours | ground truth on the most detailed window
  of the first pictures, labelled (nearest-neighbour enlarged where small).
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

COLOURS = {"ours": (46, 139, 87), "oracle": (143, 188, 143), "peer": (70, 110, 180),
           "baseline": (150, 150, 150), "input": (190, 190, 190)}


def _clean(x: Any) -> Any:
    """JSON-ready: rounded floats, non-finite as null, private ``_`` keys dropped."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items() if not str(k).startswith("_")}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, float | np.floating):
        return round(float(x), 4) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def setting_text(setting: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float | int) else f"{k}={v}"
                     for k, v in (setting or {}).items())


def _font(size: int = 13) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def markdown(res: dict[str, Any]) -> str:
    ms, main = res["metrics"], res["main_metric"]
    ok = [r for r in res["methods"] if r["status"] == "ok"]
    skipped = [r for r in res["methods"] if r["status"] != "ok"]
    st = res.get("settings", {})
    g = {k: f"{v:g}" for k, v in st.items() if k in ("scale", "sigma", "crf") and isinstance(v, float | int)}
    title = {"sr": f"sr x{g.get('scale', '')}", "denoise": f"denoise sigma {g.get('sigma', '')}",
             "deblock": f"deblock x264 CRF {g.get('crf', '')}", "dnsr": f"dnsr x2 sigma {g.get('sigma', '')}"}
    lines = [f"# vsrestore eval: {title.get(res['task'], res['task'])}", "",
             f"- degradation: {res['degradation']}",
             f"- pictures ({len(res['pictures'])}): {', '.join(res['pictures'])}"
             + (f"; {st['crop_text']}" if st.get("crop_text") else ""),
             "- metrics: " + "; ".join(f"{m['label']}: {m['description']}" for m in ms.values()),
             "- peers with a parameter run at their best setting from a sweep over these pictures "
             "(see Peer sweeps)" if any(r.get("sweep") for r in ok) else "",
             f"- command: `{res['command']}`" if res.get("command") else "", ""]
    keys = list(ms)
    head = ["#", "method", "kind", "setting", *[ms[k]["label"] for k in keys],
            f"Δ {ms[main]['label']} vs best peer"]
    lines += ["| " + " | ".join(head) + " |",
              "| " + " | ".join(["---:", "---", "---", "---"] + ["---:"] * (len(keys) + 1)) + " |"]
    for i, r in enumerate(ok, 1):
        vals = [_fmt(r["mean"].get(k), k) for k in keys]
        d = r.get("delta_vs_best_peer")
        name = f"**{r['label']}**" if r["kind"] in ("ours", "oracle") else r["label"]
        lines.append(f"| {i} | {name} | {r['kind']} | {setting_text(r.get('setting'))} | "
                     + " | ".join(vals) + f" | {'' if d is None else f'{d:+.2f}'} |")
    if res.get("best_peer"):
        bp = next(r for r in ok if r["key"] == res["best_peer"])
        bs = setting_text(bp.get("setting"))
        lines += ["", f"Best peer: {bp['label']}" + (f" ({bs})." if bs else ".")]
    if skipped:
        lines += ["", "Skipped:"] + [f"- {r['label']}: {r['reason']}" for r in skipped]
    if ok:
        lines += ["", f"## Per picture ({ms[main]['label']})", "",
                  "| method | " + " | ".join(res["pictures"]) + " |",
                  "| --- | " + " | ".join(["---:"] * len(res["pictures"])) + " |"]
        lines += [f"| {r['label']} | " + " | ".join(_fmt(r["per_picture"][p][main], main)
                                                   for p in res["pictures"]) + " |" for r in ok]
    sweeps = [r for r in ok if r.get("sweep")]
    if sweeps:
        lines += ["", f"## Peer sweeps (mean {ms[main]['label']})", ""]
        for r in sweeps:
            cells = [f"{setting_text(p['setting'])}: {p['mean']:.2f}" for p in r["sweep"]]
            pts = " · ".join(f"**{c}**" if p["setting"] == r["setting"] else c
                             for c, p in zip(cells, r["sweep"], strict=True))
            e = r.get("edge_of_sweep")
            edge = f" (best at the edge of the grid in {', '.join(e)}: the peak may lie outside)" if e else ""
            lines.append(f"- {r['label']}{edge}: {pts}")
    if res.get("files"):
        lines += ["", "## Plots", ""] + [f"![{f}]({f})" for f in res["files"] if f.endswith(".png")]
    return "\n".join(lines) + "\n"


def _fmt(v: float | None, key: str) -> str:
    if v is None or not math.isfinite(v):
        return "inf" if v is not None else ""
    return f"{v:.4f}" if key.startswith(("ssim", "stlpips")) else f"{v:.2f}"


def bar_plot(res: dict[str, Any], path: Path) -> None:
    """Horizontal bars of the main metric (methods that ran), best first."""
    from PIL import Image, ImageDraw

    main = res["main_metric"]
    meta = res["metrics"][main]
    ok = [r for r in res["methods"] if r["status"] == "ok" and math.isfinite(r["mean"][main])]
    vals = [r["mean"][main] for r in ok] or [0.0]
    hi = max(vals)
    lo = math.floor(min(vals) - 0.1 * (hi - min(vals) + 1)) if meta["higher_is_better"] else 0.0
    row, left, width, top = 24, 330, 420, 40
    im = Image.new("RGB", (left + width + 90, top + row * max(1, len(ok)) + 30), "white")
    d = ImageDraw.Draw(im)
    font = _font(13)
    d.text((10, 10), f"vsrestore eval {res['task']}: {meta['label']} (axis from {lo:g})", fill="black",
           font=font)
    for i, r in enumerate(ok):
        y = top + i * row
        v = r["mean"][main]
        n = int(round(width * (v - lo) / max(1e-9, hi - lo))) if hi > lo else width
        d.text((10, y + 4), r["label"][:48], fill="black", font=font)
        colour = COLOURS.get(r["kind"], (120, 120, 120))
        d.rectangle((left, y + 3, left + max(1, n), y + row - 4), fill=colour)
        d.text((left + max(1, n) + 6, y + 4), _fmt(v, main), fill="black", font=font)
    d.line((left, top - 2, left, top + row * len(ok)), fill="black")
    im.save(path)


def _u8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(a).transpose(1, 2, 0) * 255), 0, 255).astype(np.uint8)


def detailed_window(img: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left (y, x) of the *size* window with the most gradient energy in *img* (3, H, W)."""
    g = img.mean(axis=0)
    e = np.abs(np.diff(g, axis=0))[:, :-1] + np.abs(np.diff(g, axis=1))[:-1, :]
    h, w = e.shape
    if size >= min(h, w):
        return 0, 0
    step = max(1, size // 4)
    best, pos = -1.0, (0, 0)
    for y in range(0, h - size + 1, step):
        for x in range(0, w - size + 1, step):
            v = float(e[y: y + size, x: x + size].sum())
            if v > best:
                best, pos = v, (y, x)
    return pos


def side_by_side(tiles: list[tuple[str, np.ndarray]], path: Path, window: int = 192) -> None:
    """Label and place ``(label, (3, H, W) 0..1)`` tiles (same size) in a row, cropped to the
    most detailed window of the last tile (the ground truth)."""
    from PIL import Image, ImageDraw

    ref = tiles[-1][1]
    _, h, w = ref.shape
    size = min(window, h, w)
    y, x = detailed_window(ref, size)
    zoom = max(1, window // size)
    width = max(8, size * zoom // 7)  # characters per line
    lines = [[ln for part in label.split("\n") for ln in textwrap.wrap(part, width)][:3]
             for label, _ in tiles]
    strip = 6 + 15 * max(len(t) for t in lines)
    sw = sh = size * zoom
    canvas = Image.new("RGB", (len(tiles) * (sw + 4), sh + strip), "white")
    d = ImageDraw.Draw(canvas)
    font = _font(12)
    for i, (_, arr) in enumerate(tiles):
        crop = Image.fromarray(_u8(arr[:, y: y + size, x: x + size]))
        if zoom > 1:
            crop = crop.resize((crop.width * zoom, crop.height * zoom), Image.Resampling.NEAREST)
        canvas.paste(crop, (i * (sw + 4), strip))
        for j, part in enumerate(lines[i]):
            d.text((i * (sw + 4) + 2, 2 + 15 * j), part, fill="black", font=font)
    canvas.save(path)


def _nearest(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    fy, fx = shape[1] // a.shape[1], shape[2] // a.shape[2]
    return np.repeat(np.repeat(a, fy, axis=1), fx, axis=2)[:, : shape[1], : shape[2]]


def write(res: dict[str, Any], out: Path, samples: list[Any]) -> list[Path]:
    """Write every report file for the results of :func:`vsrestore.evaluation.evaluate`."""
    out.mkdir(parents=True, exist_ok=True)
    main = res["main_metric"]
    written = []
    plot = out / f"{res['task']}_{main}.png"
    bar_plot(res, plot)
    written.append(plot)
    ok = [r for r in res["methods"] if r["status"] == "ok"]
    ours = next((r for r in ok if r["kind"] == "ours"), None)
    peer = next((r for r in ok if r["key"] == res.get("best_peer")), None)
    for i, s in enumerate(samples[: min(len(samples), *(len(r["_kept"]) for r in ok))] if ok else []):
        gt = s.ref[len(s.ref) // 2]
        inp = s.inp[len(s.inp) // 2]
        tiles = [("input" + (" (nearest)" if inp.shape != gt.shape else ""), _nearest(inp, gt.shape))]
        for r in (peer, ours):
            if r is not None:
                tiles.append((f"{r['label']}\n{res['metrics'][main]['label']} "
                              f"{_fmt(r['per_picture'][s.name][main], main)}", r["_kept"][i]))
        tiles.append(("ground truth", gt))
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in s.name)
        p = out / f"crop_{i + 1}_{safe}.png"
        side_by_side(tiles, p)
        written.append(p)
    res["files"] = [p.name for p in written] + ["results.json", "results.md"]
    (out / "results.json").write_text(json.dumps(_clean(res), indent=2, allow_nan=False) + "\n")
    (out / "results.md").write_text(markdown(res))
    return [*written, out / "results.json", out / "results.md"]
