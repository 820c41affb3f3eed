"""Exports of a dataset for other training stacks: a zarr ZipStore (UMI) and a LeRobot v3.0 folder.

Each exporter reads the committed rows only (`DatasetReader`) and writes its output beside the
target first (`output.replaced_atomically`), so an interrupted export never leaves a half output
under the final name. Heavy imports (pyarrow, av) happen inside the LeRobot modules only.
"""
