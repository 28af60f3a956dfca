"""The core layer: the token state space and its checks, the associative-memory interface, corruption, dynamics,
metrics, basins, exact basins, entropy, theory, working-memory budgets and the sweep runner. It imports nothing
from the layers above it (backends, diffusion, studies, reports and figures, CLI)."""
