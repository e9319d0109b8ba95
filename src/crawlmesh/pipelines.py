"""Ready-made item pipelines: list them in a spider's ``pipelines`` or the
``pipelines`` setting (``"crawlmesh.pipelines:CleanFields"``).

* :class:`Validate`: drop items that do not match a msgspec type or a JSON Schema.
* :class:`Dedupe`: drop items whose key was seen before.
* :class:`CleanFields`: strip and collapse whitespace, leave out empty fields.
"""

from ._hooks._shipped import CleanFields as CleanFields
from ._hooks._shipped import Dedupe as Dedupe
from ._hooks._shipped import Validate as Validate

__all__ = ["CleanFields", "Dedupe", "Validate"]
