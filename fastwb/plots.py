"""Pictures of what the weights and biases did during training (needs matplotlib).

Every function builds its own ``matplotlib.figure.Figure`` on the Agg canvas,
not through pyplot: no global figure state and never a window, so the plots
work the same in scripts, notebooks, servers and worker threads. Each returns the
figure and, given ``path``, also writes it there (a PNG, or the format the
suffix names, such as ``.svg`` or ``.pdf``). ``pip install "fastwb[plots]"``
installs matplotlib.

The x axes count epochs trained: 0 is the initial state, n the end of epoch
n (``fit`` numbers epochs from 1, as ``Monitor`` and ``History`` record them).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from fastwb import reference
from fastwb._layout import layer_views
from fastwb.callbacks import History
from fastwb.monitor import Monitor
from fastwb.network import Network

__all__ = ["decision_boundary", "loss_curves", "save_plots", "training_curves",
           "weight_histograms"]

#: The usual rule of thumb for ||update|| / ||W|| of one optimizer step.
UPDATE_RATIO_RULE = 1e-3
#: Points per side of the grids on which ``decision_boundary`` evaluates the
#: network: the final state, and (coarser, as they are many) the earlier ones.
GRID = 200
SNAPSHOT_GRID = 100
#: Colormap from the earliest to the latest state.
EPOCH_COLORMAP = "viridis"


def _matplotlib():
    """The matplotlib modules the plots use, or an ImportError saying how to get them."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError('fastwb.plots needs matplotlib: pip install "fastwb[plots]"') from None
    import matplotlib.cm
    import matplotlib.collections
    import matplotlib.colors
    import matplotlib.figure
    import matplotlib.lines
    from matplotlib.backends import backend_agg
    return matplotlib, backend_agg


def _figure(size: tuple[float, float]):
    mpl, backend_agg = _matplotlib()
    figure = mpl.figure.Figure(figsize=size, layout="constrained")
    backend_agg.FigureCanvasAgg(figure)     # draws with Agg whatever pyplot's backend is
    return figure


def _save(figure, path) -> None:
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format=path.suffix[1:].lower() or "png", dpi=100)


def _recorded_network(monitor):
    """The network a Monitor followed, once it has recorded an epoch."""
    if not isinstance(monitor, Monitor):
        raise TypeError(f"expected a fastwb.Monitor, got {type(monitor).__name__}")
    if not monitor.epochs or monitor.network is None:
        raise ValueError("the monitor has recorded no epochs: train with "
                         "fit(..., callbacks=[monitor]) first")
    return monitor.network


def _trained(epoch) -> int:
    """Epochs trained at a snapshot labelled "initial" or by its epoch number."""
    return 0 if epoch == "initial" else epoch


def _epoch_colors(times):
    """(colormap, norm) spanning the epochs trained in ``times``."""
    mpl, _ = _matplotlib()
    low, high = min(times), max(times)
    norm = mpl.colors.Normalize(low, high if high > low else low + 1)
    return mpl.colormaps[EPOCH_COLORMAP], norm


