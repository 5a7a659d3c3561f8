"""See the package modules."""

import index  # noqa: F401  (sets the offline switches before anything heavy is imported)
