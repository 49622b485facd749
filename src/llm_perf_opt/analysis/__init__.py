"""The application layer: one request's journey from options to one :class:`AnalysisResult`."""
