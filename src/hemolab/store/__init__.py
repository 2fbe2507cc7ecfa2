"""The store directory: de-identified patient data (DuckDB), encrypted keys, audit trail."""

from hemolab.store._backup import backup_store as backup_store, restore_store as restore_store
from hemolab.store._store import (
    DEFAULT_STORE as DEFAULT_STORE,
    ImportSummary as ImportSummary,
    Store as Store,
    StoreError as StoreError,
)
