"""Key images and viewer slices (issue 12) on the synthetic demo studies of sample_dicom/.

Expected pixels are computed from what ``recist measure`` reports (the end points in
LPS) and the CT headers (ImagePositionPatient, PixelSpacing), not from the renderer's own
mapping; grey levels from the HU the generator wrote (sample_dicom/generate.py) and the
textbook window (level ± width / 2 spans black to white). Example images are written to
test-output/keyimages/ for a person to look at.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from types import ModuleType

import numpy as np
import pydicom
import pytest
from PIL import Image

from imaging_io.errors import ImagingInputError
from imaging_io.grid import Grid
from imaging_io.keyimage import (
    KEY_IMAGE_SIZE_PX,
    LONG_AXIS_COLOUR,
    OUTLINE_COLOUR,
    SHORT_AXIS_COLOUR,
    WINDOWS,
    AnnotatedSeries,
    PixelBox,
    Window,
    key_image,
    render_slice,
    window_for_site,
)
from imaging_io.masks import LesionMask
from imaging_io.measure import measure_lesion, measure_study
from imaging_io.series import ImageSeries

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_dicom"
OUTPUT = ROOT / "test-output" / "keyimages"
LESIONS = ("T1", "T2", "T3", "NT1")


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sample_generate", SAMPLE / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = _load_generator()


@pytest.fixture(scope="module")
def w8() -> AnnotatedSeries:
    return AnnotatedSeries.read(SAMPLE / "W8" / "CT", SAMPLE / "W8" / "SEG.dcm")


@pytest.fixture(scope="module")
def w8_json() -> dict:
    """What `recist measure` says about W8 (the contract the callipers are drawn from)."""
    result = measure_study(SAMPLE / "W8" / "CT", SAMPLE / "W8" / "SEG.dcm")
    return {le["tracking_id"]: le for le in result.to_dict()["lesions"]}


@pytest.fixture(scope="module")
def header() -> pydicom.Dataset:
    ds = pydicom.dcmread(SAMPLE / "W8" / "CT" / "CT0000.dcm", stop_before_pixels=True)
    # The pixel arithmetic below assumes the sample's plain axial orientation.
    assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    return ds


def _rgb(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB"))


def _is(rgb: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(rgb == np.array(colour, dtype=np.uint8), axis=-1)


def _pixel_of(point_lps: list[float], ds: pydicom.Dataset) -> tuple[float, float]:
    """(row, column) of a patient point on the sample's axial grid, from the header."""
    x0, y0, _ = (float(v) for v in ds.ImagePositionPatient)
    dr, dc = (float(v) for v in ds.PixelSpacing)
    return (point_lps[1] - y0) / dr, (point_lps[0] - x0) / dc


def _screen(pixel: tuple[float, float], box: PixelBox, scale: float) -> tuple[float, float]:
    """Output (x, y) of a (row, column) in a crop scaled by ``scale`` (square pixels,
    standard axial orientation: no flip)."""
    row, col = pixel
    return (col - box.col_start + 0.5) * scale - 0.5, (row - box.row_start + 0.5) * scale - 0.5


def _textbook_grey(hu: float, window: Window) -> float:
    low = window.level - window.width / 2
    return float(np.clip((hu - low) / window.width * 255, 0, 255))


# --- the PNG ----------------------------------------------------------------------------


def test_key_image_is_a_png_of_the_crop_times_the_scale(w8: AnnotatedSeries) -> None:
    box = w8.key_image_box("T1")
    image = Image.open(io.BytesIO(w8.key_image("T1", scale=6)))
    assert image.format == "PNG" and image.mode == "RGB"
    assert image.size == (box.columns * 6, box.rows * 6)


def test_key_image_by_default_has_its_longer_side_at_the_key_image_size(
    w8: AnnotatedSeries,
) -> None:
    for lesion in LESIONS:
        assert max(Image.open(io.BytesIO(w8.key_image(lesion))).size) == KEY_IMAGE_SIZE_PX


