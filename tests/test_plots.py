"""fastwb.plots: real figures of a monitored training run, saved as PNG files."""
import sys
import types

import numpy as np
import pytest

import fastwb
from fastwb import plots

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    assert path.is_file() and path.stat().st_size > 0
    assert path.read_bytes()[:8] == PNG


def _moons(n=120, seed=0):
    """Two interleaved half circles, labels 0 and 1."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n)
    y = rng.integers(0, 2, n)
    X = np.column_stack([np.cos(t) + y, np.sin(t) * (1 - 2 * y) + 0.5 * y])
    return X + rng.normal(scale=0.1, size=X.shape), y


@pytest.fixture(scope="module")
def run():
    """A 2-6-4-2 classifier trained 5 epochs under a Monitor, with its History."""
    X, y = _moons()
    net = fastwb.Network([2, 6, 4, 2], activation="tanh", loss="softmax_cross_entropy",
                         seed=0)
    monitor = fastwb.Monitor(warn=False)
    history = net.fit(X, y, fastwb.Adam(lr=0.05), epochs=5, batch_size=16,
                      validation_split=0.2, callbacks=[monitor])
    return net, monitor, history, X, y


def _panels(figure):
    return [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]


def test_save_plots_writes_every_plot(run, tmp_path):
    _, monitor, _, X, y = run
    folder = tmp_path / "new" / "folder"
    paths = plots.save_plots(monitor, folder, X, y, prefix="moons_")
    assert [p.name for p in paths] == ["moons_loss.png", "moons_weights.png",
                                       "moons_training.png", "moons_decision_boundary.png"]
    for path in paths:
        assert path.parent == folder
        _assert_png(path)


def test_loss_curves_draw_the_recorded_losses(run, tmp_path):
    _, monitor, history, _, _ = run
    figure = plots.loss_curves(monitor)
    ax = figure.axes[0]
    train, val = ax.lines[:2]
    np.testing.assert_array_equal(train.get_xdata(), [1, 2, 3, 4, 5])     # epochs trained
    np.testing.assert_array_equal(train.get_ydata(), [e["loss"] for e in monitor.epochs])
    np.testing.assert_array_equal(val.get_ydata(), [e["val_loss"] for e in monitor.epochs])
    assert ax.get_yscale() == "log"
    # the History gives the same curves
    from_history = plots.loss_curves(history, tmp_path / "history" / "loss.png").axes[0]
    np.testing.assert_array_equal(from_history.lines[0].get_ydata(), history["loss"])
    np.testing.assert_array_equal(from_history.lines[1].get_ydata(), history["val_loss"])
    _assert_png(tmp_path / "history" / "loss.png")


def test_loss_curves_of_an_estimator_show_its_validation_scores():
    # what a fastwb.sklearn (or scikit-learn) estimator fitted with early stopping holds
    estimator = types.SimpleNamespace(loss_curve_=[0.9, 0.5, 0.4],
                                      validation_scores_=[0.6, 0.8, 0.85])
    loss_ax, score_ax = plots.loss_curves(estimator).axes
    np.testing.assert_array_equal(loss_ax.lines[0].get_ydata(), estimator.loss_curve_)
    np.testing.assert_array_equal(score_ax.lines[0].get_ydata(), estimator.validation_scores_)


def test_weight_histograms_share_bins_per_panel(run):
    net, monitor, _, _, _ = run
    figure = plots.weight_histograms(monitor, bins=12)
    panels = _panels(figure)
    assert len(panels) == 2 * (len(net.sizes) - 1)          # W and b of each layer
    assert len(figure.axes) == len(panels) + 1              # and a colorbar of epochs
    snapshots = monitor.snapshots()
    assert [label for label, _ in snapshots] == ["initial", 1, 2, 3, 4, 5]
    for l, (ax_W, ax_b) in enumerate(zip(panels[::2], panels[1::2])):
        for ax, values in ((ax_W, net.layers[l].weights), (ax_b, net.layers[l].bias)):
            steps = ax.collections[0]
            # one step outline per snapshot, coloured by epochs trained
            np.testing.assert_array_equal(steps.get_array(), [0, 1, 2, 3, 4, 5])
            outlines = steps.get_segments()
            assert len(outlines) == len(snapshots)
            edges = outlines[0][::2, 0]
            assert len(edges) == 13
            for outline in outlines:
                np.testing.assert_array_equal(outline[::2, 0], edges)     # common bins
                assert outline[1:-1:2, 1].sum() == values.size
            # the last histogram is of the trained values
            np.testing.assert_array_equal(outlines[-1][1:-1:2, 1],
                                          np.histogram(values.astype(np.float64), edges)[0])


def test_training_curves_plot_update_ratios_and_gradient_norms(run):
    net, monitor, _, _, _ = run
    ratio_ax, grad_ax = plots.training_curves(monitor).axes
    rows = [r for r in monitor.records() if r["stage"] == "epoch"]
    for l in range(len(net.sizes) - 1):
        expected = [r["update_ratio"] for r in rows if r["layer"] == l + 1 and r["param"] == "W"]
        np.testing.assert_allclose(ratio_ax.lines[l].get_ydata(), expected)
        for p, part in enumerate("Wb"):
            norms = [r["grad_norm"] for r in rows if r["layer"] == l + 1 and r["param"] == part]
            np.testing.assert_allclose(grad_ax.lines[2 * l + p].get_ydata(), norms)
    assert ratio_ax.lines[-1].get_ydata()[0] == plots.UPDATE_RATIO_RULE   # the reference line
    assert ratio_ax.get_yscale() == grad_ax.get_yscale() == "log"


def _unit_lines(ax, gid):
    return [line for line in ax.lines if line.get_gid() == gid]


def test_decision_boundary_draws_each_first_layer_unit(run):
    net, monitor, _, X, y = run
    ax = _panels(plots.decision_boundary(net, X, y, monitor=monitor))[0]
    W, b = net.layers[0].weights.astype(np.float64), net.layers[0].bias.astype(np.float64)
    lines = _unit_lines(ax, "unit")
    assert len(lines) == net.sizes[1]
    assert len(_unit_lines(ax, "initial unit")) == net.sizes[1]
    for j, line in enumerate(lines):
        points = np.column_stack([line.get_xdata(), line.get_ydata()])
        # each line is where the unit's pre-activation w.x + b is 0 ...
        np.testing.assert_allclose(points @ W[:, j] + b[j], 0, atol=1e-9 * np.abs(points).max())
        # ... and passes at distance |b| / ||w|| from the origin
        direction = points[1] - points[0]
        cross = direction[0] * points[0, 1] - direction[1] * points[0, 0]
        distance = abs(cross) / np.linalg.norm(direction)
        np.testing.assert_allclose(distance, abs(b[j]) / np.linalg.norm(W[:, j]), rtol=1e-6)
    # the view is the data with a margin, not the units' long lines
    (x0, x1), (y0, _) = ax.get_xlim(), ax.get_ylim()
    assert x0 < X[:, 0].min() and x1 > X[:, 0].max() and y0 < X[:, 1].min()
    assert x1 - x0 < 1.3 * np.ptp(X[:, 0])


def test_decision_boundary_of_one_output_without_a_monitor():
    X, y = _moons(60, seed=1)
    net = fastwb.Network([2, 3, 1], loss="mse", seed=0)
    figure = plots.decision_boundary(net, X, y.astype(float))
    ax = _panels(figure)[0]
    assert len(_unit_lines(ax, "unit")) == 3 and not _unit_lines(ax, "initial unit")
    assert any(cb.get_label() == "<colorbar>" for cb in figure.axes)   # the output's scale


def test_decision_boundary_needs_two_inputs():
    net = fastwb.Network([3, 4, 2], loss="softmax_cross_entropy", seed=0)
    with pytest.raises(ValueError, match="2 inputs; this one has 3"):
        plots.decision_boundary(net, np.zeros((4, 3)), np.zeros(4, int))


def test_bad_input_is_refused(run):
    net, monitor, _, X, y = run
    empty = fastwb.Monitor()
    for plot in (plots.loss_curves, plots.weight_histograms, plots.training_curves):
        with pytest.raises(ValueError, match="no epochs"):
            plot(empty)
    with pytest.raises(ValueError, match="no epochs"):
        plots.save_plots(empty, "unused")
    with pytest.raises(ValueError, match="no epochs"):
        plots.loss_curves(fastwb.History())
    with pytest.raises(TypeError, match="Monitor"):
        plots.loss_curves([1.0, 0.5])
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        plots.decision_boundary(net, X[:, :1], y)
    with pytest.raises(ValueError, match="one entry per row"):
        plots.decision_boundary(net, X, y[:-1])
    with pytest.raises(ValueError, match="NaN"):
        plots.decision_boundary(net, np.where(X > 1, np.nan, X), y)
    other = fastwb.Network([2, 6, 4, 2], loss="softmax_cross_entropy", seed=0)
    with pytest.raises(ValueError, match="different network"):
        plots.decision_boundary(other, X, y, monitor=monitor)
    with pytest.raises(ValueError, match="bins"):
        plots.weight_histograms(monitor, bins=0)
    with pytest.raises(ValueError, match="both X and y"):
        plots.save_plots(monitor, "unused", X)


def test_without_matplotlib_the_error_says_what_to_install(run, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "fastwb\[plots\]"'):
        plots.loss_curves(run[2])
