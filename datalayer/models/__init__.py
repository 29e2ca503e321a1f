"""The base classes every model builds on (datalayer's packs and an app's own models alike).

The packs' concrete models live with their managers: ``datalayer.core.models``, ``datalayer.agent.models``, ...
"""

from datalayer.models.base import AuditedModel, DataModel, RecordModel

__all__ = ["AuditedModel", "DataModel", "RecordModel"]