def test_key_image_crop_keeps_the_margin_around_the_lesion_on_its_measured_slice(
    w8: AnnotatedSeries, w8_json: dict
) -> None:
    i = w8.segment("T1")
    mask = w8.masks[i]
    k = w8_json["T1"]["slice_index"]
    rr, cc = np.nonzero(mask.mask[k - mask.offset[0]])
    rows = (mask.offset[1] + rr.min() - 0.5, mask.offset[1] + rr.max() + 0.5)
    cols = (mask.offset[2] + cc.min() - 0.5, mask.offset[2] + cc.max() + 0.5)
    box = w8.key_image_box("T1", margin_mm=20)
    pixel_mm = 2.0
    assert box.row_start - 0.5 <= rows[0] - 20 / pixel_mm + 1
    assert box.row_stop - 0.5 >= rows[1] + 20 / pixel_mm - 1
    assert box.col_start - 0.5 <= cols[0] - 20 / pixel_mm + 1
    assert box.col_stop - 0.5 >= cols[1] + 20 / pixel_mm - 1
    assert box.rows == box.columns  # square in mm (square pixels here)


def test_key_image_of_files_equals_that_of_the_annotated_series(w8: AnnotatedSeries) -> None:
    from_files = key_image(SAMPLE / "W8" / "CT", SAMPLE / "W8" / "SEG.dcm", "T2", scale=4)
    assert from_files == w8.key_image("T2", scale=4)
    assert w8.key_image("lung lesion", scale=4) == from_files
    assert w8.key_image(2, scale=4) == from_files


# --- the callipers ----------------------------------------------------------------------


@pytest.mark.parametrize("lesion", LESIONS)
@pytest.mark.parametrize(("axis", "colour"), [("long_axis", LONG_AXIS_COLOUR),
                                              ("short_axis", SHORT_AXIS_COLOUR)])
def test_calliper_colour_lies_along_the_axis_measure_reports(
    w8: AnnotatedSeries, w8_json: dict, header: pydicom.Dataset, lesion: str, axis: str,
    colour: tuple[int, int, int],
) -> None:
    scale = 8
    rgb = _rgb(w8.key_image(lesion, scale=scale))
    box = w8.key_image_box(lesion)
    ends = [_screen(_pixel_of(w8_json[lesion][axis][e], header), box, scale)
            for e in ("from", "to")]
    (x0, y0), (x1, y1) = ends
    hits = 0
    samples = np.linspace(0.05, 0.95, 40)
    for t in samples:
        x, y = round(x0 + t * (x1 - x0)), round(y0 + t * (y1 - y0))
        # Lines are drawn 2 px wide without anti-aliasing: the colour is within a pixel.
        hits += bool(_is(rgb[y - 1:y + 2, x - 1:x + 2], colour).any())
    assert hits == len(samples)
    # The ends: the calliper's tick is there, the line stops there (no colour beyond).
    for (xa, ya), (xb, yb) in ((ends[0], ends[1]), (ends[1], ends[0])):
        assert _is(rgb[round(ya) - 1:round(ya) + 2, round(xa) - 1:round(xa) + 2], colour).any()
        d = np.array([xa - xb, ya - yb]) / np.hypot(xa - xb, ya - yb)
        bx, by = np.array([xa, ya]) + 12 * d  # beyond the tick, short of any label's gap
        assert not _is(rgb[round(by) - 1:round(by) + 2, round(bx) - 1:round(bx) + 2],
                       colour).any()


def test_callipers_are_labelled_with_the_json_values(w8: AnnotatedSeries, w8_json: dict) -> None:
    """The label texts are in the colour of their calliper: each label adds calliper
    pixels away from its line (the text) — and the value printed is the JSON's."""
    measured = w8.measurements[w8.segment("T1")]
    assert f"{measured.longest_diameter_mm:.1f}" == f"{w8_json['T1']['longest_diameter_mm']}"
    assert f"{measured.short_axis_mm:.1f}" == f"{w8_json['T1']['short_axis_mm']:.1f}"
    with_labels = _is(_rgb(w8.key_image("T1", scale=8)), LONG_AXIS_COLOUR).sum()
    line_only = _is(_rgb(render_slice(
        w8.series, measured.slice_index, outline_mask=w8.masks[0], crop=w8.key_image_box("T1"),
        scale=8, annotate=False)), LONG_AXIS_COLOUR).sum()
    assert line_only == 0 and with_labels > 0


