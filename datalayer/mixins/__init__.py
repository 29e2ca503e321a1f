"""One concern a mixin; ``datalayer.models.base.AuditedModel`` combines them."""

from datalayer.mixins.audit import AuditMixin
from datalayer.mixins.soft_delete import SoftDeleteManager, SoftDeleteMixin
from datalayer.mixins.timestamps import TimestampMixin

__all__ = ["AuditMixin", "SoftDeleteManager", "SoftDeleteMixin", "TimestampMixin"]
