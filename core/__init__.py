"""Code every app shares: errors, Redis access, environment readers, HTTP helpers, metrics primitives. It imports
no app."""
