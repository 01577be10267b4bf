"""Figures: one palette and set of formatters, chart data series, plotly charts, graphviz graphs."""