# --- the outline ------------------------------------------------------------------------


@pytest.mark.parametrize("lesion", LESIONS)
def test_outline_colour_surrounds_the_lesion_and_nothing_far_from_it(
    w8: AnnotatedSeries, w8_json: dict, lesion: str
) -> None:
    scale = 8
    rgb = _rgb(w8.key_image(lesion, scale=scale))
    box = w8.key_image_box(lesion)
    i = w8.segment(lesion)
    mask = w8.masks[i]
    k = w8_json[lesion]["slice_index"]
    plane = mask.mask[k - mask.offset[0]]
    rr, cc = np.nonzero(plane)
    top, left = _screen((mask.offset[1] + rr.min() - 0.5, mask.offset[2] + cc.min() - 0.5),
                        box, scale)[::-1]
    bottom, right = _screen((mask.offset[1] + rr.max() + 0.5, mask.offset[2] + cc.max() + 0.5),
                            box, scale)[::-1]
    ys, xs = np.nonzero(_is(rgb, OUTLINE_COLOUR))
    assert len(xs) > 0
    slack = 2  # line width
    assert xs.min() >= left - slack and xs.max() <= right + slack
    assert ys.min() >= top - slack and ys.max() <= bottom + slack
    # ... and it reaches each side of the lesion's outline box: it surrounds it.
    assert xs.min() <= left + slack and xs.max() >= right - slack
    assert ys.min() <= top + slack and ys.max() >= bottom - slack
    # Inside the lesion, away from the outline, the image is the lesion's grey.
    centre = _screen((mask.offset[1] + rr.mean(), mask.offset[2] + cc.mean()), box, scale)
    assert not _is(rgb[round(centre[1]) - 3:round(centre[1]) + 4,
                       round(centre[0]) - 3:round(centre[0]) + 4], OUTLINE_COLOUR).any()


def test_viewer_draws_the_outline_on_every_slice_of_the_lesion_and_callipers_on_its_measured_one(
    w8: AnnotatedSeries, w8_json: dict
) -> None:
    measured_slice = w8_json["T1"]["slice_index"]
    mask = w8.masks[w8.segment("T1")]
    slices = range(mask.offset[0], mask.offset[0] + mask.mask.shape[0])
    assert len(slices) > 1
    for k in slices:
        rgb = _rgb(w8.render(k, segment="T1", scale=2))
        assert _is(rgb, OUTLINE_COLOUR).any(), k
        on_measured = k == measured_slice
        assert _is(rgb, LONG_AXIS_COLOUR).any() == on_measured, k
        assert _is(rgb, SHORT_AXIS_COLOUR).any() == on_measured, k
    outside = next(k for k in range(w8.slice_count) if k not in slices)
    assert not _is(_rgb(w8.render(outside, segment="T1")), OUTLINE_COLOUR).any()
    assert not _is(_rgb(w8.render(measured_slice)), OUTLINE_COLOUR).any()


# --- windows ----------------------------------------------------------------------------


@pytest.mark.parametrize(("site", "preset"), [
    ("lung", "lung"), ("lung lesion", "lung"), ("Left lower lobe of lung", "lung"),
    ("pulmonary nodule", "lung"), ("bone", "bone"), ("bone lesion", "bone"),
    ("bone, lytic with soft-tissue component", "bone"), ("liver", "liver"),
    ("liver lesion", "liver"), ("hepatic segment VII", "liver"), ("lymph node", "soft tissue"),
    ("hilar lymph node of the lung", "soft tissue"), ("adrenal", "soft tissue"),
    ("peritoneum", "soft tissue"), ("", "soft tissue"),
])
def test_window_for_site_chooses_the_preset_of_the_site(site: str, preset: str) -> None:
    assert window_for_site(site) == preset


