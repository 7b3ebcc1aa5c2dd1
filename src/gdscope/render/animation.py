"""Animations: paths advancing over their maps, the loss curves drawn alongside, frame by frame.

The figure is drawn once; each frame then only redraws the moving artists over a saved copy of
the background (blitting), so a 100-step, four-panel animation takes seconds. Frames go to a GIF
(Pillow) or an MP4 (the ffmpeg binary shipped with ``imageio-ffmpeg``), written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gdscope import interrupts
from gdscope.engines.trajectory import Trajectory
from gdscope.errors import GdscopeError, needs_extra
from gdscope.files import write_atomic
from gdscope.problem.maps import Landscape
from gdscope.render.panels import mark_minima, plot_landscape, visible_path
from gdscope.render.surface3d import lifted_path, plot_surface3d

__all__ = [
    "ANIMATION_FORMATS",
    "AnimationOptions",
    "Animator",
    "animation_format",
    "frame_steps",
    "write_animation",
]

ANIMATION_FORMATS = ("gif", "mp4")
MAX_FRAMES = 3000
COLORS = ("red", "#00e5ff", "#ffd700", "#ff66ff", "white", "#7fff00")


@dataclass(frozen=True)
class AnimationOptions:
    """``fps`` frames per second; ``frames`` in all (None: one per step, at most 300) or
    ``seconds`` of film; ``size`` in pixels (None: 5.2 in per panel at 80 dpi)."""

    fps: int = 20
    frames: int | None = None
    seconds: float | None = None
    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.fps, bool) or not isinstance(self.fps, int) or not 1 <= self.fps <= 60:
            raise GdscopeError(f"fps must be an integer in [1, 60], got {self.fps!r}")
        if self.frames is not None and self.seconds is not None:
            raise GdscopeError("give the number of frames or the length in seconds, not both")
        if self.frames is not None and not 1 <= self.frames <= MAX_FRAMES:
            raise GdscopeError(f"frames must be in [1, {MAX_FRAMES}], got {self.frames}")
        if self.seconds is not None and not 0 < self.seconds * self.fps <= MAX_FRAMES:
            raise GdscopeError(f"seconds × fps must be in (0, {MAX_FRAMES}], got {self.seconds}")
        if self.size is not None:
            w, h = self.size
            if not (64 <= w <= 3840 and 64 <= h <= 2160):
                raise GdscopeError(f"size must be within 64×64 … 3840×2160 pixels, got {w}×{h}")

    def count(self, steps: int) -> int:
        if self.frames is not None:
            return self.frames
        if self.seconds is not None:
            return max(1, round(self.seconds * self.fps))
        return min(steps + 1, 300)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fps": self.fps}
        for key in ("frames", "seconds"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.size is not None:
            out["size"] = list(self.size)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> AnimationOptions:
        size = raw.get("size")
        return cls(raw.get("fps", 20), raw.get("frames"), raw.get("seconds"),
                   tuple(size) if size is not None else None)  # fmt: skip


def frame_steps(steps: int, frames: int) -> np.ndarray:
    """The step each frame shows: evenly spread from 0 to ``steps`` (both shown)."""
    if frames == 1:
        return np.array([steps])
    return np.round(np.linspace(0, steps, frames)).astype(int)


def animation_format(path: str | os.PathLike[str]) -> str:
    chosen = Path(path).suffix.lstrip(".").lower()
    if chosen not in ANIMATION_FORMATS:
        raise GdscopeError(f"an animation is a .gif or .mp4 file, got {Path(path).name!r}")
    return chosen


class Animator:
    """Draws the static figure once and yields each frame as an ``(H, W, 3)`` uint8 array.

    ``runs[i]`` are the paths on panel ``i`` (one or several, in different colours).
    ``equal_aspect=False`` for maps whose axes have unrelated units (a model's directions).
    ``counter(i)`` is the text shown at path point ``i`` (default: the epoch, and the step with
    mini-batches), ``step_label`` names the loss chart's horizontal axis and ``curve_labels``
    its curves (one per path, in order); a recorded network's path counts snapshots, not epochs.
    """

    def __init__(
        self,
        landscapes: Sequence[Landscape],
        runs: Sequence[Sequence[Trajectory]],
        *,
        options: AnimationOptions | None = None,
        log: bool = False,
        kind: str = "heatmap",
        effective: bool = False,
        title: str | None = None,
        equal_aspect: bool = True,
        counter: Callable[[int], str] | None = None,
        step_label: str | None = None,
        curve_labels: Sequence[str] | None = None,
    ) -> None:
        options = options or AnimationOptions()
        self.equal_aspect = equal_aspect
        self.counter_text, self.step_label = counter, step_label
        self.curve_labels = list(curve_labels) if curve_labels is not None else None
        if len(landscapes) != len(runs) or not landscapes or not all(runs):
            raise GdscopeError("need at least one path per landscape")
        self.landscapes, self.runs, self.options = list(landscapes), list(runs), options
        self.steps = max(t.steps for paths in runs for t in paths)
        self.frame_steps = frame_steps(self.steps, options.count(self.steps))
        if kind not in ("heatmap", "contour", "surface"):
            raise GdscopeError(f"an animation draws a heatmap, contour or surface, got {kind!r}")
        self.figure = self._layout(len(landscapes), three_d=kind == "surface")
        self.moving: list[Artist] = []
        self._draw(log=log, kind=kind, effective=effective, title=title)

    def _layout(self, count: int, *, three_d: bool = False) -> Figure:
        cols = 1 if count == 1 else 2
        rows = -(-count // cols)
        dpi = 80
        if self.options.size is not None:
            width, height = self.options.size[0] / dpi, self.options.size[1] / dpi
        else:
            width, height = 5.2 * cols, 4.4 * rows + 2.4
        fig = Figure(figsize=(width, height), dpi=dpi)
        FigureCanvasAgg(fig)
        grid = fig.add_gridspec(rows + 1, cols, height_ratios=[*([4.4] * rows), 1.9])
        projection = "3d" if three_d else None
        self.map_axes = [fig.add_subplot(grid[i // cols, i % cols], projection=projection)
                         for i in range(count)]  # fmt: skip
        self.loss_ax = fig.add_subplot(grid[rows, :])
        return fig

    def _draw(self, *, log: bool, kind: str, effective: bool, title: str | None) -> None:
        # (line, head, weights, biases, heights): heights only on a 3D surface
        self.heads: list[tuple[Artist, Artist, np.ndarray, np.ndarray, np.ndarray | None]] = []
        self.curves: list[tuple[Artist, np.ndarray]] = []
        three_d = kind == "surface"
        for ax, landscape, paths in zip(self.map_axes, self.landscapes, self.runs, strict=True):
            decay = paths[0].optimizer.l2_weight_decay
            shown = landscape.with_weight_decay(decay) if effective and decay > 0 else landscape
            if three_d:
                plot_surface3d(shown, ax=ax, log=log)
            else:
                plot_landscape(shown, ax=ax, log=log, kind=kind, mark_minimum=False)
                mark_minima(landscape, ax=ax)
            ax.set_title(landscape.loss.title, fontsize=10)
            for j, trajectory in enumerate(paths):
                color = COLORS[j % len(COLORS)]
                z = None
                if three_d:  # the path lies on the surface: each point at its loss
                    w, b, z = lifted_path(trajectory, shown, log=log)
                    ax.plot(b[:1], w[:1], z[:1], "o", color="#1a9641", mec="white", ms=7)
                    (line,) = ax.plot([], [], [], color=color, marker="+", lw=1.4, ms=5)
                    (head,) = ax.plot([], [], [], "o", color=color, mec="black", ms=7)
                else:
                    w, b, _ = visible_path(trajectory, landscape.grid)
                    ax.plot(b[:1], w[:1], "o", color="#1a9641", mec="white", ms=7, zorder=8)
                    (line,) = ax.plot([], [], color=color, marker="+", lw=1.2, ms=5, zorder=8)
                    (head,) = ax.plot([], [], "o", color=color, mec="black", ms=7, zorder=9)
                self.heads.append((line, head, w, b, z))
                label = trajectory.loss.title if len(self.landscapes) > 1 else trajectory.label
                if self.curve_labels is not None:
                    label = self.curve_labels[len(self.heads) - 1]
                self._loss_curve(trajectory, color if len(paths) > 1 else None, label)
            if three_d:
                continue  # mplot3d fits its box to the surface
            left, right, bottom, top = landscape.grid.extent
            ax.set_xlim(left, right)
            ax.set_ylim(bottom, top)
            if not self.equal_aspect:
                ax.set_aspect("auto")
        first = self.runs[0][0]
        self.loss_ax.set_xlim(0, max(1, self.steps))
        default = "step" if first.steps_per_epoch == 1 else "step (mini-batch)"
        self.loss_ax.set_xlabel(self.step_label or default)
        self.loss_ax.set_ylabel("loss")
        finite = np.concatenate([t.losses[np.isfinite(t.losses)] for p in self.runs for t in p])
        if finite.size and (finite > 0).all() and finite.max() / finite.min() > 50:
            self.loss_ax.set_yscale("log")
        self.loss_ax.legend(loc="upper right", fontsize=7, ncol=2)
        self.figure.suptitle(title or f"{first.label}, {first.epochs} epochs", fontsize=11)
        # Above the loss chart, where the title can never cover it; laid out with its longest
        # text (animated artists are left out of the background, so that text never shows).
        longest = max((self._count(int(s)) for s in self.frame_steps), key=len)
        self.counter = self.loss_ax.text(0.0, 1.03, longest, transform=self.loss_ax.transAxes,
                                         va="bottom", ha="left", fontsize=10,
                                         family="monospace")  # fmt: skip
        self.figure.tight_layout(rect=(0, 0, 1, 0.96))
        self.moving = [a for line, head, *_ in self.heads for a in (line, head)]
        self.moving += [curve for curve, _ in self.curves] + [self.counter]
        for artist in self.moving:
            artist.set_animated(True)
        canvas = self.figure.canvas
        canvas.draw()
        self.background = canvas.copy_from_bbox(self.figure.bbox)  # type: ignore[attr-defined]

    def _count(self, step: int) -> str:
        """The counter's text at path point ``step``."""
        first = self.runs[0][0]
        if self.counter_text is not None:
            text = self.counter_text(step)
        else:
            text = f"epoch {step // first.steps_per_epoch:>4}"
            if first.steps_per_epoch > 1:
                text += f"  step {step:>5}"
        diverged = [t for p in self.runs for t in p if t.diverged_at is not None
                    and t.diverged_at <= step]  # fmt: skip
        if diverged:
            text += f"  ({len(diverged)} diverged)"
        return text

    def _loss_curve(self, trajectory: Trajectory, color: str | None, label: str) -> None:
        steps = np.arange(trajectory.steps + 1)
        ax: Axes = self.loss_ax
        (ghost,) = ax.plot(steps, trajectory.losses, lw=0.8, alpha=0.3, color=color)
        (curve,) = ax.plot([], [], lw=1.6, color=ghost.get_color(), label=label)
        self.curves.append((curve, trajectory.losses))

    def frames(self, *, progress: Callable[[int, int], None] | None = None) -> Iterator[np.ndarray]:
        """Each frame in turn; after the first, Ctrl-C (``interrupts.requested``) ends the film
        early, so what was drawn is still written. ``progress(done, total)`` after each."""
        canvas = self.figure.canvas
        total = len(self.frame_steps)
        for done, step in enumerate(self.frame_steps):
            if done and interrupts.requested():
                return
            canvas.restore_region(self.background)  # type: ignore[attr-defined]
            for line, head, w, b, z in self.heads:
                upto = min(int(step) + 1, len(w))
                if z is None:
                    line.set_data(b[:upto], w[:upto])  # type: ignore[attr-defined]
                    head.set_data(b[upto - 1 : upto], w[upto - 1 : upto])  # type: ignore[attr-defined]
                else:  # drawn with the projection the background was drawn with
                    line.set_data_3d(b[:upto], w[:upto], z[:upto])  # type: ignore[attr-defined]
                    head.set_data_3d(b[upto - 1 : upto], w[upto - 1 : upto],  # type: ignore[attr-defined]
                                     z[upto - 1 : upto])  # fmt: skip
            for curve, losses in self.curves:
                upto = int(step) + 1
                curve.set_data(np.arange(upto), losses[:upto])  # type: ignore[attr-defined]
            self.counter.set_text(self._count(int(step)))
            for artist in self.moving:
                self.figure.draw_artist(artist)
            yield np.asarray(canvas.buffer_rgba())[..., :3].copy()  # type: ignore[attr-defined]
            if progress is not None:
                progress(done + 1, total)


def write_animation(
    frames: Iterator[np.ndarray],
    path: str | os.PathLike[str],
    *,
    fps: int,
    force: bool = False,
) -> Path:
    """Write frames to ``path`` (.gif or .mp4) atomically; MP4 is H.264, bit-exact flags on, so
    the same frames always give the same bytes."""
    fmt = animation_format(path)

    def write_gif(tmp: Path) -> None:
        from PIL import Image

        rgb = [Image.fromarray(frame) for frame in frames]
        if not rgb:
            raise GdscopeError("no frames to write")
        # One palette for the whole film (from the first and last frames, which hold every
        # colour the paths use), no dithering, 255 colours: index 255 is left free to mean
        # "unchanged". Each later frame keeps only the pixels that changed and is drawn over the
        # previous one (disposal 1), so the runs of transparent pixels compress to almost nothing
        # even when the changes are far apart (paths in four panels, the counter, the curve).
        sample = Image.new("RGB", (rgb[0].width, rgb[0].height * 2))
        sample.paste(rgb[0], (0, 0))
        sample.paste(rgb[-1], (0, rgb[0].height))
        palette = sample.quantize(colors=255, method=Image.Quantize.MEDIANCUT)
        colours = (palette.getpalette() or [])[: 3 * 256]
        images, previous = [], None
        for frame in rgb:
            indices = np.asarray(frame.quantize(palette=palette, dither=Image.Dither.NONE))
            shown = indices.copy()
            if previous is not None:
                shown[indices == previous] = 255
            previous = indices
            image = Image.frombytes("P", (shown.shape[1], shown.shape[0]), shown.tobytes())
            image.putpalette(colours)
            images.append(image)
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=max(20, round(1000 / fps)), loop=0, transparency=255, disposal=1,
                       optimize=False)  # fmt: skip

    def write_mp4(tmp: Path) -> None:
        try:
            import imageio_ffmpeg
        except ImportError:
            raise needs_extra("MP4 needs imageio-ffmpeg", "video") from None
        first = next(frames)
        height, width = first.shape[:2]
        even = (slice(0, height - height % 2), slice(0, width - width % 2))
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (width - width % 2, height - height % 2), fps=fps, codec="libx264",
            pix_fmt_out="yuv420p", macro_block_size=1, quality=None, bitrate=None,
            output_params=["-crf", "20", "-fflags", "+bitexact", "-flags:v", "+bitexact",
                           "-map_metadata", "-1", "-threads", "1", "-f", "mp4"],
            ffmpeg_log_level="error",
        )  # fmt: skip
        writer.send(None)
        writer.send(np.ascontiguousarray(first[even]))
        for frame in frames:
            writer.send(np.ascontiguousarray(frame[even]))
        writer.close()

    with interrupts.polled():  # the frames stop at Ctrl-C; the film so far is written
        return write_atomic(path, write_gif if fmt == "gif" else write_mp4, force=force)
