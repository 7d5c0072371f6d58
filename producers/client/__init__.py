"""The client library: the ``track_*`` calls for Python hosts, upstream's gates, the
sync facade and ``PluginsManager``. Publishes through :mod:`producers.publishing`."""
