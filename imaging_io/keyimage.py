"""Key images and slices as PNG: a slice windowed to grey, a lesion's outline and its RECIST
callipers drawn over it (issue 12).

A key image is what a reader checks a measurement against and saves in PACS: the axial
slice on which the long axis lies (``slice_index`` of ``recist measure``), cropped around
the lesion with anatomy around it, in the window of the lesion's site, with the
segmentation's outline and both callipers labelled in mm. :func:`key_image` renders one
from files; :class:`AnnotatedSeries` reads a series and its segmentation once and renders
any slice for a viewer (:meth:`AnnotatedSeries.render`) and every key image
(:meth:`AnnotatedSeries.key_image`).

Display conventions
-------------------
- Radiological convention for axial slices, whatever order rows and columns are stored
  in: the patient's right on the image's left, anterior at the top (the slice seen from
  the feet). The slice is transposed and flipped to it from the grid's direction cosines.
- Pixels are square on screen: a slice with non-square pixels is stretched along its
  coarser axis. ``scale`` counts output pixels per image pixel of the finer spacing.
- Grey levels: DICOM's linear VOI LUT function of a window's width and centre ("level"),
  PS3.3 C.11.2.1.2.1, to 8 bits, before resampling (bilinear) to the output size.
- The outline is the one the diameters are measured on (:mod:`imaging_io.diameters`): the
  marching-squares contour at 0.5 through the midpoints of pixel edges, so the callipers'
  ends touch it. The callipers are drawn from the end points in patient coordinates (LPS)
  that ``recist measure`` reports, mapped back to pixels by the grid's affine
  (:meth:`imaging_io.grid.Grid.to_index`).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont, features

from imaging_io.diameters import outline_segments
from imaging_io.errors import ImagingInputError, refusing
from imaging_io.grid import Grid
from imaging_io.masks import LesionMask
from imaging_io.measure import LesionMeasurement, measure_masks
from imaging_io.segmentation import FRACTIONAL_THRESHOLD, read_segmentation
from imaging_io.series import ImageSeries, read_image

__all__ = [
    "BONE", "KEY_IMAGE_SIZE_PX", "LIVER", "LUNG", "SOFT_TISSUE", "WINDOWS", "AnnotatedSeries",
    "PixelBox", "Window", "key_image", "render_slice", "window_for_site",
]

Colour = tuple[int, int, int]
OUTLINE_COLOUR: Colour = (255, 48, 48)  # the segmentation's outline: red
LONG_AXIS_COLOUR: Colour = (255, 220, 0)  # the long-axis calliper and its label: yellow
SHORT_AXIS_COLOUR: Colour = (0, 210, 255)  # the short-axis calliper and its label: cyan
TEXT_COLOUR: Colour = (235, 235, 235)  # orientation letters, window, caption

# The longer side of a key image when no scale is given, in output pixels: large enough
# for the labels to be read beside a lesion of a few pixels, small enough for a report.
KEY_IMAGE_SIZE_PX = 384
# Context around the lesion in a key image, in mm on each side (the reader's "margin").
KEY_IMAGE_MARGIN_MM = 20.0


@dataclass(frozen=True)
class Window:
    """A display window in the image's values (HU for CT): ``width`` and ``level``
    (DICOM Window Width and Window Center)."""

    width: float
    level: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.width) and math.isfinite(self.level)) or self.width < 1:
            raise ValueError(f"window width {self.width} / level {self.level}: the width "
                             "must be at least 1 (DICOM PS3.3 C.11.2.1.2)")

    @property
    def name(self) -> str:
        """``"W400 L40"``, as viewers print it."""
        return f"W{self.width:g} L{self.level:g}"

    def to_grey(self, values: NDArray[np.floating] | NDArray[np.integer]) -> NDArray[np.uint8]:
        """Grey levels 0–255 by DICOM's linear VOI LUT function (PS3.3 C.11.2.1.2.1):
        ``((x - (c - 0.5)) / (w - 1) + 0.5) * 255``, clipped; a width of 1 is a threshold."""
        x = np.asarray(values, dtype=np.float32)
        if self.width == 1:
            return np.asarray(np.where(x > self.level - 0.5, 255, 0), dtype=np.uint8)
        grey = ((x - (self.level - 0.5)) / (self.width - 1) + 0.5) * 255.0
        return np.asarray(np.clip(np.rint(grey), 0, 255), dtype=np.uint8)


SOFT_TISSUE, LUNG, BONE, LIVER = "soft tissue", "lung", "bone", "liver"
# Common CT presets in HU. Soft tissue W400/L40, lung W1500/L-600 and liver W150/L90 are
# the OHIF viewer's default CT presets (OHIF/Viewers, extensions/cornerstone/.../
# defaultWindowLevelPresets.ts); bone W1800/L400 is Radiopaedia's bone window ("Windowing
# (CT)"; OHIF's own bone preset is the wider W2500/L480).
WINDOWS: Mapping[str, Window] = MappingProxyType({
    SOFT_TISSUE: Window(400, 40),
    LUNG: Window(1500, -600),
    BONE: Window(1800, 400),
    LIVER: Window(150, 90),
})

# Words of a lesion's site (or segment label) and the preset they call for, first match
# wins: a node is judged in the soft-tissue window wherever it lies ("hilar lymph node").
_SITE_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (SOFT_TISSUE, re.compile(r"\b(lymph|nodes?|nodal)\b")),
    (LUNG, re.compile(r"\b(lungs?|pulmonary)\b")),
    (BONE, re.compile(r"\b(bones?|osseous|skeletal|vertebral?|ribs?)\b")),
    (LIVER, re.compile(r"\b(liver|hepatic)\b")),
)


def window_for_site(site: str) -> str:
    """The name of the window preset (a key of :data:`WINDOWS`) for a lesion's site.

    Lung → ``"lung"``, bone → ``"bone"``, liver → ``"liver"``, anything else (lymph nodes
    included, wherever they lie) → ``"soft tissue"``. The site may be a case's lesion
    site (``"liver"``) or a segment label (``"lung lesion"``); case is ignored.
    """
    text = site.casefold()
    for preset, words in _SITE_WORDS:
        if words.search(text):
            return preset
    return SOFT_TISSUE


def _window(window: str | Window) -> Window:
    if isinstance(window, Window):
        return window
    try:
        return WINDOWS[window]
    except KeyError:
        raise ValueError(f"unknown window preset {window!r}; presets: "
                         f"{', '.join(WINDOWS)}, or give a Window(width, level)") from None


@dataclass(frozen=True)
class PixelBox:
    """A rectangle of a slice: rows ``row_start:row_stop`` and columns
    ``col_start:col_stop`` (half-open, grid pixel indices as stored)."""

    row_start: int
    row_stop: int
    col_start: int
    col_stop: int

    def __post_init__(self) -> None:
        if self.row_stop <= self.row_start or self.col_stop <= self.col_start:
            raise ValueError(f"{self} is empty")

    @property
    def rows(self) -> int:
        return self.row_stop - self.row_start

    @property
    def columns(self) -> int:
        return self.col_stop - self.col_start


@dataclass(frozen=True)
class _Display:
    """How the stored pixels of a box land on the output image: turned to the
    radiological convention and scaled to square pixels."""

    box: PixelBox
    transpose: bool  # stored rows run left-right on screen
    flip_x: bool
    flip_y: bool
    size: tuple[int, int]  # output (width, height)

    @classmethod
    def of(cls, grid: Grid, box: PixelBox, scale: float) -> _Display:
        rows_dir, cols_dir = (grid.affine[:3, a] / np.linalg.norm(grid.affine[:3, a])
                              for a in (1, 2))
        # Screen x runs to the patient's left (+x of LPS), screen y to posterior (+y).
        transpose = bool(abs(rows_dir[0]) > abs(cols_dir[0]))
        across, down = (rows_dir, cols_dir) if transpose else (cols_dir, rows_dir)
        _, dr, dc = grid.spacing
        finer = min(dr, dc)
        (n_x, mm_x), (n_y, mm_y) = ((box.rows, dr), (box.columns, dc)) if transpose else \
            ((box.columns, dc), (box.rows, dr))
        size = (max(1, round(n_x * scale * mm_x / finer)),
                max(1, round(n_y * scale * mm_y / finer)))
        return cls(box, transpose, bool(across[0] < 0), bool(down[1] < 0), size)

    def orient(self, pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """The box's pixels ``[row, column]`` as seen on screen ``[y, x]``."""
        out = pixels.T if self.transpose else pixels
        if self.flip_x:
            out = out[:, ::-1]
        if self.flip_y:
            out = out[::-1, :]
        return np.ascontiguousarray(out)

    def to_screen(self, points: NDArray[np.float64]) -> NDArray[np.float64]:
        """Continuous ``(row, column)`` grid indices ``(n, 2)`` (integers at pixel centres)
        to output drawing coordinates ``(x, y)`` (integers at pixel centres)."""
        rel = np.asarray(points, dtype=np.float64) - (self.box.row_start, self.box.col_start)
        h, v = (rel[:, 0], rel[:, 1]) if self.transpose else (rel[:, 1], rel[:, 0])
        n_x, n_y = (self.box.rows, self.box.columns) if self.transpose else \
            (self.box.columns, self.box.rows)
        if self.flip_x:
            h = n_x - 1 - h
        if self.flip_y:
            v = n_y - 1 - v
        # Pillow resamples pixel centres (i + 0.5) / n to (j + 0.5) / size.
        x = (h + 0.5) * self.size[0] / n_x - 0.5
        y = (v + 0.5) * self.size[1] / n_y - 0.5
        return np.column_stack([x, y])


