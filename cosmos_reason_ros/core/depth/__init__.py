"""Depth and 3D: depth images and files, matching depth to colour frames, lifting answers to 3D."""