def _log_scale_if_positive(ax, values) -> None:
    """Log y when every finite value is positive (and there is one)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size and (values > 0).all():
        ax.set_yscale("log")


def _nan_for_none(values) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


# --- loss -----------------------------------------------------------------------------

def _loss_series(source):
    """(epochs trained, training loss, validation loss or None, validation score or None)."""
    if isinstance(source, Monitor):
        _recorded_network(source)
        epochs = source.epochs
        val = ([e.get("val_loss") for e in epochs] if any("val_loss" in e for e in epochs)
               else None)
        return ([e["epoch"] for e in epochs], [e["loss"] for e in epochs], val, None)
    if isinstance(source, History):
        if not len(source):
            raise ValueError("the History holds no epochs")
        return (list(source.epoch), source["loss"], source.history.get("val_loss"), None)
    curve = getattr(source, "loss_curve_", None)
    if curve is None:
        raise TypeError("loss_curves takes a fastwb.Monitor, a fastwb.History or a fitted "
                        f"estimator with loss_curve_, got {type(source).__name__}")
    if not len(curve):
        raise ValueError("the estimator's loss_curve_ is empty")
    # scikit-learn's early stopping keeps a score (accuracy or R^2), not a loss
    return (list(range(1, len(curve) + 1)), list(curve), None,
            getattr(source, "validation_scores_", None) or None)


def loss_curves(source, path=None):
    """The training and validation loss per epoch.

    Parameters
    ----------
    source : Monitor, History, or fitted fastwb.sklearn estimator
        A ``fastwb.Monitor`` after ``fit``, the ``History`` that ``fit``
        returns, or an estimator with ``loss_curve_`` (its
        ``validation_scores_``, with early stopping, go on a second axis).
    path : str or path-like, optional
        Where to save the figure.

    Returns
    -------
    matplotlib.figure.Figure
        One axes: ``lines[0]`` the training loss, ``lines[1]`` the validation
        loss where there is one; the y axis is logarithmic when every loss is
        positive.

    Raises
    ------
    ValueError
        If ``source`` holds no epochs.
    """
    epochs, loss, val_loss, val_score = _loss_series(source)
    figure = _figure((6.4, 4.0))
    ax = figure.subplots()
    marker = "o" if len(epochs) <= 30 else None       # a short run's points stay visible
    ax.plot(epochs, loss, marker=marker, markersize=3, label="training loss")
    shown = list(loss)
    if val_loss is not None:
        val_loss = _nan_for_none(val_loss)
        ax.plot(epochs, val_loss, marker=marker, markersize=3, label="validation loss")
        shown.extend(val_loss)
    _log_scale_if_positive(ax, shown)
    ax.set_xlabel("epochs trained")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if val_score is not None:
        score_ax = ax.twinx()
        score_ax.plot(epochs, val_score, color="C2", marker=marker, markersize=3,
                      label="validation score")
        score_ax.set_ylabel("validation score (accuracy or R^2)")
        more = score_ax.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels)
    ax.set_title("loss per epoch")
    _save(figure, path)
    return figure


# --- weights and biases over time -------------------------------------------------------

def _step_outline(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The (x, y) vertices of a step histogram: from 0 up at the first edge,
    across each bin at its count, down to 0 at the last edge."""
    heights = np.concatenate([[0], np.repeat(counts, 2), [0]])
    return np.column_stack([np.repeat(edges, 2), heights])


def weight_histograms(monitor, path=None, bins: int = 40):
    """Histograms of each layer's weights and biases at every kept snapshot.

    Parameters
    ----------
    monitor : Monitor
        A ``fastwb.Monitor`` after ``fit``; its ``snapshots()`` (the initial
        parameters, some epochs, the final ones) are drawn.
    path : str or path-like, optional
        Where to save the figure.
    bins : int, default 40
        Bins per panel; every snapshot in a panel shares the same bin edges,
        so the curves compare directly.

    Returns
    -------
    matplotlib.figure.Figure
        One row of panels per layer, W on the left and b on the right; each
        panel's ``collections[0]`` holds one step outline per snapshot,
        coloured from early (dark) to late (yellow) by epochs trained, as the
        colorbar shows.

    Raises
    ------
    ValueError
        If the monitor has recorded no epochs, or ``bins`` is not a positive integer.
    """
    network = _recorded_network(monitor)
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    mpl, _ = _matplotlib()
    sizes = network.sizes
    snapshots = monitor.snapshots()
    times = [_trained(label) for label, _ in snapshots]
    views = [layer_views(flat, sizes) for _, flat in snapshots]
    cmap, norm = _epoch_colors(times)
    n_layers = len(sizes) - 1
    figure = _figure((9.0, 0.8 + 2.2 * n_layers))
    axes = figure.subplots(n_layers, 2, squeeze=False)
    for l in range(n_layers):
        for p, part in enumerate(("W", "b")):
            ax = axes[l, p]
            values = [np.asarray(v[l][p], dtype=np.float64).ravel() for v in views]
            edges = np.histogram_bin_edges(np.concatenate(values), bins=int(bins))
            # one collection of outlines per panel, not a patch per snapshot:
            # matplotlib lays out many patches slowly
            steps = [_step_outline(np.histogram(v, edges)[0], edges) for v in values]
            ax.add_collection(mpl.collections.LineCollection(
                steps, array=np.asarray(times, dtype=np.float64), cmap=cmap, norm=norm,
                linewidths=1.2))
            ax.autoscale_view()
            ax.set_ylim(bottom=0)
            shape = " x ".join(str(n) for n in views[0][l][p].shape)
            ax.set_title(f"layer {l + 1} {part} ({shape}, {network.activations[l]})",
                         fontsize="medium")
            ax.set_ylabel("count")
    for ax in axes[-1]:
        ax.set_xlabel("value")
    figure.colorbar(axes[0, 0].collections[0], ax=axes, label="epochs trained (0: initial)")
    _save(figure, path)
    return figure