def test_presets_are_the_common_radiology_windows() -> None:
    assert {name: (w.width, w.level) for name, w in WINDOWS.items()} == {
        "soft tissue": (400, 40), "lung": (1500, -600), "bone": (1800, 400),
        "liver": (150, 90)}


@pytest.mark.parametrize("preset", sorted(WINDOWS))
def test_window_maps_the_known_hu_of_the_phantom_to_its_grey(
    w8: AnnotatedSeries, header: pydicom.Dataset, preset: str
) -> None:
    """On the unscaled slice (2 mm pixels, scale 1: no resampling) the grey of a pixel of
    known HU is the textbook window's (to the rounding of DICOM's ``w - 1`` form)."""
    window = WINDOWS[preset]
    rgb = _rgb(w8.render(7, window=preset, annotate=False))
    hu_of = GENERATOR.lesion_hu()
    # A pixel inside each lesion (its centre, from the generator), the liver, the spine
    # (beside the bone lesion), the air outside the body.
    points = {lesion: centre for lesion, (_, centre, *_) in GENERATOR.LESIONS.items()}
    points |= {"liver": (-90.0, 45.0, 0.0), "spine": (-10.0, 78.0, 0.0),
               "air": (-150.0, -150.0, 0.0)}
    expected_hu = {**hu_of, "liver": 60.0, "spine": 700.0, "air": -1000.0}
    for name, point in points.items():
        row, col = (round(v) for v in _pixel_of(list(point), header))
        assert w8.series.array[7, row, col] == expected_hu[name], name
        grey = rgb[row, col]
        assert grey[0] == grey[1] == grey[2], name
        assert abs(int(grey[0]) - _textbook_grey(expected_hu[name], window)) <= 1, name


def test_a_window_preset_changes_the_grey_of_the_liver_lesion_as_expected(
    w8: AnnotatedSeries, header: pydicom.Dataset
) -> None:
    row, col = (round(v) for v in _pixel_of([-60.0, 25.0, 0.0], header))
    grey = {p: int(_rgb(w8.render(7, window=p, annotate=False))[row, col, 0]) for p in WINDOWS}
    # 20 HU: mid-grey in soft tissue, near black in the liver window (centred on enhanced
    # parenchyma at 90 HU), light in the lung window, dark in the bone window.
    assert grey == {"soft tissue": 115, "liver": 9, "lung": 233, "bone": 74}
    explicit = _rgb(w8.render(7, window=Window(100, 20), annotate=False))[row, col, 0]
    assert abs(int(explicit) - 128) <= 1  # the level itself is mid-grey


def test_key_image_window_follows_the_site_unless_given(w8: AnnotatedSeries) -> None:
    assert w8.key_image("T2") == w8.key_image("T2", window="lung")
    assert w8.key_image("T2", site="liver") == w8.key_image("T2", window="liver")
    assert w8.key_image("T2", window=Window(1500, -600)) == w8.key_image("T2")
    assert w8.key_image("T3") == w8.key_image("T3", window="soft tissue")


# --- orientation and proportions -------------------------------------------------------


def test_axial_slice_shows_the_patients_right_on_the_left_and_anterior_at_the_top(
    w8: AnnotatedSeries,
) -> None:
    rgb = _rgb(w8.render(7, segment="T1", annotate=False))
    height, width, _ = rgb.shape
    ys, xs = np.nonzero(rgb[..., 0] == 255)  # the spine (700 HU) is white in soft tissue
    ys, xs = ys[(rgb[ys, xs] == 255).all(axis=-1)], xs[(rgb[ys, xs] == 255).all(axis=-1)]
    assert ys.mean() > height * 0.6 and abs(xs.mean() - width / 2) < 5  # posterior, midline
    ys, xs = np.nonzero(_is(rgb, OUTLINE_COLOUR))  # the liver lesion, x = -60 mm (right)
    assert xs.mean() < width * 0.4


