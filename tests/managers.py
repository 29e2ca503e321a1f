"""An app's own manager subclass: registered by defining it, served by the context under ``name``."""

from datalayer import ModelManager
from tests.models import Label


class LabelManager(ModelManager[Label]):
    model = Label
    name = "tags"

    async def recolour(self, old: str, new: str) -> int:
        return await self.update_many({"colour": old}, {"colour": new})