def training_curves(monitor, path=None):
    """Per layer and epoch: the update-to-weight ratio and the gradient norm.

    Parameters
    ----------
    monitor : Monitor
        A ``fastwb.Monitor`` after ``fit``.
    path : str or path-like, optional
        Where to save the figure.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes. Left: ``update_ratio`` of each layer's weights,
        ||W_now - W_before|| / ||W_before|| between records, on a log
        scale, with a dotted line at 1e-3, the usual rule of thumb for one
        optimizer step (a record spans an epoch of steps, so healthy
        training sits somewhat above it; far below, the layer barely
        learns; near 1, the steps are too big). Right: the L2 norm of the
        last minibatch gradient of each layer's W (solid) and b (dashed).

    Raises
    ------
    ValueError
        If the monitor has recorded no epochs.
    """
    network = _recorded_network(monitor)
    rows = [r for r in monitor.records() if r["stage"] == "epoch"]
    figure = _figure((11.0, 4.2))
    ratio_ax, grad_ax = figure.subplots(1, 2)
    ratios: list[float] = []
    norms: list[float] = []
    for l in range(len(network.sizes) - 1):
        color = f"C{l % 10}"
        rows_W = [r for r in rows if r["layer"] == l + 1 and r["param"] == "W"]
        rows_b = [r for r in rows if r["layer"] == l + 1 and r["param"] == "b"]
        epochs = [r["epoch"] for r in rows_W]
        ratio = _nan_for_none(r["update_ratio"] for r in rows_W)
        ratio_ax.plot(epochs, ratio, color=color, marker=".", label=f"layer {l + 1}")
        for part, part_rows, style in (("W", rows_W, "-"), ("b", rows_b, "--")):
            norm = _nan_for_none(r["grad_norm"] for r in part_rows)
            grad_ax.plot(epochs, norm, color=color, linestyle=style, marker=".",
                         label=f"layer {l + 1} {part}")
            norms.extend(norm)
        ratios.extend(ratio)
    ratio_ax.axhline(UPDATE_RATIO_RULE, color="0.4", linestyle=":",
                     label=f"{UPDATE_RATIO_RULE:g} (rule of thumb per step)")
    _log_scale_if_positive(ratio_ax, ratios)
    _log_scale_if_positive(grad_ax, norms)
    ratio_ax.set_title("update / weight norm, per recorded epoch", fontsize="medium")
    ratio_ax.set_ylabel("||W_now - W_before|| / ||W_before||")
    grad_ax.set_title("gradient norm (last minibatch)", fontsize="medium")
    grad_ax.set_ylabel("||grad||")
    for ax in (ratio_ax, grad_ax):
        ax.set_xlabel("epochs trained")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    _save(figure, path)
    return figure


# --- decision boundary -------------------------------------------------------------------

def _network_of(model):
    """A Network, from itself or from a fastwb.sklearn estimator's ``network``."""
    network = model if isinstance(model, Network) else getattr(model, "network", None)
    if not isinstance(network, Network):
        raise TypeError("decision_boundary takes a fastwb.Network or a fitted fastwb.sklearn "
                        f"estimator, got {type(model).__name__}")
    return network


