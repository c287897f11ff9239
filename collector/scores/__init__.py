"""Experience scores in the collector: daily rollups, the scoring job, scores and explanations.

``compute`` bridges stored events and the pure-numpy core (scoring/); ``repository`` holds the
SQL; ``service`` runs the incremental job and answers the API; ``router`` is the HTTP layer.
"""

__all__: list[str] = []
