"""Survey campaigns: IT's sentiment micro-surveys, served to agents, and their results.

IT creates campaigns through the API; the collector puts the campaigns that apply to a
device into its agent configuration; answers come back through ordinary ingest as
``survey_response`` events and are summarised per campaign.
"""

__all__: list[str] = []