Box = tuple[float, float, float, float]  # left, top, right, bottom in output pixels


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's own default font (Aileron, embedded in Pillow; the bitmap font without
    # FreeType): nothing is downloaded or looked up on the system.
    if features.check("freetype2"):
        return ImageFont.load_default(size)
    return ImageFont.load_default()


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


class _Canvas:
    """The output image and what is already drawn on it (for placing labels)."""

    def __init__(self, image: Image.Image, display: _Display) -> None:
        self.image = image
        self.display = display
        self.draw = ImageDraw.Draw(image)
        width, height = image.size
        self.line_width = 2 if max(width, height) >= 256 else 1
        self.font_size = int(min(16, max(10, round(min(width, height) / 24))))
        self.font = _font(self.font_size)
        self.stroke = max(1, self.font_size // 8)
        self.taken: list[Box] = []
        self.lines: list[NDArray[np.float64]] = []

    def outline(self, lesion: LesionMask, slice_index: int) -> None:
        k = slice_index - lesion.offset[0]
        if lesion.mask.size == 0 or not 0 <= k < lesion.mask.shape[0]:
            return
        segments = outline_segments(lesion.mask[k]) + lesion.offset[1:]
        screen = self.display.to_screen(segments.reshape(-1, 2)).reshape(-1, 4)
        for x0, y0, x1, y1 in screen.tolist():
            self.draw.line([(x0, y0), (x1, y1)], fill=OUTLINE_COLOUR, width=self.line_width)

    def calliper(self, ends: NDArray[np.float64], colour: Colour) -> None:
        """A line between two screen points with a tick across each end."""
        (x0, y0), (x1, y1) = ends.tolist()
        length = math.hypot(x1 - x0, y1 - y0) or 1.0
        nx, ny = (y0 - y1) / length, (x1 - x0) / length  # unit normal
        tick = 2 + 2 * self.line_width
        self.draw.line([(x0, y0), (x1, y1)], fill=colour, width=self.line_width)
        for x, y in ((x0, y0), (x1, y1)):
            self.draw.line([(x - nx * tick, y - ny * tick), (x + nx * tick, y + ny * tick)],
                           fill=colour, width=self.line_width)
        self.lines.append(ends)

    def text(self, xy: tuple[float, float], text: str, colour: Colour) -> None:
        self.draw.text(xy, text, fill=colour, font=self.font, stroke_width=self.stroke,
                       stroke_fill=(0, 0, 0))

    def text_size(self, text: str) -> tuple[float, float]:
        left, top, right, bottom = self.draw.textbbox((0, 0), text, font=self.font,
                                                      stroke_width=self.stroke)
        return right - left, bottom - top

    def _free(self, box: Box) -> bool:
        width, height = self.image.size
        if box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height:
            return False
        if any(_overlaps(box, other) for other in self.taken):
            return False
        pad = self.line_width + 1
        grown = (box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad)
        for (x0, y0), (x1, y1) in (line.tolist() for line in self.lines):
            steps = max(2, int(math.hypot(x1 - x0, y1 - y0) / 2))
            t = np.linspace(0.0, 1.0, steps)
            xs, ys = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
            if np.any((xs > grown[0]) & (xs < grown[2]) & (ys > grown[1]) & (ys < grown[3])):
                return False
        return True

    def place(self, text: str, colour: Colour, *at: tuple[float, float]) -> None:
        """Text with its top-left corner at the first of ``at`` where it is free (else the
        last), reserved against later text."""
        w, h = self.text_size(text)
        x, y = next((xy for xy in at if self._free((xy[0], xy[1], xy[0] + w, xy[1] + h))),
                    at[-1])
        self.text((x, y), text, colour)
        self.taken.append((x, y, x + w, y + h))

    def label(self, ends: NDArray[np.float64], text: str, colour: Colour) -> None:
        """A calliper's label beyond one of its ends, on its line's extension, where it
        covers no other text nor calliper; else the first free corner (else clamped into the
        image beyond its first end)."""
        w, h = self.text_size(text)
        gap = 4 + 2 * self.line_width
        candidates = []
        for end, other in ((ends[1], ends[0]), (ends[0], ends[1])):
            d = end - other
            d = d / (np.linalg.norm(d) or 1.0)
            centre = end + d * (gap + abs(d[0]) * w / 2 + abs(d[1]) * h / 2)
            candidates.append((centre[0] - w / 2, centre[1] - h / 2))
        width, height = self.image.size
        m, row = 3.0, h + 3.0
        corners = [(m, m + row), (width - w - m, m + row), (width - w - m, height - 2 * row),
                   (m, height - 2 * row)]
        x, y = candidates[0]
        clamped = (min(max(x, 0.0), width - w), min(max(y, 0.0), height - h))
        self.place(text, colour, *candidates, *corners, clamped)

    def orientation_and_window(self, window: Window, caption: str | None) -> None:
        """Orientation letters at the middle of each edge (R left, A top: radiological
        convention), the window bottom left, the caption top left."""
        width, height = self.image.size
        m = 3.0
        for letter, (fx, fy) in (("A", (0.5, 0.0)), ("P", (0.5, 1.0)), ("R", (0.0, 0.5)),
                                 ("L", (1.0, 0.5))):
            w, h = self.text_size(letter)
            x = min(max(fx * width - w / 2, m), width - w - m)
            y = min(max(fy * height - h / 2, m), height - h - m)
            self.place(letter, TEXT_COLOUR, (x, y))
        w, h = self.text_size(window.name)
        self.place(window.name, TEXT_COLOUR, (m, height - h - m), (m, height - 2 * (h + m)))
        if caption:
            w, h = self.text_size(caption)
            self.place(caption, TEXT_COLOUR, (m, m), (m, 2 * m + h))


def _slice_pixels(series: ImageSeries, slice_index: int) -> NDArray[np.float32]:
    if series.array is None:
        raise ImagingInputError(series.path, "was read without its pixels: read it with "
                                "read_image(..., pixels=True) to render it")
    count = series.array.shape[0]
    if not 0 <= slice_index < count:
        raise ImagingInputError(series.path, f"has no slice {slice_index}: its {count} "
                                f"slices are numbered 0 to {count - 1}")
    return np.asarray(series.array[slice_index], dtype=np.float32)


def _as_masks(outline_mask: LesionMask | Sequence[LesionMask] | None) -> list[LesionMask]:
    if outline_mask is None:
        return []
    if isinstance(outline_mask, LesionMask):
        return [outline_mask]
    return list(outline_mask)


def _axis_on_screen(grid: Grid, display: _Display, axis: tuple[tuple[float, float, float],
                    tuple[float, float, float]], slice_index: int) -> NDArray[np.float64]:
    index = grid.to_index(np.array(axis, dtype=np.float64))
    if np.max(np.abs(index[:, 0] - slice_index)) > 1e-3:
        raise ValueError(f"calliper end points {axis} do not lie on slice {slice_index} of "
                         "this grid (a measurement of another series?)")
    return display.to_screen(index[:, 1:])


def render_slice(
    series: ImageSeries,
    slice_index: int,
    *,
    window: str | Window = SOFT_TISSUE,
    outline_mask: LesionMask | Sequence[LesionMask] | None = None,
    axes: LesionMeasurement | None = None,
    crop: PixelBox | None = None,
    scale: float = 1.0,
    caption: str | None = None,
    annotate: bool = True,
) -> bytes:
    """One axial slice as PNG: values windowed to grey, outlines and callipers over it.

    Parameters
    ----------
    series
        The image series, read with its pixels (``read_image(path, pixels=True)``).
    slice_index
        The slice, numbered as ``recist measure``'s ``slice_index`` (0 at the feet).
    window
        A preset name of :data:`WINDOWS` or a :class:`Window`.
    outline_mask
        Lesion masks on ``series.grid`` whose outline on this slice is drawn (none drawn
        for a mask that does not reach the slice).
    axes
        A lesion's measurement: its long and short axis are drawn as callipers with end
        ticks, labelled ``"LD 25.3 mm"`` and ``"SA 19.0 mm"`` (the values of the JSON,
        to 0.1 mm) — only when ``slice_index`` is its measured slice.
    crop
        The part of the slice to show (stored pixel indices); the whole slice by default.
    scale
        Output pixels per image pixel of the finer in-plane spacing (the coarser axis is
        stretched so that the image keeps the patient's proportions).
    caption
        Text at the top left (ASCII), e.g. the lesion's name.
    annotate
        Draw the orientation letters (R, L, A, P) and the window.

    Returns
    -------
    bytes
        A PNG (8-bit RGB). Orientation: patient's right on the left, anterior at the top.

    Raises
    ------
    ImagingInputError
        ``slice_index`` is not a slice of the series, ``crop`` is not inside the slice,
        or the series was read without its pixels.
    ValueError
        An unknown window preset, a scale that is not positive, or callipers that do not
        lie on this slice of this grid.
    """
    pixels = _slice_pixels(series, slice_index)
    rows, columns = pixels.shape
    box = crop or PixelBox(0, rows, 0, columns)
    if box.row_start < 0 or box.col_start < 0 or box.row_stop > rows or box.col_stop > columns:
        raise ImagingInputError(series.path, f"crop rows {box.row_start}:{box.row_stop}, "
                                f"columns {box.col_start}:{box.col_stop} is not inside its "
                                f"{rows} x {columns} slices")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale {scale} is not a positive number")
    win = _window(window)
    display = _Display.of(series.grid, box, scale)
    grey = win.to_grey(pixels[box.row_start:box.row_stop, box.col_start:box.col_stop])
    image = Image.fromarray(display.orient(grey))
    if image.size != display.size:
        image = image.resize(display.size, Image.Resampling.BILINEAR)
    canvas = _Canvas(image.convert("RGB"), display)
    for lesion in _as_masks(outline_mask):
        canvas.outline(lesion, slice_index)
    if annotate:
        canvas.orientation_and_window(win, caption)
    elif caption:
        canvas.place(caption, TEXT_COLOUR, (3.0, 3.0))
    if axes is not None and axes.slice_index == slice_index and axes.long_axis is not None:
        # The short axis first: where the two cross, the long axis stays whole.
        drawn = []
        for axis, colour, text in (
            (axes.short_axis, SHORT_AXIS_COLOUR, f"SA {axes.short_axis_mm:.1f} mm"),
            (axes.long_axis, LONG_AXIS_COLOUR, f"LD {axes.longest_diameter_mm:.1f} mm"),
        ):
            if axis is not None:
                ends = _axis_on_screen(series.grid, display, axis, slice_index)
                canvas.calliper(ends, colour)
                drawn.append((ends, text, colour))
        for ends, text, colour in reversed(drawn):  # the long axis's label first
            canvas.label(ends, text, colour)
    out = io.BytesIO()
    canvas.image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


@dataclass(frozen=True, eq=False)
class AnnotatedSeries:
    """An image series with its pixels, its lesion masks and their measurements: read
    once, then any slice or key image rendered from memory (what a slice viewer keeps
    per study).

    Attributes
    ----------
    series
        The image series, pixels decoded and rescaled.
    seg_path
        The segmentation file (named in errors about its segments).
    masks, measurements
        One per segment / ROI / label value, in their stored order (as ``recist
        measure``).
    """

    series: ImageSeries
    seg_path: str
    masks: tuple[LesionMask, ...]
    measurements: tuple[LesionMeasurement, ...]

    def __post_init__(self) -> None:
        if self.series.array is None:
            raise ValueError(f"{self.series.path}: an AnnotatedSeries needs the pixels")
        if len(self.masks) != len(self.measurements):
            raise ValueError("one measurement per mask is needed")

    @classmethod
    def read(cls, image: str | Path | ImageSeries, seg_path: str | Path, *,
             fractional_threshold: float = FRACTIONAL_THRESHOLD) -> AnnotatedSeries:
        """Read an image series (or take one read with its pixels) and its segmentation,
        and measure every lesion as ``recist measure`` does.

        Raises
        ------
        ImagingInputError
            As :func:`imaging_io.measure.measure_study`, naming the file.
        """
        if isinstance(image, ImageSeries) and image.array is not None:
            series = image
        else:
            path = image.path if isinstance(image, ImageSeries) else image
            with refusing(path, "cannot be read as an image series"):
                series = read_image(path, pixels=True)
        with refusing(seg_path, "cannot be read as a segmentation"):
            masks = read_segmentation(
                seg_path, series.grid, image_sop_uids=series.info.sop_instance_uids,
                image_series_uid=series.info.series_instance_uid,
                fractional_threshold=fractional_threshold,
            )
        result = measure_masks(series, masks)
        return cls(series, str(seg_path), tuple(masks), result.lesions)

    @property
    def slice_count(self) -> int:
        return self.series.grid.shape[0]

    def segment(self, lesion: str | int) -> int:
        """The position in :attr:`masks` of a lesion named by its tracking ID (``"T1"``),
        its label (``"liver lesion"``) or its segment number (``1`` or ``"1"``).

        Raises
        ------
        ImagingInputError
            No such segment, or a label that several segments share (naming the file).
        """
        numbers = [m.label_value for m in self.masks]
        if isinstance(lesion, int) and not isinstance(lesion, bool):
            found = [i for i, n in enumerate(numbers) if n == lesion]
        else:
            name = str(lesion).strip().casefold()
            found = [i for i, m in enumerate(self.masks)
                     if (m.tracking_id or "").casefold() == name]
            found = found or [i for i, m in enumerate(self.masks) if m.label.casefold() == name]
            if not found and name.isdigit():
                found = [i for i, n in enumerate(numbers) if n == int(name)]
        if len(found) == 1:
            return found[0]
        listing = ", ".join(f"{m.label_value} {m.label!r}" + (f" {m.tracking_id}" if
                            m.tracking_id else "") for m in self.masks)
        if found:
            raise ImagingInputError(self.seg_path, f"has {len(found)} segments named "
                                    f"{lesion!r} ({listing}): give its number")
        raise ImagingInputError(self.seg_path, f"has no segment {lesion!r} (its segments: "
                                f"{listing or 'none'})")

    def render(self, slice_index: int, *, segment: str | int | None = None,
               window: str | Window = SOFT_TISSUE, crop: PixelBox | None = None,
               scale: float = 1.0, annotate: bool = True) -> bytes:
        """Slice ``slice_index`` as PNG for a viewer, with the outline of one segment
        (``segment``, as :meth:`segment` takes it) and its callipers on its measured slice
        only. See :func:`render_slice` for the other parameters and errors."""
        if segment is None:
            return render_slice(self.series, slice_index, window=window, crop=crop,
                                scale=scale, annotate=annotate)
        i = self.segment(segment)
        return render_slice(self.series, slice_index, window=window,
                            outline_mask=self.masks[i], axes=self.measurements[i], crop=crop,
                            scale=scale, annotate=annotate)

    def key_image_box(self, lesion: str | int, *,
                      margin_mm: float = KEY_IMAGE_MARGIN_MM) -> PixelBox:
        """The crop of a key image: a square (in mm) around the lesion on its measured
        slice, ``margin_mm`` beyond its outline on every side, moved inside the slice
        where it would cross an edge (and cut only when the slice is smaller).

        Raises
        ------
        ImagingInputError
            No such segment, or an empty one (no measured slice).
        """
        return self._box(self.segment(lesion), margin_mm)

    def _box(self, i: int, margin_mm: float) -> PixelBox:
        mask, measured = self.masks[i], self.measurements[i]
        if measured.slice_index is None:
            raise ImagingInputError(self.seg_path, f"segment {mask.label!r} is empty: it has "
                                    "no measured slice to show")
        plane = mask.mask[measured.slice_index - mask.offset[0]]
        rr, cc = np.nonzero(plane)
        _, dr, dc = self.series.grid.spacing
        rows, columns = self.series.grid.shape[1:]
        # The outline runs half a pixel outside the outermost lesion pixel centres.
        lo_r, hi_r = mask.offset[1] + rr.min() - 0.5, mask.offset[1] + rr.max() + 0.5
        lo_c, hi_c = mask.offset[2] + cc.min() - 0.5, mask.offset[2] + cc.max() + 0.5
        half_mm = max((hi_r - lo_r) * dr, (hi_c - lo_c) * dc) / 2 + max(0.0, margin_mm)

        def span(lo: float, hi: float, step: float, count: int) -> tuple[int, int]:
            centre, half = (lo + hi) / 2 + 0.5, half_mm / step  # in pixel-edge coordinates
            size = min(count, max(1, round(2 * half)))
            start = min(max(0, round(centre - size / 2)), count - size)
            return start, start + size

        r0, r1 = span(lo_r, hi_r, dr, rows)
        c0, c1 = span(lo_c, hi_c, dc, columns)
        return PixelBox(r0, r1, c0, c1)

    def key_image(self, lesion: str | int, *, window: str | Window | None = None,
                  site: str | None = None, margin_mm: float = KEY_IMAGE_MARGIN_MM,
                  scale: float | None = None) -> bytes:
        """The key image of a lesion as PNG: its measured slice, cropped around it
        (:meth:`key_image_box`), outline and both callipers labelled in mm.

        Parameters
        ----------
        lesion
            Tracking ID, label or segment number (see :meth:`segment`).
        window
            Preset name or :class:`Window`; by default the preset of ``site``
            (:func:`window_for_site`), or of the segment's label when no site is given.
            For a series that is neither CT nor of unknown modality (MR…), HU presets
            mean nothing: the default is then the 1st–99th percentile of the crop.
        site
            The lesion's site in the case (``"liver"``), to choose the window.
        margin_mm
            Context shown beyond the lesion's outline on each side.
        scale
            Output pixels per image pixel (finer spacing); by default the longer side of
            the image is :data:`KEY_IMAGE_SIZE_PX`.

        Raises
        ------
        ImagingInputError
            No such segment, or an empty one.
        """
        i = self.segment(lesion)
        mask, measured = self.masks[i], self.measurements[i]
        box = self._box(i, margin_mm)
        assert measured.slice_index is not None  # _box refuses an empty segment
        if window is None:
            if self.series.info.modality in (None, "CT"):
                window = WINDOWS[window_for_site(site or mask.label)]
            else:
                window = _percentile_window(self.series, measured.slice_index, box)
        if scale is None:
            _, dr, dc = self.series.grid.spacing
            longer_mm = max(box.rows * dr, box.columns * dc)
            scale = KEY_IMAGE_SIZE_PX * min(dr, dc) / longer_mm
        name = f"{mask.tracking_id} {mask.label}" if mask.tracking_id else mask.label
        z = float(self.series.grid.affine[2, 0] * measured.slice_index
                  + self.series.grid.affine[2, 3])
        return render_slice(self.series, measured.slice_index, window=window,
                            outline_mask=mask, axes=measured, crop=box, scale=scale,
                            caption=f"{name}, z {z:.1f} mm")


def _percentile_window(series: ImageSeries, slice_index: int, box: PixelBox) -> Window:
    assert series.array is not None
    values = series.array[slice_index, box.row_start:box.row_stop, box.col_start:box.col_stop]
    low, high = (float(v) for v in np.percentile(values, [1, 99]))
    return Window(max(1.0, high - low), (low + high) / 2)


def key_image(
    image: str | Path | ImageSeries,
    seg_path: str | Path,
    lesion: str | int,
    *,
    window: str | Window | None = None,
    site: str | None = None,
    margin_mm: float = KEY_IMAGE_MARGIN_MM,
    scale: float | None = None,
) -> bytes:
    """The key image of one lesion as PNG, from files (see
    :meth:`AnnotatedSeries.key_image`; to render several, read an
    :class:`AnnotatedSeries` once).

    Parameters
    ----------
    image
        The image series (a folder, a DICOM file or a NIfTI/NRRD/MetaImage file), or an
        :class:`~imaging_io.series.ImageSeries` already read (with its pixels, else they
        are read).
    seg_path
        Its DICOM SEG, RTSTRUCT or label map.
    lesion
        Tracking ID (``"T1"``), segment label or segment number.
    window, site, margin_mm, scale
        As :meth:`AnnotatedSeries.key_image`.

    Raises
    ------
    ImagingInputError
        Unreadable input (naming the file), no such segment or an empty one.
    """
    annotated = AnnotatedSeries.read(image, seg_path)
    return annotated.key_image(lesion, window=window, site=site, margin_mm=margin_mm,
                               scale=scale)
