"""The Hopfield-family studies: capacity of classical networks, capacity scaling of dense memories, basin radius
against load for every backend, and the side-by-side comparison of the main job."""
