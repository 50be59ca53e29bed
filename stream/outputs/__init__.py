"""Outputs: the typed event stream every output handles (`events`), and the outputs
themselves: dashboard, report, overlay, live view, metrics, MQTT/webhook events, plots."""