def _outputs(network, flat, points) -> np.ndarray:
    """The network's outputs for ``points`` with the parameters ``flat``, in NumPy."""
    layers = layer_views(np.asarray(flat, dtype=np.float64), network.sizes)
    return reference.forward(layers, network.activations, points)[-1]


def _grid(low, high, n: int):
    """(xx, yy, points): an n x n grid over the box from low to high."""
    xx, yy = np.meshgrid(np.linspace(low[0], high[0], n), np.linspace(low[1], high[1], n))
    return xx, yy, np.column_stack([xx.ravel(), yy.ravel()])


def _field(outputs: np.ndarray, shape) -> np.ndarray:
    """What to shade: the predicted class (several outputs) or the one output."""
    field = outputs.argmax(axis=1) if outputs.shape[1] > 1 else outputs[:, 0]
    return field.reshape(shape)


def _levels(field: np.ndarray, classes: int | None, level: float) -> list[float]:
    """Contour levels of the boundary that fall inside the field's range."""
    candidates = [k + 0.5 for k in range(classes - 1)] if classes else [level]
    low, high = float(field.min()), float(field.max())
    return [c for c in candidates if low < c < high]


def _unit_lines(ax, W: np.ndarray, b: np.ndarray, box, **style) -> None:
    """Draw w.x + b = 0 for each first-layer unit across ``box`` ((x0, x1), (y0, y1))."""
    (x0, x1), (y0, y1) = box
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    diagonal = math.hypot(x1 - x0, y1 - y0)
    for w, bias in zip(W.T, b):
        squared = float(w @ w)
        if squared == 0:            # no weights: the unit is constant, it has no line
            continue
        # the point of the line nearest the origin: -b / ||w|| along w / ||w||
        foot = -bias * w / squared
        direction = np.array([-w[1], w[0]]) / math.sqrt(squared)
        reach = np.linalg.norm(foot - centre) + diagonal     # long enough to cross the box
        ends = np.array([foot - reach * direction, foot + reach * direction])
        ax.plot(ends[:, 0], ends[:, 1], **style)


def _unit_arrows(ax, W: np.ndarray, b: np.ndarray, box, color) -> None:
    """An arrow along w on each unit's line, at its point nearest the box's centre:
    the side where the unit's pre-activation is positive."""
    (x0, x1), (y0, y1) = box
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    length = 0.06 * math.hypot(x1 - x0, y1 - y0)
    starts, arrows = [], []
    for w, bias in zip(W.T, b):
        squared = float(w @ w)
        if squared == 0:
            continue
        point = centre - (w @ centre + bias) / squared * w
        if x0 <= point[0] <= x1 and y0 <= point[1] <= y1:
            starts.append(point)
            arrows.append(length * w / math.sqrt(squared))
    if starts:
        points, vectors = np.array(starts), np.array(arrows)
        ax.quiver(points[:, 0], points[:, 1], vectors[:, 0], vectors[:, 1], color=color,
                  angles="xy", scale_units="xy", scale=1, width=0.004)


def _class_labels(y: np.ndarray, classes: int) -> np.ndarray:
    """y as class indices 0..classes-1: one-hot rows by argmax, integer labels in
    range as they are, other labels (text) by their sorted order."""
    if y.ndim == 2:
        return y.argmax(axis=1)
    whole = y.dtype.kind in "iub" or (y.dtype.kind == "f" and np.all(y == np.round(y)))
    if whole and y.min() >= 0 and y.max() < classes:
        return y.astype(np.intp)
    return np.unique(y, return_inverse=True)[1].ravel()


