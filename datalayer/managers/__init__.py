"""The generic manager every model gets, and its result shapes. Domain managers live in their packs."""

from datalayer.managers.base import ModelManager
from datalayer.managers.pagination import Chunk, Page

__all__ = ["Chunk", "ModelManager", "Page"]