def _reoriented(series: ImageSeries, masks: tuple[LesionMask, ...], *, transpose: bool,
                flip_rows: bool, flip_cols: bool) -> tuple[ImageSeries, list[LesionMask]]:
    """The same patient stored another way: rows/columns swapped and/or reversed."""
    assert series.array is not None
    affine = series.grid.affine.copy()
    array = series.array
    shape = series.grid.shape

    def full(mask: LesionMask) -> np.ndarray:
        out = np.zeros(shape, dtype=bool)
        k, r, c = mask.offset
        out[k:k + mask.mask.shape[0], r:r + mask.mask.shape[1], c:c + mask.mask.shape[2]] = \
            mask.mask
        return out

    fulls = [full(m) for m in masks]
    if transpose:
        array = array.transpose(0, 2, 1)
        fulls = [f.transpose(0, 2, 1) for f in fulls]
        affine[:, [1, 2]] = affine[:, [2, 1]]
    for axis, flip in ((1, flip_rows), (2, flip_cols)):
        if flip:
            n = array.shape[axis]
            affine[:3, 3] += (n - 1) * affine[:3, axis]
            affine[:3, axis] *= -1
            array = np.flip(array, axis=axis)
            fulls = [np.flip(f, axis=axis) for f in fulls]
    grid = Grid(tuple(array.shape), affine, series.grid.frame_of_reference_uid)
    moved = ImageSeries(series.path, grid, series.slice_thickness_mm, series.info,
                        np.ascontiguousarray(array))
    return moved, [LesionMask.from_full(m.label, m.label_value, f, tracking_id=m.tracking_id,
                                        nodal=m.nodal) for m, f in zip(masks, fulls, strict=True)]


@pytest.mark.parametrize(("transpose", "flip_rows", "flip_cols"), [
    (False, True, False), (False, False, True), (False, True, True), (True, False, False),
    (True, True, True),
])
def test_slices_stored_in_another_order_render_the_same_image(
    w8: AnnotatedSeries, transpose: bool, flip_rows: bool, flip_cols: bool
) -> None:
    moved, masks = _reoriented(w8.series, w8.masks, transpose=transpose, flip_rows=flip_rows,
                               flip_cols=flip_cols)
    i = w8.segment("T1")
    measured = w8.measurements[i]
    assert measured.slice_index is not None
    # The measurement of the moved masks has the same end points in the patient frame.
    again = measure_lesion(masks[i], moved.grid, slice_thickness_mm=5.0, modality="CT")
    assert again.longest_diameter_mm == pytest.approx(measured.longest_diameter_mm)
    expected = _rgb(render_slice(w8.series, measured.slice_index, outline_mask=w8.masks[i],
                                 axes=measured, scale=2))
    got = _rgb(render_slice(moved, measured.slice_index, outline_mask=masks[i], axes=measured,
                            scale=2))
    assert got.shape == expected.shape
    # Identical but for the odd pixel where the same line is rasterised from the other end.
    assert (got != expected).any(axis=-1).mean() < 0.002


def test_non_square_pixels_are_shown_in_the_patients_proportions() -> None:
    """Rows 1.0 mm apart, columns 0.5 mm: a disc of 24 mm is as wide as it is high."""
    rows, cols = 40, 80
    affine = np.eye(4)
    affine[:3, 0] = (0.0, 0.0, 2.0)
    affine[:3, 1] = (0.0, 1.0, 0.0)
    affine[:3, 2] = (0.5, 0.0, 0.0)
    grid = Grid((1, rows, cols), affine)
    yy, xx = np.mgrid[0:rows, 0:cols]
    disc = ((yy - 19.5) * 1.0) ** 2 + ((xx - 39.5) * 0.5) ** 2 <= 12.0**2
    array = np.where(disc, 60.0, -100.0).astype(np.float32)[None]
    series = ImageSeries("phantom.nii", grid, 2.0, array=array)
    lesion = LesionMask.from_full("disc", 1, disc[None])
    measured = measure_lesion(lesion, grid, slice_thickness_mm=2.0, modality="CT")
    rgb = _rgb(render_slice(series, 0, outline_mask=lesion, axes=measured, scale=1.0))
    assert rgb.shape[:2] == (80, 80)  # 40 rows x 1 mm and 80 columns x 0.5 mm at 2 px/mm
    ys, xs = np.nonzero(_is(rgb, OUTLINE_COLOUR) | _is(rgb, LONG_AXIS_COLOUR)
                        | _is(rgb, SHORT_AXIS_COLOUR))
    ys, xs = ys[(abs(ys - 40) < 30) & (abs(xs - 40) < 30)], xs[(abs(ys - 40) < 30)
                                                             & (abs(xs - 40) < 30)]
    assert abs((xs.max() - xs.min()) - (ys.max() - ys.min())) <= 3
    assert abs((xs.max() - xs.min()) - 2 * measured.longest_diameter_mm) <= 4