def decision_boundary(network, X, y, path=None, monitor=None):
    """The regions a 2-input network predicts, its boundary, and its first-layer units.

    Each first-layer unit computes ``z = w . x + b`` and is zero on the line
    ``w . x + b = 0``: its weights ``w`` set the line's direction (changing
    them rotates it) and its bias shifts it, the line passing at distance
    ``-b / ||w||`` from the origin along ``w``. The network's boundary is
    built from these lines.

    Parameters
    ----------
    network : Network or fitted fastwb.sklearn estimator
        A network with 2 inputs.
    X : array-like (n, 2)
        The data; the plot covers it with a margin.
    y : array-like (n,) or (n, n_out)
        Its targets: class labels (integers or text; or one-hot rows) or values.
    path : str or path-like, optional
        Where to save the figure.
    monitor : Monitor, optional
        The monitor that followed the network's training: also draw the
        initial units' lines (dashed, faint) and the boundary at each kept
        snapshot (thin, coloured by epoch), so that the figure shows how
        training rotated and shifted the lines and moved the boundary.

    Returns
    -------
    matplotlib.figure.Figure
        With several outputs, the shading is the predicted class (the largest
        output) and the boundary is where it changes; with one output, the
        shading is the output and the boundary is its 0.5 level (sigmoid
        output) or the level halfway across y (regression). The units' lines
        are ``Line2D`` objects with gid ``"unit"`` (final) and ``"initial
        unit"``; arrows point along each final ``w``, to where the unit's
        pre-activation is positive.

    Raises
    ------
    ValueError
        If the network does not have 2 inputs, X is not (n, 2) and finite, y
        does not have n rows, or the monitor has recorded no epochs or followed
        another network.
    """
    network = _network_of(network)
    if network.sizes[0] != 2:
        raise ValueError(f"decision_boundary needs a network with 2 inputs; this one has "
                         f"{network.sizes[0]}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 2 or X.shape[0] == 0:
        raise ValueError(f"X must have shape (n, 2) with n >= 1, got {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X holds NaN or infinite values")
    y = np.asarray(y)
    if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must have one entry per row of X ({X.shape[0]}), got shape "
                         f"{y.shape}")
    snapshots = []
    if monitor is not None:
        if _recorded_network(monitor) is not network:
            raise ValueError("the monitor followed a different network")
        snapshots = monitor.snapshots()
    mpl, _ = _matplotlib()

    low, high = X.min(axis=0), X.max(axis=0)
    margin = np.where(high > low, 0.1 * (high - low), 0.5)
    low, high = low - margin, high + margin
    box = tuple(zip(low, high))
    xx, yy, grid = _grid(low, high, GRID)
    outputs = _outputs(network, network.parameters, grid)
    n_out = outputs.shape[1]
    classes = n_out if n_out > 1 else None
    sigmoid = n_out == 1 and network.activations[-1] == "sigmoid"
    field = _field(outputs, xx.shape)

    figure = _figure((7.8 if monitor is not None else 6.6, 5.6))
    ax = figure.subplots()
    if classes:
        colors = mpl.colormaps["tab10" if classes <= 10 else "tab20"].colors[:classes]
        shading = mpl.colors.ListedColormap(colors)
        norm = mpl.colors.BoundaryNorm(np.arange(classes + 1) - 0.5, classes)
        ax.pcolormesh(xx, yy, field, cmap=shading, norm=norm, alpha=0.25, shading="auto")
        ax.scatter(X[:, 0], X[:, 1], c=_class_labels(y, classes), cmap=shading, norm=norm,
                   s=14, edgecolors="k", linewidths=0.4)
        level = math.nan
    else:
        target: np.ndarray = (y.reshape(len(y), -1)[:, 0].astype(np.float64)
                              if y.dtype.kind in "fiub"
                              else _class_labels(y, 2).astype(np.float64))  # text: 0, 1, ...
        if sigmoid:
            vmin, vmax, level = 0.0, 1.0, 0.5
        else:
            vmin = float(min(field.min(), target.min()))
            vmax = float(max(field.max(), target.max()))
            level = (float(target.min()) + float(target.max())) / 2
        norm = mpl.colors.Normalize(vmin, vmax if vmax > vmin else vmin + 1)
        mesh = ax.pcolormesh(xx, yy, field, cmap="coolwarm", norm=norm, alpha=0.35,
                             shading="auto")
        ax.scatter(X[:, 0], X[:, 1], c=target, cmap="coolwarm", norm=norm, s=14,
                   edgecolors="k", linewidths=0.4)
        figure.colorbar(mesh, ax=ax, label="output", shrink=0.8)

    if snapshots:
        times = [_trained(label) for label, _ in snapshots]
        cmap, epoch_norm = _epoch_colors(times)
        sx, sy, coarse = _grid(low, high, SNAPSHOT_GRID)
        for (_, flat), time in zip(snapshots[:-1], times):     # the last is the final
            state = _field(_outputs(network, flat, coarse), sx.shape)
            levels = _levels(state, classes, level)
            if levels:
                ax.contour(sx, sy, state, levels=levels, colors=[cmap(epoch_norm(time))],
                           linewidths=0.9, alpha=0.9)
        if snapshots[0][0] == "initial":
            W0, b0 = layer_views(np.asarray(snapshots[0][1], np.float64), network.sizes)[0]
            _unit_lines(ax, W0, b0, box, color="0.35", linestyle="--", linewidth=0.8,
                        alpha=0.5, gid="initial unit")
        figure.colorbar(mpl.cm.ScalarMappable(epoch_norm, cmap), ax=ax, shrink=0.8,
                        label="boundary after epochs trained")
    levels = _levels(field, classes, level)
    if levels:
        ax.contour(xx, yy, field, levels=levels, colors="k", linewidths=2.0)
    W, b = layer_views(np.asarray(network.parameters, np.float64), network.sizes)[0]
    _unit_lines(ax, W, b, box, color="C4", linewidth=1.0, alpha=0.8, gid="unit")
    _unit_arrows(ax, W, b, box, color="C4")
    if low[0] <= 0 <= high[0] and low[1] <= 0 <= high[1]:
        ax.plot([0], [0], marker="+", color="k", markersize=9, linestyle="none")

    legend = [mpl.lines.Line2D([], [], color="k", linewidth=2.0, label="decision boundary"),
              mpl.lines.Line2D([], [], color="C4", linewidth=1.0,
                               label="first-layer units: w.x + b = 0")]
    if snapshots and snapshots[0][0] == "initial":
        legend.append(mpl.lines.Line2D([], [], color="0.35", linestyle="--", linewidth=0.8,
                                       label="the same, initial"))
    ax.legend(handles=legend, loc="upper right", fontsize="small", framealpha=0.8)
    ax.set_xlim(box[0])             # the units' long lines must not widen the view
    ax.set_ylim(box[1])
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title("decision boundary and first-layer units", fontsize="medium")
    _save(figure, path)
    return figure


