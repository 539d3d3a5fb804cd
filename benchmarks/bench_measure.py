"""Benchmark of `recist measure` (issue 4): read + measure end to end on a synthetic CT.

A 512 × 512 × 300 axial CT (0.78 mm pixels, 1.25 mm slices, one file per slice) and a
binary DICOM SEG of 5 ellipsoid lesions (one of 500 mL) are written to a temporary
folder. Then, each in a fresh process (so that peak memory is its own) and after a warm-up
read so that every contender finds the files in the page cache:

- SimpleITK merely reading the series (GDCM file discovery + ImageSeriesReader): the
  baseline;
- ``measure_study`` end to end (series headers, SEG decoding and placement, diameters,
  volume, measurability) — target ≤ 1.5 × the baseline;
- the same with the CT pixels decoded and rescaled too (``read_image(pixels=True)``), for
  comparison;
- the diameter step alone vs a brute-force per-slice all-pairs diameter over every lesion
  pixel (target ≥ 50 × faster);
- key images (issue 12, ``imaging_io.keyimage``): rendering the key images of 5 lesions ×
  3 timepoints (target ≤ 0.5 s; the 5 lesions of the synthetic study rendered 3 times, the
  rendering of a key image not depending on the visit), the series read with its pixels
  plus its 5 key images against the SimpleITK read, one 512 × 512 viewer slice, and the 4
  lesions × 3 visits of ``sample_dicom`` (read and rendered for real).

Run: ``.venv/bin/python benchmarks/bench_measure.py`` (about a minute, ~200 MB in /tmp).
Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROWS = COLS = 512
SLICES = 300
PIXEL_MM = 0.78
SPACING_MM = 1.25
REPEATS = 3


def lesions():
    from imaging_io.phantoms import Ellipsoid

    # Semi-axes 55 × 45 × 48.2 mm: 4/3 π abc = 499.7 mL.
    return [
        Ellipsoid((-60.0, 20.0, 0.0), (55.0, 45.0, 48.2), 25.0),
        Ellipsoid((90.0, -60.0, -80.0), (20.0, 14.0, 15.0), -30.0),
        Ellipsoid((70.0, 80.0, 60.0), (12.0, 9.0, 10.0), 60.0),
        Ellipsoid((-100.0, -90.0, 120.0), (8.0, 7.0, 6.0), 10.0),
        Ellipsoid((10.0, -20.0, -150.0), (16.0, 10.0, 11.0), 80.0),
    ]


def generate(folder: Path) -> tuple[Path, Path]:
    """Write the CT series and the SEG; return their paths."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    from imaging_io.phantoms import AxialGrid, ellipsoid_mask, write_ct_series

    origin = (-(COLS - 1) * PIXEL_MM / 2, -(ROWS - 1) * PIXEL_MM / 2,
              -(SLICES - 1) * SPACING_MM / 2)
    grid = AxialGrid(ROWS, COLS, SLICES, PIXEL_MM, SPACING_MM, origin)
    label = np.zeros((SLICES, ROWS, COLS), dtype=np.uint8)
    for number, lesion in enumerate(lesions(), start=1):
        label[ellipsoid_mask(grid, lesion)] = number
    yy, xx = np.mgrid[0:ROWS, 0:COLS]
    body = (((xx - COLS / 2) / 230) ** 2 + ((yy - ROWS / 2) / 180) ** 2 <= 1) * 1064.0 - 1024
    hu = np.broadcast_to(body, label.shape).astype(np.float32).copy()
    hu[label > 0] = 60.0
    ct_dir = folder / "CT"
    datasets = write_ct_series(ct_dir, hu, grid, uid_seed="bench")
    del hu
    used = np.flatnonzero(label.reshape(SLICES, -1).any(axis=1))
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n, segment_label=f"lesion {n}",
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Neoplasm,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            tracking_uid=generate_uid(), tracking_id=f"T{n}",
        )
        for n in range(1, 6)
    ]
    seg = hd.seg.Segmentation(
        source_images=[datasets[k] for k in used], pixel_array=label[used],
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(),
        series_number=300, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer="bench", manufacturer_model_name="bench", software_versions="0",
        device_serial_number="0",
    )
    seg_path = folder / "SEG.dcm"
    seg.save_as(seg_path)
    return ct_dir, seg_path


