"""A resumable sweep runner: one tidy table per cell of an experiment grid, written atomically and checksummed.

An experiment is a list of *cells*, small frozen dataclasses whose fields are ints, floats, strs, bools, None,
tuples of these or nested dataclasses. Each cell gets

* a key, ``cell_key(cell) = sha256(canonical JSON of {type name, fields})``, stable across processes, machines and
  Python versions, and sensitive to every field (and to the field's type: ``1`` and ``1.0`` differ);
* a seed, ``derive_seed(root_seed, cell)``, from the same hash, so a cell's random stream does not depend on the
  order of the sweep, on which worker runs it, or on which other cells exist;
* a result key, ``result_key(cell, root_seed)``, the sha256 of the cell key and the root seed: the name of its
  table, so that runs with different root seeds never take each other's tables.

``run_sweep(cells, fn, out_dir, root_seed=...)`` calls ``fn(cell, generator, device) -> pandas.DataFrame`` for
every cell whose ``out_dir/<result key>.parquet`` is missing, adds the cell's fields, key, seed, root seed, device
and the names of the field columns as columns, and writes the table to a temporary file in ``out_dir`` that is
then renamed over the final name (``os.replace`` is atomic on one file system), so a killed sweep leaves only
finished tables and is resumed by running it again. Before the rename, ``<result key>.sha256.json`` records the
size and sha256 of the table file, and the file itself carries its cell key, root seed and result key. Every read
(``load_results``, ``read_table``) checks both, so a truncated, bit-flipped or misnamed table raises
``DamagedTableError`` naming the file; ``run_sweep`` moves such a table into ``out_dir/damaged/`` (never deleting
it) and computes the cell again. Several worker processes (one per GPU with ``workers="auto"``) split the cell
list in a strided partition; each writes its own cells and ends when its launcher ends, however that ends.
``submit_slurm`` submits the pending cells as a Slurm job array through submitit (imported only when used), each
element running its share through the same runner; ``slurm_executor`` makes the executor, ``submit_array``
submits any picklable task per item (a study whose unit of work spans several sweeps) and ``wait_for_jobs`` waits.

Readers that average tables call ``check_single_setting`` (or split them with ``setting_groups``): a folder may
hold tables of different settings (another root seed, another update rule), which must never be averaged together.
"""

from __future__ import annotations

from amtheory.core.sweep.files import (
    CHECKSUM_SUFFIX,
    DAMAGED_DIR,
    DamagedTableError,
    checked_pending_cells,
    checksum_path,
    load_results,
    pending_cells,
    read_table,
    result_path,
    write_atomic,
)
from amtheory.core.sweep.keys import (
    DEVICE_COLUMN,
    FIELDS_COLUMN,
    IDENTITY_ATTR,
    KEY_COLUMN,
    ROOT_SEED_COLUMN,
    SEED_COLUMN,
    canonical_json,
    cell_columns,
    cell_key,
    derive_seed,
    result_key,
    sub_generator,
    text_generator,
)
from amtheory.core.sweep.runner import CellFn, run_cell, run_sweep
from amtheory.core.sweep.settings import check_single_setting, setting_groups
from amtheory.core.sweep.slurm import slurm_executor, submit_array, submit_slurm, wait_for_jobs

__all__ = [
    "CHECKSUM_SUFFIX",
    "CellFn",
    "DAMAGED_DIR",
    "DEVICE_COLUMN",
    "DamagedTableError",
    "FIELDS_COLUMN",
    "IDENTITY_ATTR",
    "KEY_COLUMN",
    "ROOT_SEED_COLUMN",
    "SEED_COLUMN",
    "canonical_json",
    "cell_columns",
    "cell_key",
    "check_single_setting",
    "checked_pending_cells",
    "checksum_path",
    "derive_seed",
    "load_results",
    "pending_cells",
    "read_table",
    "result_key",
    "result_path",
    "run_cell",
    "run_sweep",
    "setting_groups",
    "slurm_executor",
    "sub_generator",
    "submit_array",
    "submit_slurm",
    "text_generator",
    "wait_for_jobs",
    "write_atomic",
]
