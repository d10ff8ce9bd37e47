"""The pictures of the lab's animated k-means: ``Animation2D`` and its HTML player.

``KmeansAnimate2D`` (in ``KmeansAnimate2D.py``, beside the algorithm) runs
Lloyd's algorithm on 2-D data and records every step as a ``Frame``; the class
it builds on, :class:`Animation2D`, shows the frames: in a desktop window, as
HTML with a small JavaScript player (Jupyter, JupyterLab, Notebook 7, Colab,
VS Code), or as an animated GIF. Students use it through the algorithm's
module::

    import KmeansAnimate2D as animate
    animate.KmeansAnimate2D(k=3, data=data).animate_jupyter_nb()

This module never imports ``KmeansAnimate2D.py``: the algorithm uses the
pictures, the pictures do not use the algorithm.

The HTML player works without JavaScript too: its ``<img>`` starts as an
animated WebP of all frames, which plays by itself where scripts do not run
(a notebook Jupyter does not trust, such as one opened on another machine).
Where they run, the script puts frame 0 in its place at once and shows the
buttons, the slider and a caption per frame. The buttons find their player
from the clicked element, not through element ids, so any number of
players, even identical ones in two notebooks open side by side in
JupyterLab, work independently, and the same run gives byte-identical HTML.
"""

import base64
import html
import io
import json
import numbers
import os
from typing import NamedTuple

import numpy as np

from _kmeans_checks import check_data

__all__ = ["Animation2D", "AnimationHTML", "Frame"]


class Frame(NamedTuple):
    """One picture of the animation.

    Attributes
    ----------
    step : str
        ``"initial"`` (initial representatives, points not yet assigned),
        ``"assignment"`` (points just reassigned, representatives not yet
        moved) or ``"update"`` (representatives just moved to the means).
    iteration : int
        0 for the initial frame, then 1, 2, ...
    labels : ndarray of shape (n,)
        Group of every point; -1 while unassigned.
    centroids : ndarray of shape (k, 2)
        Representatives shown.
    J_clust : float
        Mean squared distance for these labels and representatives
        (NaN in the initial frame).
    """

    step: str
    iteration: int
    labels: np.ndarray
    centroids: np.ndarray
    J_clust: float


class AnimationHTML(str):
    """HTML/JS animation that Jupyter shows exactly once.

    A ``str`` holding the HTML (also available as ``.data``, like
    ``IPython.display.HTML``). ``KmeansAnimate2D.animate_jupyter_nb`` shows
    it at once; when it is then also the last expression of the cell,
    Jupyter would show it a second time, which this class suppresses.
    """

    @property
    def data(self):
        return str(self)

    def _repr_html_(self):
        return str(self)

    def _ipython_display_(self):
        from IPython import get_ipython
        from IPython.display import HTML, display

        shell = get_ipython()
        cell = getattr(shell, "execution_count", None)
        if cell is not None and getattr(self, "_shown_in_cell", None) == cell:
            return
        self._shown_in_cell = cell
        display(HTML(str(self)))