# --- refusals ---------------------------------------------------------------------------


def test_an_unknown_lesion_is_refused_naming_it_and_the_segmentation(
    w8: AnnotatedSeries,
) -> None:
    with pytest.raises(ImagingInputError, match=r"W8/SEG\.dcm: has no segment 'T9' \(its "
                       r"segments: 1 'liver lesion' T1, 2 'lung lesion' T2, 3 'lymph node' T3, "
                       r"4 'bone lesion' NT1\)"):
        w8.key_image("T9")
    with pytest.raises(ImagingInputError, match=r"SEG\.dcm: has no segment 7 "):
        key_image(SAMPLE / "W8" / "CT", SAMPLE / "W8" / "SEG.dcm", 7)
    with pytest.raises(ImagingInputError, match="has no segment 'spleen'"):
        w8.render(7, segment="spleen")


@pytest.mark.parametrize("k", [14, -1, 100])
def test_a_slice_out_of_range_is_refused_naming_the_series_and_its_slices(
    w8: AnnotatedSeries, k: int
) -> None:
    with pytest.raises(ImagingInputError, match=rf"W8/CT: has no slice {k}: its 14 slices "
                       r"are numbered 0 to 13"):
        w8.render(k, segment="T1")


def test_a_crop_outside_the_slice_is_refused(w8: AnnotatedSeries) -> None:
    with pytest.raises(ImagingInputError, match=r"W8/CT: crop rows 150:170, columns 0:20 is "
                       r"not inside its 160 x 160 slices"):
        w8.render(7, crop=PixelBox(150, 170, 0, 20))


def test_an_unknown_window_or_a_bad_scale_is_refused(w8: AnnotatedSeries) -> None:
    with pytest.raises(ValueError, match="unknown window preset 'brain'; presets: soft "
                       "tissue, lung, bone, liver"):
        w8.render(7, window="brain")
    with pytest.raises(ValueError, match="scale 0 is not a positive number"):
        w8.render(7, scale=0)
    with pytest.raises(ValueError, match="width must be at least 1"):
        Window(0, 40)


def test_a_series_read_without_pixels_is_taken_with_its_pixels_read(w8: AnnotatedSeries) -> None:
    from imaging_io.series import read_image

    header_only = read_image(SAMPLE / "W8" / "CT")
    assert header_only.array is None
    with pytest.raises(ImagingInputError, match="was read without its pixels"):
        render_slice(header_only, 7)
    assert key_image(header_only, SAMPLE / "W8" / "SEG.dcm", "T3") == w8.key_image("T3")


# --- examples for a person to look at ---------------------------------------------------


def test_example_key_images_and_viewer_slices_are_written_for_review() -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for visit in ("BL", "W8", "W16"):
        annotated = AnnotatedSeries.read(SAMPLE / visit / "CT", SAMPLE / visit / "SEG.dcm")
        for lesion in LESIONS:
            png = annotated.key_image(lesion)
            assert max(Image.open(io.BytesIO(png)).size) == KEY_IMAGE_SIZE_PX
            (OUTPUT / f"{visit}_{lesion}.png").write_bytes(png)
        measured = annotated.measurements[annotated.segment("T1")]
        assert measured.slice_index is not None
        (OUTPUT / f"{visit}_viewer_slice{measured.slice_index}_T1.png").write_bytes(
            annotated.render(measured.slice_index, segment="T1", scale=3))
        (OUTPUT / f"{visit}_viewer_slice{measured.slice_index}_T2_lung.png").write_bytes(
            annotated.render(measured.slice_index, segment="T2", window="lung", scale=3))