def _peak_mb() -> float:
    """Peak resident memory of this process (VmHWM: per address space, so reset by exec,
    unlike ru_maxrss which a child inherits from its parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _preload_imports() -> None:
    """Import what each contender needs before its clock starts (SimpleITK is loaded
    whole by its import, so both sides are timed without interpreter start-up and
    imports)."""
    import highdicom  # noqa: F401
    import pydicom  # noqa: F401
    import scipy.ndimage
    import scipy.spatial  # noqa: F401

    import recist.baseline  # noqa: F401


SAMPLE = Path(__file__).resolve().parents[1] / "sample_dicom"
SAMPLE_VISITS = ("BL", "W8", "W16")


def _key_images(ct_dir: Path, seg_path: Path) -> dict[str, float]:
    """Read a study with its pixels, then render its key images 3 times (5 lesions × 3
    timepoints) and one whole slice for a viewer."""
    from imaging_io.keyimage import AnnotatedSeries

    start = time.perf_counter()
    annotated = AnnotatedSeries.read(ct_dir, seg_path)
    read = time.perf_counter() - start
    start = time.perf_counter()
    pngs = [annotated.key_image(m.label_value) for m in annotated.masks]
    one_visit = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(3):
        pngs = [annotated.key_image(m.label_value) for m in annotated.masks]
    three_visits = time.perf_counter() - start
    assert len(pngs) == 5 and all(p.startswith(b"\x89PNG") for p in pngs)
    largest = annotated.measurements[0]
    assert largest.slice_index is not None
    start = time.perf_counter()
    annotated.render(largest.slice_index, segment=largest.label_value)
    viewer = time.perf_counter() - start
    return {"seconds": read + one_visit, "read": read, "render_5": one_visit,
            "render_15": three_visits, "viewer_slice": viewer}


def _sample_key_images() -> dict[str, float]:
    """sample_dicom: 3 visits of 4 lesions, each visit read with its pixels and rendered."""
    from imaging_io.keyimage import AnnotatedSeries

    render = 0.0
    count = 0
    start = time.perf_counter()
    for visit in SAMPLE_VISITS:
        annotated = AnnotatedSeries.read(SAMPLE / visit / "CT", SAMPLE / visit / "SEG.dcm")
        begin = time.perf_counter()
        count += len([annotated.key_image(m.label_value) for m in annotated.masks])
        render += time.perf_counter() - begin
    total = time.perf_counter() - start
    assert count == 12
    return {"seconds": total, "render_12": render}


def child(mode: str, ct_dir: Path, seg_path: Path) -> dict[str, float]:
    """One timed run in this (fresh) process."""
    warnings.simplefilter("ignore")
    if mode != "sitk":
        _preload_imports()
    if mode.startswith("keyimages"):
        import imaging_io.keyimage  # noqa: F401  (Pillow and the readers)
    if mode == "sitk":
        import SimpleITK as sitk

        start = time.perf_counter()
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(ct_dir)))
        image = reader.Execute()
        elapsed = time.perf_counter() - start
        assert image.GetSize() == (COLS, ROWS, SLICES)
    elif mode == "ours":
        from imaging_io.measure import measure_study

        start = time.perf_counter()
        result = measure_study(ct_dir, seg_path)
        elapsed = time.perf_counter() - start
        assert len(result.lesions) == 5
    elif mode == "ours-pixels":
        from imaging_io.measure import measure_masks
        from imaging_io.segmentation import read_segmentation
        from imaging_io.series import read_image

        start = time.perf_counter()
        series = read_image(ct_dir, pixels=True)
        masks = read_segmentation(seg_path, series.grid,
                                  image_sop_uids=series.info.sop_instance_uids)
        result = measure_masks(series, masks)
        elapsed = time.perf_counter() - start
        assert len(result.lesions) == 5
    elif mode == "keyimages":
        return {**_key_images(ct_dir, seg_path), "peak_mb": _peak_mb()}
    elif mode == "keyimages-sample":
        return {**_sample_key_images(), "peak_mb": _peak_mb()}
    else:
        raise SystemExit(f"unknown mode {mode}")
    return {"seconds": elapsed, "peak_mb": _peak_mb()}


def run_child(mode: str, ct_dir: Path, seg_path: Path) -> dict[str, float]:
    runs = []
    for _ in range(REPEATS):
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, str(ct_dir), str(seg_path)],
            check=True, capture_output=True, text=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    # Best of the runs for every timing (each is its own step), the largest peak memory.
    return {key: (max if key == "peak_mb" else min)(r[key] for r in runs) for key in runs[0]}


def brute_force_longest(mask2d: np.ndarray, spacing: tuple[float, float]) -> float:
    """All pairs of lesion pixels of one slice (centre to centre), in blocks."""
    points = np.argwhere(mask2d) * np.array(spacing)
    best = 0.0
    for start in range(0, len(points), 1024):
        block = points[start:start + 1024]
        d2 = ((block[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1)
        best = max(best, float(d2.max()))
    return best ** 0.5


def diameter_step(ct_dir: Path, seg_path: Path, *, brute_force: bool = True
                  ) -> dict[str, float]:
    """Our diameter step vs brute force on the same placed masks."""
    from imaging_io.diameters import mask_diameters
    from imaging_io.segmentation import read_segmentation
    from imaging_io.series import read_image

    series = read_image(ct_dir)
    masks = read_segmentation(seg_path, series.grid, image_sop_uids=series.info.sop_instance_uids)
    spacing = (series.grid.spacing[1], series.grid.spacing[2])
    _preload_imports()
    start = time.perf_counter()
    ours = [mask_diameters(m.mask, spacing, 1.0) for m in masks]
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    brute = [max(brute_force_longest(s, spacing) for s in m.mask if s.any()) for m in masks] \
        if brute_force else [o.longest_diameter_mm for o in ours if o is not None]
    t_brute = time.perf_counter() - start if brute_force else float("nan")
    worst = max(abs(o.longest_diameter_mm - b) for o, b in zip(ours, brute, strict=True)
                if o is not None)
    return {"ours": t_ours, "brute": t_brute, "max_difference_mm": worst,
            "volume_ml": ours[0].voxel_count * series.grid.voxel_volume_mm3 / 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, metavar=("MODE", "CT", "SEG"))
    parser.add_argument("--data", metavar="DIR", type=Path,
                        help="keep the synthetic study in DIR (reused if present)")
    parser.add_argument("--skip-brute-force", action="store_true",
                        help="skip the (slow) brute-force comparison")
    args = parser.parse_args()
    if args.child:
        mode, ct, seg = args.child
        print(json.dumps(child(mode, Path(ct), Path(seg))))
        return
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="bench_measure_") as tmp:
        folder = args.data or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        if (folder / "SEG.dcm").exists():
            ct_dir, seg_path = folder / "CT", folder / "SEG.dcm"
        else:
            ct_dir, seg_path = generate(folder)
        size_mb = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6
        print(f"synthetic study: {SLICES} slices {ROWS}x{COLS}, 5 lesions, {size_mb:.0f} MB, "
              f"written in {time.perf_counter() - start:.1f} s")
        for f in sorted(ct_dir.iterdir()):  # warm-up: every contender reads from page cache
            f.read_bytes()
        sitk_run = run_child("sitk", ct_dir, seg_path)
        ours = run_child("ours", ct_dir, seg_path)
        ours_px = run_child("ours-pixels", ct_dir, seg_path)
        keys = run_child("keyimages", ct_dir, seg_path)
        sample = run_child("keyimages-sample", ct_dir, seg_path)
        step = diameter_step(ct_dir, seg_path, brute_force=not args.skip_brute_force)
    base = sitk_run["seconds"]
    print(f"largest lesion volume: {step['volume_ml']:.1f} mL")
    print(f"SimpleITK read series (baseline):      {base:7.3f} s  peak "
          f"{sitk_run['peak_mb']:6.0f} MB")
    print(f"recist measure end to end:             {ours['seconds']:7.3f} s  peak "
          f"{ours['peak_mb']:6.0f} MB  ratio {ours['seconds'] / base:5.2f}x baseline "
          "(target <= 1.5x)")
    print(f"  same, CT pixels decoded too:         {ours_px['seconds']:7.3f} s  peak "
          f"{ours_px['peak_mb']:6.0f} MB  ratio {ours_px['seconds'] / base:5.2f}x baseline")
    print(f"diameters (hull) for 5 lesions:        {step['ours']:7.3f} s")
    print(f"brute-force per-slice all-pairs:       {step['brute']:7.3f} s  "
          f"speed-up {step['brute'] / step['ours']:6.1f}x (target >= 50x)")
    print(f"largest |hull LD - brute-force LD|:    {step['max_difference_mm']:.2f} mm "
          "(outline midpoints vs pixel centres: up to one pixel by convention)")
    print(f"key images, 5 lesions x 3 timepoints:  {keys['render_15']:7.3f} s  "
          f"({keys['render_15'] / 15 * 1000:.1f} ms each; target <= 0.5 s)")
    print(f"  read with pixels + 5 key images:     {keys['seconds']:7.3f} s  peak "
          f"{keys['peak_mb']:6.0f} MB  ratio {keys['seconds'] / base:5.2f}x baseline "
          f"(read {keys['read']:.3f} s, render {keys['render_5']:.3f} s)")
    print(f"  one 512x512 viewer slice + outline:  {keys['viewer_slice'] * 1000:7.1f} ms")
    print(f"sample_dicom, 4 lesions x 3 visits:    {sample['seconds']:7.3f} s  "
          f"(reads included; rendering the 12 key images {sample['render_12']:.3f} s)")


if __name__ == "__main__":
    main()