class Animation2D:
    """The pictures of a recorded k-means run on 2-D data: the drawing half of ``KmeansAnimate2D``.

    ``KmeansAnimate2D`` (in ``KmeansAnimate2D.py``) checks the input, runs
    the algorithm and records its steps; it sets ``points``, ``k``,
    ``columns``, ``cluster_labels`` and ``frames_``, which this class draws.
    This module does not import ``KmeansAnimate2D.py``: the algorithm
    depends on the pictures, never the other way round.
    """

    figsize = (6.0, 5.0)
    dpi = 80

    # -- checks ---------------------------------------------------------------

    @staticmethod
    def _check_points(data):
        # Only real arrays (or DataFrames and other objects convertible via
        # __array__): a nested list is more likely a mistake than 2-D data.
        if not (isinstance(data, np.ndarray) or hasattr(data, "__array__")):
            raise TypeError(
                "data must be a NumPy array (or DataFrame) of shape (n, 2); got "
                f"{type(data).__name__}; use np.asarray(data) to convert a list"
            )
        # A private copy: the frames must not change if the caller later
        # edits their array.
        return check_data(data, "data", n_columns=2).copy()

    @staticmethod
    def _check_names(names, count, what):
        if names is None:
            return None
        if isinstance(names, (str, bytes)):
            raise TypeError(f"{what} must be a sequence of {count} names, not a single string")
        names = [str(name) for name in names]
        if len(names) != count:
            raise ValueError(f"{what} must hold {count} names; got {len(names)}")
        return names

    @staticmethod
    def _check_interval(interval):
        if not (isinstance(interval, numbers.Real) and interval > 0):
            raise ValueError(f"interval must be a positive number of milliseconds; got {interval!r}")

    # -- drawing ------------------------------------------------------------------

    def _axis_limits(self):
        # Fixed for the whole animation: every point and every position a
        # representative takes, plus a 5% margin.
        every_z = np.vstack([frame.centroids for frame in self.frames_])
        everything = np.vstack([self.points, every_z])
        low, high = everything.min(axis=0), everything.max(axis=0)
        margin = 0.05 * np.where(high > low, high - low, 1.0)
        return low - margin, high + margin

    def _setup_axes(self, fig):
        """Draw the parts that never change; return the artists that do."""
        from matplotlib.lines import Line2D

        colours = _palette(self.k)
        ax = fig.add_subplot()
        low, high = self._axis_limits()
        ax.set_xlim(low[0], high[0])
        ax.set_ylim(low[1], high[1])
        if self.columns is not None:
            ax.set_xlabel(self.columns[0])
            ax.set_ylabel(self.columns[1])
        points = ax.scatter(self.points[:, 0], self.points[:, 1], s=18,
                            color=colours[-1], edgecolors="none", alpha=0.8)
        paths = [ax.plot([], [], "-", color=colours[j], linewidth=1.2, alpha=0.7)[0]
                 for j in range(self.k)]
        representatives = ax.scatter(
            self.frames_[0].centroids[:, 0], self.frames_[0].centroids[:, 1],
            s=200, marker="*", color=colours[: self.k], edgecolors="black",
            linewidths=1.2, zorder=3,
        )
        if self.cluster_labels is not None:
            handles = [Line2D([], [], linestyle="", marker="o", color=colours[j])
                       for j in range(self.k)]
            ax.legend(handles, self.cluster_labels, loc="upper left",
                      bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
            fig.subplots_adjust(left=0.12, right=0.72, top=0.86, bottom=0.11)
        else:
            fig.subplots_adjust(left=0.12, right=0.95, top=0.86, bottom=0.11)
        title = ax.set_title("")
        return {"points": points, "paths": paths, "representatives": representatives,
                "title": title, "colours": colours}

    def _title(self, index):
        frame = self.frames_[index]
        if frame.step == "initial":
            return f"k = {self.k}, iteration 0: initial representatives\n "
        last = self.converged_ and frame.iteration == self.n_iter_
        done = " (converged)" if last else ""
        return (f"k = {self.k}, iteration {frame.iteration}: {frame.step} step{done}\n"
                f"J_clust = {frame.J_clust:.4g}")

    def _draw_frame(self, index, artists):
        frame = self.frames_[index]
        colours = artists["colours"]
        # -1 (unassigned) indexes the grey row at the end of the palette.
        artists["points"].set_facecolor(colours[frame.labels])
        artists["representatives"].set_offsets(frame.centroids)
        # Path of each representative so far: its position after every
        # update step up to this frame.
        shown = [self.frames_[0].centroids] + [
            f.centroids for f in self.frames_[1:index + 1] if f.step == "update"]
        history = np.stack(shown)
        for j, path in enumerate(artists["paths"]):
            path.set_data(history[:, j, 0], history[:, j, 1])
        artists["title"].set_text(self._title(index))
        return [artists["points"], artists["representatives"], artists["title"], *artists["paths"]]

    def _offscreen_figure(self):
        # A Figure with its own Agg canvas is never registered with pyplot:
        # Jupyter shows no stray static copy and nothing needs closing.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=self.figsize, dpi=self.dpi)
        FigureCanvasAgg(fig)
        return fig

    def _rendered_frames(self):
        """Draw the frames one by one off screen; yield each as an RGB array."""
        fig = self._offscreen_figure()
        artists = self._setup_axes(fig)
        for index in range(len(self.frames_)):
            self._draw_frame(index, artists)
            fig.canvas.draw()
            yield np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy()

    # -- public output ------------------------------------------------------------

    def animate(self, interval=500, repeat=True, show=None):
        """Animate in a desktop window (Tk, Qt, macOS, ... backends).

        Parameters
        ----------
        interval : float, default=500
            Milliseconds between frames.
        repeat : bool, default=True
            Start again after the last frame.
        show : bool, optional
            Call ``plt.show()`` (which blocks until the window is closed).
            By default only when the matplotlib backend is interactive.

        Returns
        -------
        animation : matplotlib.animation.FuncAnimation
            Keep a reference while it plays. Its figure belongs to pyplot;
            close it with ``plt.close(animation._fig)`` when not shown.
            In Jupyter use :meth:`animate_jupyter_nb` instead.
        """
        import matplotlib.pyplot as plt
        from matplotlib.animation import FuncAnimation

        self._check_interval(interval)
        fig = plt.figure(figsize=self.figsize)
        artists = self._setup_axes(fig)
        animation = FuncAnimation(
            fig, self._draw_frame, frames=len(self.frames_), fargs=(artists,),
            init_func=lambda: self._draw_frame(0, artists),
            interval=interval, repeat=repeat, blit=False,
        )
        self._animObj = animation  # an unreferenced animation stops playing
        if show is None:
            show = _backend_is_interactive()
        if show:
            plt.show()
        return animation

    def to_jshtml(self, interval=500, default_mode="once"):
        """Render the animation as self-contained HTML with a JavaScript player.

        Parameters
        ----------
        interval : float, default=500
            Milliseconds between frames.
        default_mode : {"once", "loop", "reflect"}, default="once"
            What the player does after the last frame.

        Returns
        -------
        html : str
            One embedded PNG per frame, an animated WebP for where scripts
            do not run, and a player that needs no network; the first
            frame shows at once. Works in classic Notebook,
            Notebook 7, JupyterLab, Colab and VS Code. The same run always
            gives the same HTML.
        """
        self._check_interval(interval)
        if default_mode not in ("once", "loop", "reflect"):
            raise ValueError(f'default_mode must be "once", "loop" or "reflect"; got {default_mode!r}')
        rgb_frames = list(self._rendered_frames())
        images = [_png_data_uri(rgb) for rgb in rgb_frames]
        captions = [" ".join(self._title(index).split()) for index in range(len(rgb_frames))]
        return player_html(images, interval, default_mode, captions=captions,
                           preview=_animated_webp_data_uri(rgb_frames, interval))

    def animate_jupyter_nb(self, interval=500, default_mode="once"):
        """Show the animation in Jupyter (Notebook, JupyterLab, Colab).

        Parameters
        ----------
        interval : float, default=500
            Milliseconds between frames.
        default_mode : {"once", "loop", "reflect"}, default="once"
            What the player does after the last frame.

        Returns
        -------
        html : AnimationHTML
            The HTML (a ``str`` with ``.data``). It is shown once, even when
            this call is the last line of the cell. Without IPython
            nothing is shown and the HTML is just returned.
        """
        player = AnimationHTML(self.to_jshtml(interval, default_mode))
        try:
            from IPython.display import display
        except ImportError:
            return player
        display(player)
        return player

    def saveGIF(self, filename, fps=2):
        """Write the animation as an animated GIF (with Pillow).

        Does not need :meth:`animate` first.

        Parameters
        ----------
        filename : str or path-like
            ".gif" is appended unless the name already ends with it (the
            original lab expected the name without extension).
        fps : float, default=2
            Frames per second.

        Returns
        -------
        path : str
            The file written.
        """
        from PIL import Image

        if not (isinstance(fps, numbers.Real) and fps > 0):
            raise ValueError(f"fps must be a positive number; got {fps!r}")
        path = os.fspath(filename)
        if not path.lower().endswith(".gif"):
            path += ".gif"
        images = [Image.fromarray(rgb) for rgb in self._rendered_frames()]
        images[0].save(path, save_all=True, append_images=images[1:],
                       duration=int(round(1000 / fps)), loop=0)
        return path


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _palette(k):
    """k fixed RGBA colours, one per group, plus grey for unassigned points."""
    from matplotlib import colormaps

    if k <= 10:
        colours = colormaps["tab10"](np.arange(k))
    elif k <= 20:
        colours = colormaps["tab20"](np.arange(k))
    else:
        colours = colormaps["turbo"](np.linspace(0.05, 0.95, k))
    grey = np.array([[0.6, 0.6, 0.6, 1.0]])
    return np.vstack([colours, grey])


def _backend_is_interactive():
    import matplotlib

    backend = matplotlib.get_backend().lower()
    try:
        from matplotlib.backends import BackendFilter, backend_registry

        return backend in backend_registry.list_builtin(BackendFilter.INTERACTIVE)
    except ImportError:  # matplotlib < 3.9
        return backend not in {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


def _png_data_uri(rgb):
    """An RGB image (height, width, 3) as a ``data:image/png;base64,...`` URI."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _animated_webp_data_uri(rgb_frames, interval):
    """The frames as one looping, lossless animated WebP (a pause on the last frame), as a data URI."""
    from PIL import Image

    images = [Image.fromarray(rgb) for rgb in rgb_frames]
    durations = [int(round(interval))] * (len(images) - 1) + [int(round(3 * interval))]
    buffer = io.BytesIO()
    images[0].save(buffer, format="webp", save_all=True, append_images=images[1:], duration=durations,
                   loop=0, lossless=True)
    return "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# ---------------------------------------------------------------------------
# The HTML player
# ---------------------------------------------------------------------------

# Without JavaScript the <img> shows the preview (an animated image) and the
# controls stay hidden (an inline style: JupyterLab's sanitizer keeps it and
# drops the hidden attribute); the script shows frame 0 and the controls at once.
# The frames and their captions wait in a JSON block. The controls are found
# from the element clicked (closest .kmeans-player), never by id, so players
# never interfere, even identical ones on one page.
#: The player's look, the same for every player (the course's feedback and
#: grading pages carry this copy too, since they drop a student's styles).
PLAYER_STYLE = """\
.kmeans-player {display: inline-block; text-align: center; font: 13px sans-serif;}
.kmeans-player img {display: block; max-width: 100%; height: auto; margin: 0 auto;}
.kmeans-player input[type=range] {width: 90%;}
.kmeans-player button {min-width: 2.3em; margin: 1px; padding: 2px 4px; font-size: 15px; line-height: 1.2;}
.kmeans-player select {margin-left: 0.5em;}
"""

_PLAYER_MARKUP = """\
<div class="kmeans-player" role="group" aria-label="Animation of Lloyd's algorithm" data-interval="{interval}">
<style>
{style}</style>
<img class="kmeans-player-frame" width="{width}" height="{height}" alt="{alt}" src="{src}">
<div class="kmeans-player-controls" style="display: none">
<input class="kmeans-player-slider" type="range" min="0" max="{last}" step="1" value="0" aria-label="Frame">
<div>
<button type="button" data-action="slower" title="Slower" aria-label="Slower">&minus;</button>
<button type="button" data-action="first" title="First frame" aria-label="First frame">&#x21E4;</button>
<button type="button" data-action="previous" title="Previous frame" aria-label="Previous frame">&#x25C2;&#xFE0E;</button>
<button type="button" data-action="reverse" title="Play backwards" aria-label="Play backwards">&#x25C0;&#xFE0E;</button>
<button type="button" data-action="pause" title="Pause" aria-label="Pause">&#x275A;&#x275A;</button>
<button type="button" data-action="play" title="Play" aria-label="Play">&#x25B6;&#xFE0E;</button>
<button type="button" data-action="next" title="Next frame" aria-label="Next frame">&#x25B8;&#xFE0E;</button>
<button type="button" data-action="last" title="Last frame" aria-label="Last frame">&#x21E5;</button>
<button type="button" data-action="faster" title="Faster" aria-label="Faster">+</button>
</div>
<span class="kmeans-player-counter" aria-live="polite">frame 1 of {count}</span>
<select class="kmeans-player-mode" aria-label="After the last frame">
<option value="once"{once}>once</option>
<option value="loop"{loop}>loop</option>
<option value="reflect"{reflect}>reflect</option>
</select>
</div>
<script type="application/json" class="kmeans-player-frames">{frames}</script>
</div>
"""

#: The player's script: one copy serves every player on a page. The course's
#: feedback and grading pages include this copy (trusted, allowed by their
#: Content-Security-Policy) and drop the one inside a student's output.
PLAYER_SCRIPT = """\
(function () {
  "use strict";
  function player(root) {
    if (!root.kmeansPlayer) {
      var data = JSON.parse(root.querySelector(".kmeans-player-frames").textContent);
      root.kmeansPlayer = {
        img: root.querySelector(".kmeans-player-frame"),
        frames: data.frames,
        captions: data.captions,
        slider: root.querySelector(".kmeans-player-slider"),
        counter: root.querySelector(".kmeans-player-counter"),
        mode: root.querySelector(".kmeans-player-mode"),
        interval: Number(root.getAttribute("data-interval")) || 500,
        index: 0, direction: 0, timer: null
      };
    }
    return root.kmeansPlayer;
  }

  function show(p, index) {
    p.index = Math.max(0, Math.min(p.frames.length - 1, index));
    p.img.src = p.frames[p.index];
    p.slider.value = p.index;
    var caption = p.captions[p.index] || "";
    p.counter.textContent = "frame " + (p.index + 1) + " of " + p.frames.length + (caption ? ": " + caption : "");
    p.img.alt = caption || "k-means, frame " + (p.index + 1);
  }

  function pause(p) {
    clearTimeout(p.timer);
    p.timer = null;
    p.direction = 0;
  }

  function tick(p) {
    var last = p.frames.length - 1, next = p.index + p.direction;
    if (next < 0 || next > last) {
      if (p.mode.value === "loop") {
        next = next < 0 ? last : 0;
      } else if (p.mode.value === "reflect" && last > 0) {
        p.direction = -p.direction;
        next = p.index + p.direction;
      } else {
        pause(p);
        return;
      }
    }
    show(p, next);
    p.timer = setTimeout(function () { tick(p); }, p.interval);
  }

  function play(p, direction) {
    pause(p);
    if (p.mode.value === "once" && p.index === (direction > 0 ? p.frames.length - 1 : 0)) {
      show(p, direction > 0 ? 0 : p.frames.length - 1);  // at the end: start again
    }
    p.direction = direction;
    p.timer = setTimeout(function () { tick(p); }, p.interval);
  }

  // Every player on the page not started yet: frame 0 in place of the
  // preview, controls shown. (A script runs once, when its output appears.)
  Array.prototype.forEach.call(document.querySelectorAll(".kmeans-player"), function (root) {
    if (!root.kmeansPlayer) {
      show(player(root), 0);
      root.querySelector(".kmeans-player-controls").style.display = "";
    }
  });

  // One set of listeners per page serves every player on it.
  if (window.kmeansPlayerListening) { return; }
  window.kmeansPlayerListening = true;

  var actions = {
    slower: function (p) { p.interval /= 0.7; },
    faster: function (p) { p.interval *= 0.7; },
    first: function (p) { pause(p); show(p, 0); },
    previous: function (p) { pause(p); show(p, p.index - 1); },
    next: function (p) { pause(p); show(p, p.index + 1); },
    last: function (p) { pause(p); show(p, p.frames.length - 1); },
    reverse: function (p) { play(p, -1); },
    play: function (p) { play(p, 1); },
    pause: pause
  };

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest(".kmeans-player button[data-action]") : null;
    if (button && actions[button.getAttribute("data-action")]) {
      actions[button.getAttribute("data-action")](player(button.closest(".kmeans-player")));
    }
  });
  document.addEventListener("input", function (event) {
    var slider = event.target.closest ? event.target.closest(".kmeans-player-slider") : null;
    if (slider) {
      var p = player(slider.closest(".kmeans-player"));
      pause(p);
      show(p, parseInt(slider.value, 10));
    }
  });
})();
"""


def player_html(images, interval=500, default_mode="once", captions=None, preview=None):
    """The HTML of a player for frames given as PNG data URIs.

    Parameters
    ----------
    images : list of str
        ``data:image/png;base64,...`` URIs, all of the same size.
    interval : float, default=500
        Milliseconds between frames.
    default_mode : {"once", "loop", "reflect"}, default="once"
        What the player does after the last frame.
    captions : list of str, optional
        One line per frame, shown under it (and as its ``alt`` text).
    preview : str, optional
        A data URI of an animated image of the same size, shown where
        scripts do not run. By default the first frame.

    Returns
    -------
    html : str
        Self-contained HTML; each frame appears exactly once (the first
        twice without ``preview``).
    """
    captions = list(captions) if captions is not None else [""] * len(images)
    if len(captions) != len(images):
        raise ValueError(f"{len(captions)} captions for {len(images)} frames")
    from PIL import Image

    first = base64.b64decode(images[0].split(",", 1)[1])
    with Image.open(io.BytesIO(first)) as image:
        width, height = image.size
    modes = {mode: (" selected" if mode == default_mode else "") for mode in ("once", "loop", "reflect")}
    return _PLAYER_MARKUP.format(
        style=PLAYER_STYLE, interval=f"{float(interval):g}", width=width, height=height, src=preview or images[0],
        alt=html.escape(captions[0] or "k-means, one frame per step"), last=len(images) - 1, count=len(images),
        frames=json.dumps({"frames": images, "captions": captions}).replace("</", "<\\/"), **modes,
    ) + f"<script>\n{PLAYER_SCRIPT}</script>\n"