# --- all at once ---------------------------------------------------------------------------

def save_plots(monitor, directory, X=None, y=None, prefix: str = "") -> list[Path]:
    """Write every plot of a monitored training run into ``directory``.

    Parameters
    ----------
    monitor : Monitor
        A ``fastwb.Monitor`` after ``fit``.
    directory : str or path-like
        Where to write; created if missing.
    X, y : array-like, optional
        Data for the decision boundary, drawn when both are given and the
        network has 2 inputs (and skipped for other networks).
    prefix : str, default ""
        Put before each file name.

    Returns
    -------
    list of pathlib.Path
        The files written: ``loss.png`` (``loss_curves``), ``weights.png``
        (``weight_histograms``), ``training.png`` (``training_curves``) and
        ``decision_boundary.png`` (``decision_boundary``), each after ``prefix``.

    Raises
    ------
    ValueError
        If the monitor has recorded no epochs, or only one of X and y is given.
    """
    network = _recorded_network(monitor)
    if (X is None) != (y is None):
        raise ValueError("the decision boundary needs both X and y")
    directory = Path(directory)
    written = []
    for name, plot in (("loss", loss_curves), ("weights", weight_histograms),
                       ("training", training_curves)):
        path = directory / f"{prefix}{name}.png"
        plot(monitor, path)
        written.append(path)
    if X is not None and network.sizes[0] == 2:
        path = directory / f"{prefix}decision_boundary.png"
        decision_boundary(network, X, y, path, monitor=monitor)
        written.append(path)
    return written
