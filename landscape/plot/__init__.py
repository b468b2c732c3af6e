"""Figure functions: result rows -> matplotlib Figure, in one house style."""

from landscape.plot.atlas import correlation_heatmap, measure_heatmap, measure_scatter
from landscape.plot.curvature import diagonal_histograms, eigenvalue_density
from landscape.plot.curves import (
    as_frame,
    band_plot,
    barrier_vs_rewind,
    interpolation_curves,
    metric_vs_density,
    scatter_by,
)
from landscape.plot.ensembles import (
    accuracy_vs_flops,
    disagreement_heatmap,
    prediction_embedding_plot,
    reliability_diagram,
)
from landscape.plot.spectral import radius_accuracy_curves
from landscape.plot.style import COLUMN_WIDTH, FULL_WIDTH, apply_style, new_figure, save_figure
from landscape.plot.surface import slice_curve, surface_3d, surface_contour, surface_panels

__all__ = [
    "COLUMN_WIDTH",
    "FULL_WIDTH",
    "accuracy_vs_flops",
    "apply_style",
    "as_frame",
    "band_plot",
    "barrier_vs_rewind",
    "correlation_heatmap",
    "diagonal_histograms",
    "disagreement_heatmap",
    "eigenvalue_density",
    "interpolation_curves",
    "measure_heatmap",
    "measure_scatter",
    "metric_vs_density",
    "prediction_embedding_plot",
    "radius_accuracy_curves",
    "reliability_diagram",
    "scatter_by",
    "slice_curve",
    "surface_3d",
    "surface_contour",
    "surface_panels",
    "new_figure",
    "save_figure",
]
